"""Client-side request budget for Saxo OpenAPI (seed 001: 120 requests/minute per session).

`SlidingWindowLimiter` allows at most `limit` request attempts in any rolling `window` seconds
(every attempt counts, retries included, as Saxo counts them). It plugs into the shared
`HttpClient`: `acquire` as `before_request` (blocks until a slot is free) and `observe` as
`after_response` (reads `X-RateLimit-<dimension>-Remaining` / `-Reset`; when a dimension is
exhausted, no request leaves until that dimension resets). Clock and sleep are injectable,
so tests never sleep for real. Thread-safe.

With a `budget` (the source's `HttpClient`), no wait outlasts the source's one time budget: a
wait that cannot end before its deadline (leaving `MIN_ATTEMPT_SECONDS` for the request) is not
started, and `acquire` raises `SourceTimeout` at once, naming the request it held back when the
caller said which (`requesting`), e.g. `GET /openapi/port/v1/balances: rate-limit wait of 40s
exceeds the time left`.
"""

from __future__ import annotations

import logging
import math
import re
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from urllib.parse import urlsplit

from etl_project.errors import SourceTimeout, seconds_text
from etl_project.http import MIN_ATTEMPT_SECONDS, HttpClient, RawResponse

__all__ = ["SlidingWindowLimiter", "exhausted_reset"]

log = logging.getLogger(__name__)

_REMAINING = re.compile(r"x-ratelimit-(.+)-remaining")


class SlidingWindowLimiter:
    """At most `limit` acquisitions in any rolling `window` seconds (thread-safe).

    `max_header_wait` bounds how long a `Reset` header may hold requests back: a dimension that
    resets later than that (Saxo's per-application daily quota) is not waited for; the venue's
    429 then ends the fetch through the HTTP layer's retry budget instead of a silent hang.

    `budget` is the source's `HttpClient`: its `remaining()` caps every wait (see the module).
    """

    def __init__(
        self,
        limit: int,
        window: float = 60.0,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        max_header_wait: float = 120.0,
        budget: HttpClient | None = None,
    ) -> None:
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
            raise ValueError("limit must be a positive integer")
        if window <= 0:
            raise ValueError("window must be positive")
        self.limit = limit
        self.window = float(window)
        self.max_header_wait = max_header_wait
        #: The source's client; its time budget caps every wait (None: waits are uncapped).
        self.budget = budget
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        self._sent: deque[float] = deque()
        self._blocked_until = float("-inf")
        self._naming = threading.local()  # per thread: the request `acquire` is waiting for
        #: Seconds spent waiting in `acquire`, in total (observability and tests).
        self.waited = 0.0

    def acquire(self) -> None:
        """Block until one more request fits the window (and no header hold is active).

        Raises `SourceTimeout` instead of waiting past the `budget`'s deadline.
        """
        while True:
            with self._lock:
                now = self._clock()
                while self._sent and self._sent[0] <= now - self.window:
                    self._sent.popleft()
                if self._blocked_until > now:
                    wait = self._blocked_until - now
                elif len(self._sent) >= self.limit:
                    wait = self._sent[0] + self.window - now
                else:
                    self._sent.append(now)
                    return
                left = self._left(wait)
                self.waited += wait
            log.debug("rate limiter: waiting %.3fs", wait)
            self._sleep(min(wait, left))

    @contextmanager
    def requesting(self, method: str, url: str) -> Iterator[None]:
        """Name the request that acquisitions in this block (this thread) are for, so that a
        `SourceTimeout` says which request it held back: method and path, never host or query."""
        previous = getattr(self._naming, "what", None)
        self._naming.what = f"{method} {urlsplit(url).path or '/'}"
        try:
            yield
        finally:
            self._naming.what = previous

    def _left(self, wait: float) -> float:
        """What is left of the budget, when `wait` fits in it; else `SourceTimeout` at once."""
        if self.budget is None:
            return math.inf
        left = self.budget.remaining()
        if wait + MIN_ATTEMPT_SECONDS > left:
            what = getattr(self._naming, "what", None) or "next request"
            pending = f"{what}: rate-limit wait of {seconds_text(wait)}s exceeds the time left"
            raise SourceTimeout(self.budget.source, self.budget.budget_seconds or 0.0, pending)
        return left

    def block_for(self, seconds: float) -> None:
        """Hold every request back for `seconds` from now (extends, never shortens, a hold)."""
        with self._lock:
            self._blocked_until = max(self._blocked_until, self._clock() + max(0.0, seconds))

    def observe(self, response: RawResponse) -> None:
        """Read the venue's rate-limit headers; an exhausted dimension holds requests back."""
        reset = exhausted_reset(response.headers)
        if reset is not None and reset <= self.max_header_wait:
            log.info("rate limit exhausted per venue headers; holding requests %.1fs", reset)
            self.block_for(reset)


def exhausted_reset(headers: Mapping[str, str]) -> float | None:
    """Seconds until the latest-resetting exhausted `X-RateLimit-*` dimension resets.

    A dimension is exhausted when its `-Remaining` is 0 or less; its `-Reset` is the number of
    seconds until the quota resets (seed 001). None when no dimension is exhausted or the
    headers are absent or unreadable.
    """
    lower = {k.lower(): v for k, v in headers.items()}
    longest: float | None = None
    for name, value in lower.items():
        found = _REMAINING.fullmatch(name)
        if found is None:
            continue
        remaining = _seconds(value)
        reset = _seconds(lower.get(f"x-ratelimit-{found.group(1)}-reset"))
        if remaining is None or reset is None or remaining > 0:
            continue
        reset = max(0.0, reset)
        longest = reset if longest is None else max(longest, reset)
    return longest


def _seconds(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        number = float(value.strip())
    except ValueError:
        return None
    return number if math.isfinite(number) else None
