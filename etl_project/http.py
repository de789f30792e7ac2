"""The one HTTP layer every venue client uses.

A `requests.Session` with connect/read timeouts, retries on 429 and 5xx that honour
`Retry-After` (seconds or an HTTP date), capped exponential backoff with jitter otherwise,
JSON parsed with exact decimals, and every response handed to a recorder *before* anything
parses it, so the raw snapshot is landed verbatim even when parsing later fails.
"""

from __future__ import annotations

import email.utils
import json
import logging
import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, Protocol

import requests

from etl_project.errors import MalformedResponse, VenueRateLimited, VenueUnavailable

log = logging.getLogger(__name__)

RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})


@dataclass(frozen=True)
class RawResponse:
    """One venue response exactly as received (body bytes untouched)."""

    method: str
    url: str
    status: int
    headers: Mapping[str, str]
    body: bytes
    received_at: str

    def json(self, source: str) -> Any:
        """Decode the body as JSON with every number an exact `Decimal`."""
        return parse_json(self.body, source, self.url)


def parse_json(body: bytes, source: str, what: str) -> Any:
    """JSON with exact decimals; a body that is not JSON is a `MalformedResponse`."""
    try:
        return json.loads(body, parse_float=Decimal, parse_int=Decimal)
    except (ValueError, UnicodeDecodeError) as exc:
        raise MalformedResponse(source, f"{what}: response is not valid JSON ({exc})") from None


def json_kind(value: Any) -> str:
    """JSON type name of a decoded value, for error messages naming what a venue sent."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, Decimal | int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__


class Recorder(Protocol):
    """Receives every response as it arrives (see `etl_project.raw.SnapshotRecorder`)."""

    def record(self, response: RawResponse) -> None: ...


@dataclass(frozen=True)
class RetryPolicy:
    """How hard to try: attempts, backoff and the longest `Retry-After` we accept."""

    max_attempts: int = 4
    backoff_seconds: float = 0.5
    max_backoff_seconds: float = 30.0
    max_retry_after_seconds: float = 120.0


@dataclass
class HttpClient:
    """Shared session for one source. Not a singleton: one per source and run."""

    source: str
    recorder: Recorder | None = None
    connect_timeout: float = 5.0
    read_timeout: float = 30.0
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    sleep: Callable[[float], None] = time.sleep
    session: requests.Session = field(default_factory=requests.Session)
    #: Called before each attempt (rate limiters plug in here).
    before_request: Callable[[], None] | None = None
    #: Called with each response (rate-limit header readers plug in here).
    after_response: Callable[[RawResponse], None] | None = None

    def request(
        self,
        method: str,
        url: str,
        *,
        headers: Callable[[], Mapping[str, str]] | Mapping[str, str] | None = None,
        params: Mapping[str, str] | None = None,
        retry_statuses: frozenset[int] = RETRY_STATUSES,
    ) -> RawResponse:
        """Send with retries. `headers` may be a callable so signatures/nonces are per attempt."""
        attempt = 0
        while True:
            attempt += 1
            if self.before_request is not None:
                self.before_request()
            sent_headers = headers() if callable(headers) else (headers or {})
            try:
                resp = self.session.request(
                    method,
                    url,
                    headers=dict(sent_headers),
                    params=params,
                    timeout=(self.connect_timeout, self.read_timeout),
                    allow_redirects=False,
                )
            except requests.RequestException as exc:
                # The exception text can hold the URL but never headers; still keep it short.
                reason = type(exc).__name__
                if attempt >= self.retry.max_attempts:
                    raise VenueUnavailable(
                        self.source,
                        f"{method} {_path(url)} failed after {attempt} attempts: {reason}",
                    ) from None
                self._wait(attempt, None, reason)
                continue
            raw = RawResponse(
                method=method,
                url=resp.url,
                status=resp.status_code,
                headers={k: v for k, v in resp.headers.items() if _keep_header(k)},
                body=resp.content,
                received_at=datetime.now(UTC).isoformat(timespec="microseconds"),
            )
            if self.recorder is not None:
                self.recorder.record(raw)
            if self.after_response is not None:
                self.after_response(raw)
            if raw.status not in retry_statuses:
                return raw
            if attempt >= self.retry.max_attempts:
                error = VenueRateLimited if raw.status == 429 else VenueUnavailable
                raise error(
                    self.source,
                    f"{method} {_path(url)} answered HTTP {raw.status} {attempt} times; giving up",
                    status=raw.status,
                )
            self._wait(attempt, raw.headers.get("Retry-After"), f"HTTP {raw.status}")

    def get(self, url: str, **kwargs: Any) -> RawResponse:
        return self.request("GET", url, **kwargs)

    def _wait(self, attempt: int, retry_after: str | None, reason: str) -> None:
        delay = retry_after_seconds(retry_after)
        if delay is None:
            base = self.retry.backoff_seconds * (2 ** (attempt - 1))
            delay = min(self.retry.max_backoff_seconds, base) * random.uniform(0.5, 1.0)
        delay = min(delay, self.retry.max_retry_after_seconds)
        log.info("%s: %s, retrying in %.2fs (attempt %d)", self.source, reason, delay, attempt)
        self.sleep(delay)


def retry_after_seconds(value: str | None, now: datetime | None = None) -> float | None:
    """`Retry-After` as seconds: delta-seconds or an HTTP date; None when absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


_KEPT_HEADERS = ("content-type", "date", "retry-after", "x-ratelimit")


def _keep_header(name: str) -> bool:
    """Only response headers useful for audit; cookies and anything else stay out of raw files."""
    lower = name.lower()
    return any(lower.startswith(prefix) for prefix in _KEPT_HEADERS)


def _path(url: str) -> str:
    """URL without its query string, for messages (queries can carry account names)."""
    return url.split("?", 1)[0]
