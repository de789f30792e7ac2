"""Headless Debian chromium through the `playwright` package, with the network cut off.

The browser is the distribution's (`/usr/bin/chromium`, or `$CHROMIUM`); `playwright install`
is never needed. When `CI` is set a missing package or browser fails the run; elsewhere the
browser tests are skipped with the reason.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
IN_CI = bool(os.environ.get("CI"))


def _unavailable(why: str) -> None:
    if IN_CI:
        pytest.fail(f"{why}; the browser tests are required when CI is set", pytrace=False)
    pytest.skip(why)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """One headless chromium per test module. Not per session: Playwright's sync API keeps its
    event loop running in this thread while it is open, and a second `sync_playwright()` (the
    UI tests') refuses to start inside a running loop."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _unavailable("the playwright package is not installed (pip install playwright)")
        raise
    if not (Path(CHROMIUM).is_file() and os.access(CHROMIUM, os.X_OK)):
        _unavailable(f"no chromium at {CHROMIUM} (apt-get install chromium, or set CHROMIUM)")
    with sync_playwright() as playwright:
        instance = playwright.chromium.launch(executable_path=CHROMIUM)
        try:
            yield instance
        finally:
            instance.close()


@dataclass
class OfflinePage:
    """A page whose every non-file request is aborted, with everything it tried or said."""

    page: Any
    requests: list[str] = field(default_factory=list)
    blocked: list[str] = field(default_factory=list)
    console_errors: list[str] = field(default_factory=list)
    page_errors: list[str] = field(default_factory=list)
    dialogs: list[str] = field(default_factory=list)

    def open(self, path: Path) -> None:
        self.page.goto(path.resolve().as_uri(), wait_until="load")

    def assert_quiet_and_offline(self) -> None:
        """Only file:// was asked for, nothing was blocked, no error, no alert()."""
        assert self.requests and all(u.startswith("file://") for u in self.requests), self.requests
        assert self.blocked == []
        assert self.console_errors == []
        assert self.page_errors == []
        assert self.dialogs == []


@pytest.fixture()
def offline_page(browser: Any) -> Iterator[OfflinePage]:
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    page = context.new_page()
    state = OfflinePage(page)

    def route(route: Any) -> None:
        url = route.request.url
        if url.startswith("file://"):
            route.continue_()
        else:
            state.blocked.append(url)
            route.abort()

    def dialog(d: Any) -> None:
        state.dialogs.append(d.message)
        d.dismiss()

    context.route("**/*", route)
    page.on("request", lambda r: state.requests.append(r.url))
    page.on("console", lambda m: m.type == "error" and state.console_errors.append(m.text))
    page.on("pageerror", lambda e: state.page_errors.append(str(e)))
    page.on("dialog", dialog)
    try:
        yield state
    finally:
        context.close()
