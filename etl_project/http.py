"""The one HTTP layer every venue client uses.

A `requests.Session` with connect/read timeouts, retries on 429 and 5xx that honour
`Retry-After` (seconds or an HTTP date), capped exponential backoff with jitter otherwise,
JSON parsed with exact decimals, and every response handed to a recorder *before* anything
parses it, so the raw snapshot is landed verbatim even when parsing later fails.

A client may carry a `deadline` (epoch seconds): the source's one time budget for every
attempt, wait and retry of every layer. Timeouts are capped at what is left of it, a retry
that cannot finish before it is not started, and running out raises `SourceTimeout`.
"""

from __future__ import annotations

import email.utils
import json
import logging
import math
import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, Protocol
from urllib.parse import urlsplit

import requests
from urllib3.exceptions import ReadTimeoutError

from etl_project.errors import MalformedResponse, SourceTimeout, VenueRateLimited, VenueUnavailable

log = logging.getLogger(__name__)

RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})

#: An attempt is only started when at least this much of the budget is left after its wait.
MIN_ATTEMPT_SECONDS = 0.1


class Deadline(float):
    """Epoch seconds (`time.time()`) at which a source's time budget ends.

    Wall-clock so it means the same in every process a retried step runs in; a plain float
    to every caller (it passes through `take_snapshot` untouched) that also remembers
    the budget's length, so the timeout message names the configured budget, not what is left.
    """

    budget_seconds: float | None

    def __new__(cls, at: float, budget_seconds: float | None = None) -> Deadline:
        self = super().__new__(cls, at)
        self.budget_seconds = budget_seconds
        return self

    @classmethod
    def after(cls, budget_seconds: float, start: float | None = None) -> Deadline:
        """The deadline `budget_seconds` after `start` (epoch seconds; default now)."""
        begin = time.time() if start is None else start
        return cls(begin + budget_seconds, budget_seconds)


@dataclass(frozen=True)
class RawResponse:
    """One venue response exactly as received (body bytes untouched)."""

    method: str
    url: str
    status: int
    headers: Mapping[str, str]
    body: bytes
    received_at: str
    #: A body too big to hold in memory stays in this local file (then `body` is empty): a
    #: settlement report read from disk is landed from its file, never loaded whole.
    body_path: str | None = None

    def head(self, size: int = 1 << 16) -> bytes:
        """The first `size` bytes of the body, wherever it is."""
        if self.body_path is None:
            return self.body[:size]
        with open(self.body_path, "rb") as fh:
            return fh.read(size)

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
    #: Epoch seconds by which the source must be done, retries included (None: no budget).
    deadline: float | None = None
    #: The budget's length, for messages; defaults to the `Deadline`'s or to what is left now.
    budget_seconds: float | None = None
    clock: Callable[[], float] = time.time

    def __post_init__(self) -> None:
        if self.deadline is not None and self.budget_seconds is None:
            known = getattr(self.deadline, "budget_seconds", None)
            self.budget_seconds = known if known is not None else self.remaining()

    def remaining(self) -> float:
        """Seconds left of the source's budget (`math.inf` without a deadline).

        Connectors that sleep on their own (rate limiters, token refreshes) cap sleeps with it.
        """
        if self.deadline is None:
            return math.inf
        return max(0.0, self.deadline - self.clock())

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
        where = f"{method} {_path(url)}"
        shown = f"{method} {urlsplit(url).path or '/'}"  # a timeout names the path alone
        pending = f"{shown}: not sent"
        attempt = 0
        while True:
            attempt += 1
            if self.before_request is not None:
                self._check_budget(pending)
                self.before_request()  # may sleep (rate limits): check the budget after it
            # Headers first: building them may refresh a token, which spends budget too.
            sent_headers = headers() if callable(headers) else (headers or {})
            timeout = self._timeouts(pending)
            try:
                resp = self.session.request(
                    method,
                    url,
                    headers=dict(sent_headers),
                    params=params,
                    timeout=timeout,
                    allow_redirects=False,
                )
            except requests.RequestException as exc:
                # The exception text can hold the URL but never headers; keep only its kind.
                reason = type(exc).__name__
                pending = f"{shown}: {_failure(exc)}"
                self._check_budget(pending)
                if attempt >= self.retry.max_attempts:
                    raise VenueUnavailable(
                        self.source, f"{where} failed after {attempt} attempts: {reason}"
                    ) from None
                self._wait(attempt, None, reason, pending)
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
            pending = f"{shown}: answered HTTP {raw.status}"
            self._wait(
                attempt, raw.headers.get("Retry-After"), f"HTTP {raw.status}", pending, raw.status
            )

    def get(self, url: str, **kwargs: Any) -> RawResponse:
        return self.request("GET", url, **kwargs)

    def _wait(
        self,
        attempt: int,
        retry_after: str | None,
        reason: str,
        pending: str,
        status: int | None = None,
    ) -> None:
        delay = retry_after_seconds(retry_after)
        if delay is None:
            base = self.retry.backoff_seconds * (2 ** (attempt - 1))
            delay = min(self.retry.max_backoff_seconds, base) * random.uniform(0.5, 1.0)
        delay = min(delay, self.retry.max_retry_after_seconds)
        if delay + MIN_ATTEMPT_SECONDS > self.remaining():
            # Sleeping into the deadline only to fail there would waste the others' time.
            raise self._timeout(f"{pending}; no time left to retry", status)
        log.info("%s: %s, retrying in %.2fs (attempt %d)", self.source, reason, delay, attempt)
        self.sleep(delay)

    def _check_budget(self, pending: str) -> None:
        """Raise `SourceTimeout` when too little of the budget is left to start an attempt."""
        if self.remaining() < MIN_ATTEMPT_SECONDS:
            raise self._timeout(pending)

    def _timeouts(self, pending: str) -> tuple[float, float]:
        """(connect, read) timeouts of the next attempt, capped at what is left of the budget."""
        self._check_budget(pending)
        left = self.remaining()
        return min(self.connect_timeout, left), min(self.read_timeout, left)

    def _timeout(self, pending: str, status: int | None = None) -> SourceTimeout:
        return SourceTimeout(self.source, self.budget_seconds or 0.0, pending, status=status)


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


def _failure(exc: requests.RequestException) -> str:
    """What went wrong with a request, in words (never the exception text: it quotes the URL)."""
    if isinstance(exc, requests.ConnectTimeout):
        return "connect timed out"
    if isinstance(exc, requests.ReadTimeout):
        return "read timed out"
    if isinstance(exc, requests.ConnectionError) and any(
        isinstance(arg, ReadTimeoutError) for arg in exc.args
    ):
        return "read timed out"  # a body read that timed out surfaces as a ConnectionError
    return f"request failed ({type(exc).__name__})"


def _path(url: str) -> str:
    """URL without its query string, for messages (queries can carry account names)."""
    return url.split("?", 1)[0]
