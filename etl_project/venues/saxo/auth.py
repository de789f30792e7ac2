"""Saxo OpenAPI bearer tokens: the configured access token, and the OAuth2 refresh-token flow.

`TokenProvider.current()` is the token to send; `refresh(stale)` trades the refresh token for
a new access token (`POST token_url`, form `grant_type=refresh_token`, `refresh_token`,
`client_id`, `client_secret`, RFC 6749 §6). New tokens (and a rotated refresh token) live in
memory only, never in config, logs, messages or raw snapshots.

The token call deliberately bypasses the recording `HttpClient`: its answer *is* the secret,
so it must never land in the raw snapshot (and `HttpClient` sends no request body). It has
its own small retry loop (connection errors, 429 and 5xx; `Retry-After` honoured).

With a `budget` (the source's `HttpClient`) the token call shares the source's one time budget:
its timeouts are capped at what is left, an attempt or a backoff that cannot finish before the
deadline is not started, and a spent budget raises `SourceTimeout` naming the token URL's path
alone (`POST /token: read timed out`), never the form it sent or the answer.
"""

from __future__ import annotations

import json
import logging
import math
import random
import re
import threading
import time
from collections.abc import Callable
from urllib.parse import urlparse

import requests

from etl_project.errors import MalformedResponse, SourceTimeout, VenueAuthError, VenueUnavailable
from etl_project.http import (
    MIN_ATTEMPT_SECONDS,
    RETRY_STATUSES,
    HttpClient,
    RetryPolicy,
    _failure,
    retry_after_seconds,
)
from etl_project.settings import Secret

__all__ = ["LIVE_TOKEN_URL", "SIM_TOKEN_URL", "TokenProvider", "default_token_url"]

log = logging.getLogger(__name__)

#: Saxo's documented token endpoints (AuthenticationUrl + "/token") per environment.
SIM_TOKEN_URL = "https://sim.logonvalidation.net/token"
LIVE_TOKEN_URL = "https://live.logonvalidation.net/token"
SAXO_GATEWAY = "gateway.saxobank.com"
_OAUTH_CODE = re.compile(r"[A-Za-z0-9_.-]{1,60}")


def default_token_url(base_url: str) -> str | None:
    """The token endpoint that goes with an OpenAPI base URL when none is configured.

    - Saxo's gateway: `…/sim/openapi` -> `SIM_TOKEN_URL`, `…/openapi` -> `LIVE_TOKEN_URL`;
    - any other host (the simulator, a proxy) whose path ends in `/openapi`: the sibling
      `/token` on the same host (`http://127.0.0.1:8080/sim/openapi` -> `…/sim/token`);
    - otherwise None (then `token_url` must be configured for the refresh flow).
    """
    parsed = urlparse(base_url)
    path = parsed.path.rstrip("/")
    if (parsed.hostname or "").lower() == SAXO_GATEWAY:
        return {"/sim/openapi": SIM_TOKEN_URL, "/openapi": LIVE_TOKEN_URL}.get(path)
    if path.endswith("/openapi"):
        return f"{parsed.scheme}://{parsed.netloc}{path[: -len('/openapi')]}/token"
    return None


