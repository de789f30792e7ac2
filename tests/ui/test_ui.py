"""The Dagster UI in a real browser: `etl-balances ui` (as `make ui` starts it) driven by
Debian's chromium through Playwright.

- the asset graph labels every source's nodes with the source's name;
- a date launched from the `daily_settlement_report` job's page ("Materialize all" -> "Latest"
  -> "Launch 1 run") succeeds, as a run named `daily_settlement_report`, with its steps in the
  one run-worker process (no step worker processes);
- no console errors in the pages visited;
- `dagster dev`'s output has no warning the project causes.

Chromium is `/usr/bin/chromium` (or $ETL_TEST_CHROMIUM); never `playwright install`'s own
build. Without it (or the playwright package) the browser tests skip, or fail when CI is set.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import _unavailable
from tests.ui.stack import JOB, SOURCES, Ui, run_events, running_ui, wait_for_run

CHROMIUM = Path(os.environ.get("ETL_TEST_CHROMIUM", "/usr/bin/chromium"))
STAGES = ("raw_snapshot", "balances")
#: The longest name an asset graph node shows whole (dagster-webserver 1.13's
#: ASSET_NODE_NAME_MAX_LENGTH); a longer one is cut in the middle, the full name on hover.
NODE_NAME_MAX = 31
#: Dagster's own warnings on a fresh DAGSTER_HOME, not caused by this project.
DAGSTER_OWN_WARNINGS = ("EventLogConsumerDaemon - WARNING - No cursor for event type",)
RUNS_OF_JOB = """
query Runs($filter: RunsFilter) {
  runsOrError(filter: $filter) { ... on Runs { results { runId jobName } } }
}
"""


@pytest.fixture(scope="module")
def ui(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Ui]:
    with running_ui(tmp_path_factory.mktemp("ui")) as running:
        # A fresh instance opens Dagster's "Join the community" dialog over the first page;
        # the UI's own "Skip" sends this.
        running.dev.graphql("mutation { setNuxSeen }")
        yield running


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _unavailable("the playwright package")
        raise
    if not CHROMIUM.exists():
        _unavailable(f"chromium at {CHROMIUM} (Debian: apt-get install chromium)")
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True)
        try:
            yield launched
        finally:
            launched.close()


class Page:
    """A browser page on the UI that records console errors and uncaught page errors."""

    def __init__(self, browser: Any, ui: Ui) -> None:
        self.context = browser.new_context(viewport={"width": 1600, "height": 1000})
        self.context.set_default_timeout(30_000)
        self.page = self.context.new_page()
        self.ui = ui
        self.errors: list[str] = []
        self.page.on(
            "console",
            lambda m: self.errors.append(f"console: {m.text}") if m.type == "error" else None,
        )
        self.page.on("pageerror", lambda e: self.errors.append(f"page error: {e}"))

    def open(self, path: str) -> Any:
        self.page.goto(self.ui.base_url + path)
        return self.page


@pytest.fixture()
def page(browser: Any, ui: Ui) -> Iterator[Page]:
    opened = Page(browser, ui)
    try:
        yield opened
        assert opened.errors == [], "\n".join(opened.errors)
    finally:
        opened.context.close()


def test_asset_graph_names_the_source_on_each_node(page: Page) -> None:
    """The `sources` group's graph: eight nodes, each label carrying its source's name (before,
    four identical `raw_snapshot -> balances` pairs)."""
    tab = page.open("/locations/settlement_balances/asset-groups/sources")
    expected = {f"{s}__{stage}": s for s in SOURCES for stage in STAGES}
    # A node's name: the asset icon, then the label (its full name in `data-tooltip`).
    names = tab.locator('[class*="AssetNode_assetName"] [data-tooltip]')
    tab.wait_for_function(
        "n => document.querySelectorAll('[class*=\"AssetNode_assetName\"] [data-tooltip]')"
        ".length >= n",
        arg=len(expected),
    )
    shown = {n.get_attribute("data-tooltip"): n.inner_text().strip() for n in names.all()}
    assert set(shown) == set(expected), shown
    for key, source in expected.items():
        label = shown[key]
        if len(key) <= NODE_NAME_MAX:
            assert label == key, (key, label)
        else:  # cut in the middle by the UI: the source's start and the stage stay visible
            assert label.startswith(source[:12]) and label.endswith(key[len(source) :]), label
    assert len(set(shown.values())) == len(expected), f"two nodes look alike: {shown}"


def test_a_date_launched_from_the_job_page_runs_in_one_process(page: Page, ui: Ui) -> None:
    """The job's page: "Materialize all", latest date, "Launch 1 run". The run is named
    `daily_settlement_report`, succeeds, and ran every step in its one process."""
    tab = page.open(f"/locations/settlement_balances/jobs/{JOB}")
    tab.get_by_role("button", name="Materialize all").click()
    dialog = tab.get_by_role("dialog")
    dialog.get_by_role("button", name="Latest", exact=True).click()
    dialog.get_by_role("button", name="Launch 1 run").click()
    tab.get_by_text(re.compile(r"Launched run [0-9a-f]{8}")).wait_for()

    runs = ui.dev.graphql(RUNS_OF_JOB, {"filter": {"pipelineName": JOB}})["runsOrError"]
    (launched,) = runs["results"]
    run = wait_for_run(ui, launched["runId"])
    assert run["status"] == "SUCCESS", run
    assert run["jobName"] == JOB
    tags = {t["key"]: t["value"] for t in run["tags"]}
    assert tags["dagster/partition"] == datetime.now(UTC).date().isoformat(), tags

    events = run_events(ui, run["runId"])
    kinds = [e.get("eventType") for e in events]
    assert "STEP_WORKER_STARTING" not in kinds, "a step ran in a process of its own"
    engine = [e["message"] for e in events if e.get("eventType") == "ENGINE_EVENT"]
    assert any(m.startswith("Executing steps in threads of process") for m in engine), engine
    started = {e["stepKey"] for e in events if e.get("eventType") == "STEP_START"}
    assert {f"{s}__raw_snapshot" for s in SOURCES} <= started, started

    run_page = page.open(f"/runs/{run['runId']}")
    run_page.get_by_text("Success", exact=True).first.wait_for()


def test_dagster_dev_output_has_no_warning_the_project_causes(ui: Ui) -> None:
    """From start-up through the run above: no Python warning and no WARNING log line, but
    Dagster's own on a fresh instance."""
    text = re.sub(r"\x1b\[[0-9;]*m", "", ui.dev.log_path.read_text(encoding="utf-8"))
    warnings = [
        line
        for line in text.splitlines()
        if ("Warning" in line or " - WARNING - " in line)
        and not any(own in line for own in DAGSTER_OWN_WARNINGS)
    ]
    assert warnings == [], "\n".join(warnings)