class TokenProvider:
    """The bearer token of one connector, refreshed at most once per stale token (thread-safe)."""

    def __init__(
        self,
        source: str,
        *,
        access_token: Secret | None,
        client_id: Secret | None = None,
        client_secret: Secret | None = None,
        refresh_token: Secret | None = None,
        token_url: str | None = None,
        session: requests.Session | None = None,
        connect_timeout: float = 5.0,
        read_timeout: float = 30.0,
        retry: RetryPolicy | None = None,
        sleep: Callable[[float], None] = time.sleep,
        budget: HttpClient | None = None,
    ) -> None:
        self.source = source
        self._access = _reveal(access_token)
        self._client_id = _reveal(client_id)
        self._client_secret = _reveal(client_secret)
        self._refresh = _reveal(refresh_token)
        self.token_url = token_url
        self._session = session
        self._timeouts = (connect_timeout, read_timeout)
        self._retry = retry or RetryPolicy()
        self._sleep = sleep
        #: The source's client; its time budget caps the token call (None: uncapped).
        self.budget = budget
        self._lock = threading.Lock()
        #: Successful refreshes so far (observability and tests; never the tokens).
        self.refreshes = 0

    def __repr__(self) -> str:
        return f"TokenProvider(source={self.source!r}, can_refresh={self.can_refresh})"

    @property
    def can_refresh(self) -> bool:
        return bool(self._client_id and self._client_secret and self._refresh and self.token_url)

    def current(self) -> str:
        """The access token to send; obtained through the refresh flow when none is held."""
        with self._lock:
            if self._access is None:
                self._refresh_locked()
            assert self._access is not None
            return self._access

    def refresh(self, stale: str) -> None:
        """Replace `stale` (the token a 401 answered) unless another caller already did."""
        with self._lock:
            if self._access is not None and self._access != stale:
                return
            self._refresh_locked()

    def close(self) -> None:
        """Close the token session (a later refresh opens a new one)."""
        if self._session is not None:
            self._session.close()
            self._session = None

    # --- the token call ------------------------------------------------------------------

    def _refresh_locked(self) -> None:
        if not self.can_refresh:
            raise VenueAuthError(
                self.source,
                "access token rejected or missing, and no refresh credentials "
                "(client_id, client_secret, refresh_token) are configured",
            )
        assert self.token_url is not None
        form = {
            "grant_type": "refresh_token",
            "refresh_token": self._refresh or "",
            "client_id": self._client_id or "",
            "client_secret": self._client_secret or "",
        }
        status, body = self._post(self.token_url, form)
        where = f"POST {_path(self.token_url)}"
        doc = _json_object(body)
        if status != 200:
            code = doc.get("error") if doc else None
            code = code if isinstance(code, str) and _OAUTH_CODE.fullmatch(code) else None
            message = f"token refresh refused: {where} answered HTTP {status} {code or ''}".strip()
            if status in (400, 401, 403):
                raise VenueAuthError(self.source, message, code=code, status=status)
            raise VenueUnavailable(self.source, message, code=code, status=status)
        token = doc.get("access_token") if doc else None
        if not isinstance(token, str) or not token.strip():
            raise MalformedResponse(self.source, f"{where}: answer has no access_token")
        self._access = token.strip()
        rotated = doc.get("refresh_token") if doc else None
        if isinstance(rotated, str) and rotated.strip():
            self._refresh = rotated.strip()
        self.refreshes += 1
        log.info("%s: access token refreshed (refresh #%d)", self.source, self.refreshes)

    def _post(self, url: str, form: dict[str, str]) -> tuple[int, bytes]:
        where = f"POST {_path(url)}"
        pending = f"{where}: not sent"
        if self._session is None:
            self._session = requests.Session()
        attempt = 0
        while True:
            attempt += 1
            left = self._check_budget(pending)
            connect, read = self._timeouts
            try:
                resp = self._session.post(
                    url, data=form, headers={"Accept": "application/json"},
                    timeout=(min(connect, left), min(read, left)), allow_redirects=False,
                )  # fmt: skip
            except requests.RequestException as exc:
                # Never the exception text: a request error can quote the form it sent.
                reason = type(exc).__name__
                pending = f"{where}: {_failure(exc)}"
                self._check_budget(pending)
                if attempt >= self._retry.max_attempts:
                    raise VenueUnavailable(
                        self.source, f"{where} failed after {attempt} attempts: {reason}"
                    ) from None
                self._wait(attempt, None, pending)
                continue
            if resp.status_code not in RETRY_STATUSES or attempt >= self._retry.max_attempts:
                return resp.status_code, resp.content
            pending = f"{where}: answered HTTP {resp.status_code}"
            self._wait(attempt, resp.headers.get("Retry-After"), pending, resp.status_code)

    def _wait(
        self, attempt: int, retry_after: str | None, pending: str, status: int | None = None
    ) -> None:
        delay = retry_after_seconds(retry_after)
        if delay is None:
            base = self._retry.backoff_seconds * (2 ** (attempt - 1))
            delay = min(self._retry.max_backoff_seconds, base) * random.uniform(0.5, 1.0)
        delay = min(delay, self._retry.max_retry_after_seconds)
        left = self._left()
        if delay + MIN_ATTEMPT_SECONDS > left:
            # Sleeping into the deadline only to fail there would waste the others' time.
            raise self._timeout(f"{pending}; no time left to retry", status)
        self._sleep(min(delay, left))

    def _left(self) -> float:
        return math.inf if self.budget is None else self.budget.remaining()

    def _check_budget(self, pending: str) -> float:
        """What is left of the budget; `SourceTimeout` when too little is left for an attempt."""
        left = self._left()
        if left < MIN_ATTEMPT_SECONDS:
            raise self._timeout(pending)
        return left

    def _timeout(self, pending: str, status: int | None = None) -> SourceTimeout:
        budget = self.budget.budget_seconds if self.budget is not None else None
        return SourceTimeout(self.source, budget or 0.0, pending, status=status)


def _reveal(value: str | None) -> str | None:
    if value is None:
        return None
    text = value.reveal() if isinstance(value, Secret) else str(value)
    return text.strip() or None


def _json_object(body: bytes) -> dict[str, object] | None:
    try:
        doc = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return None
    return doc if isinstance(doc, dict) else None


def _path(url: str) -> str:
    return urlparse(url).path or "/"
