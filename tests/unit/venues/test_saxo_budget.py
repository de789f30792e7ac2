"""Saxo's own waits share the source's one time budget: the rate limiter and the token refresh.

Fake clocks and sessions for the arithmetic; one real local socket (a token endpoint that
accepts and never answers) for the timeout requests really applies.
"""

from __future__ import annotations

import socket
import threading
import time
from datetime import UTC, date, datetime
from typing import Any

import pytest
import requests

from etl_project.config import Secret, SourceConfig
from etl_project.errors import SourceTimeout, VenueError, VenueUnavailable
from etl_project.http import Deadline, HttpClient, RawResponse, RetryPolicy
from etl_project.raw import RawSnapshot, SnapshotRecorder
from etl_project.simulator import Simulator, SimulatorConfig
from etl_project.simulator import saxo as sim_saxo
from etl_project.venues.saxo.auth import TokenProvider
from etl_project.venues.saxo.connector import SaxoConnector, SaxoSettings
from etl_project.venues.saxo.limits import SlidingWindowLimiter

SLACK = 0.75  # seconds allowed past the budget (thread start, socket close, a slow CI box)
BALANCES = "https://gateway.saxobank.com/sim/openapi/port/v1/balances?AccountKey=acct-42"
SECRETS = ("cid-7", "cs-s3cr3t", "rt-s3cr3t", "at-s3cr3t")


class FakeClock:
    """A clock and a sleep that advances it; records every sleep."""

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def budget(clock: FakeClock, seconds: float, **kwargs: Any) -> HttpClient:
    """The source's client with `seconds` of budget from the fake clock's now."""
    return HttpClient("saxo_test", clock=clock, sleep=clock.sleep,
                      deadline=Deadline.after(seconds, start=clock.now), **kwargs)  # fmt: skip


def limiter(clock: FakeClock, limit: int, http: HttpClient) -> SlidingWindowLimiter:
    return SlidingWindowLimiter(limit, clock=clock, sleep=clock.sleep, budget=http)


def exhausted(reset: str) -> RawResponse:
    headers = {"X-RateLimit-Session-Remaining": "0", "X-RateLimit-Session-Reset": reset}
    return RawResponse("GET", BALANCES, 200, headers, b"{}", "t")


# --- the rate limiter --------------------------------------------------------------------------


def test_limiter_window_wait_that_fits_is_slept() -> None:
    clock = FakeClock()
    limits = limiter(clock, 1, budget(clock, 100.0))
    limits.acquire()
    clock.now += 20.0
    limits.acquire()  # 40 s of window left, 80 s of budget: waits
    assert clock.sleeps == [40.0] and limits.waited == 40.0


def test_limiter_window_wait_past_the_deadline_raises_at_once() -> None:
    clock = FakeClock()
    limits = limiter(clock, 1, budget(clock, 50.0))
    limits.acquire()
    clock.now += 20.0  # 40 s of window left, 30 s of budget
    with pytest.raises(SourceTimeout) as caught, limits.requesting("GET", BALANCES):
        limits.acquire()
    assert str(caught.value) == (
        "saxo_test: no answer within its time budget of 50s "
        "(GET /sim/openapi/port/v1/balances: rate-limit wait of 40s exceeds the time left)"
    )
    assert clock.sleeps == [] and limits.waited == 0.0  # not one second slept into the deadline
    assert caught.value.source == "saxo_test" and caught.value.budget_seconds == 50.0


def test_limiter_header_hold_is_capped_by_the_budget() -> None:
    clock = FakeClock()
    limits = limiter(clock, 120, budget(clock, 30.0))
    limits.observe(exhausted("20"))
    limits.acquire()  # a 20 s hold fits into 30 s
    assert clock.sleeps == [20.0]
    limits.observe(exhausted("100"))  # within max_header_wait (120 s), beyond the 10 s left
    with pytest.raises(SourceTimeout) as caught:
        limits.acquire()
    assert str(caught.value) == (
        "saxo_test: no answer within its time budget of 30s "
        "(next request: rate-limit wait of 100s exceeds the time left)"
    )
    assert clock.sleeps == [20.0]


def test_limiter_wait_must_leave_time_for_the_request() -> None:
    clock = FakeClock()
    limits = limiter(clock, 120, budget(clock, 10.0))
    limits.block_for(9.92)  # ends 0.08 s before the deadline: no time left to send anything
    with pytest.raises(
        SourceTimeout, match=r"rate-limit wait of (9\.9|10)s exceeds the time left\)$"
    ):
        limits.acquire()
    assert clock.sleeps == []


def test_limiter_without_a_budget_waits_as_before() -> None:
    clock = FakeClock()
    limits = SlidingWindowLimiter(120, clock=clock, sleep=clock.sleep)
    limits.observe(exhausted("100"))
    limits.acquire()
    assert clock.sleeps == [100.0]


def test_limiter_names_the_request_per_thread_and_only_inside_the_block() -> None:
    clock = FakeClock()
    limits = limiter(clock, 120, budget(clock, 10.0))
    limits.block_for(60.0)
    seen: list[str] = []

    def other_thread() -> None:
        try:
            limits.acquire()
        except SourceTimeout as exc:
            seen.append(exc.pending)

    with limits.requesting("GET", "https://gateway.saxobank.com/sim/openapi/port/v1/accounts/me"):
        worker = threading.Thread(target=other_thread)
        worker.start()
        worker.join(5)
        with pytest.raises(SourceTimeout, match=r"\(GET /sim/openapi/port/v1/accounts/me: "):
            limits.acquire()
    with pytest.raises(SourceTimeout, match=r"\(next request: rate-limit"):
        limits.acquire()
    assert seen == ["next request: rate-limit wait of 60s exceeds the time left"]


class CountingSession(requests.Session):
    """Answers every request 200 `{}` at once; counts them."""

    def __init__(self) -> None:
        super().__init__()
        self.sent = 0

    def request(self, method: str | bytes, url: str | bytes, *args: Any, **kwargs: Any) -> Any:
        self.sent += 1
        resp = requests.Response()
        resp.status_code, resp.url, resp._content = 200, str(url), b"{}"
        return resp


def test_limiter_in_the_http_client_sends_nothing_it_cannot_wait_for() -> None:
    clock = FakeClock()
    session = CountingSession()
    http = budget(clock, 30.0, session=session)
    limits = limiter(clock, 2, http)
    http.before_request, http.after_response = limits.acquire, limits.observe
    with limits.requesting("GET", BALANCES):
        http.get(BALANCES)
        http.get(BALANCES)
        with pytest.raises(SourceTimeout) as caught:
            http.get(BALANCES)  # the window holds it 60 s; the budget has 30 s
    assert session.sent == 2 and clock.sleeps == []
    assert str(caught.value) == (
        "saxo_test: no answer within its time budget of 30s "
        "(GET /sim/openapi/port/v1/balances: rate-limit wait of 60s exceeds the time left)"
    )
    assert "acct-42" not in str(caught.value) and "gateway" not in str(caught.value)


def test_connector_with_a_budgeted_limiter_ends_the_listing_in_time() -> None:
    """Over HTTP from the simulator: one account per page, one request per minute, a 30 s
    budget. Page 2 would wait 60 s, so the fetch ends at once instead of at the deadline."""
    with Simulator(SimulatorConfig(seed=7, saxo_accounts=2, saxo_page_size=1)) as sim:
        clock = FakeClock()
        snapshot = RawSnapshot("saxo_test", "saxo", date(2026, 1, 2),
                               datetime(2026, 1, 3, tzinfo=UTC))  # fmt: skip
        http = budget(clock, 30.0, recorder=SnapshotRecorder(snapshot))
        token = Secret(SimulatorConfig().saxo_access_token)
        settings = SaxoSettings(base_url=sim_saxo.base_url(sim), page_size=1, access_token=token)
        source = SourceConfig(name="saxo_test", kind="saxo", settings=settings)
        connector = SaxoConnector(source, http, limiter=limiter(clock, 1, http))
        try:
            with pytest.raises(SourceTimeout, match=r"rate-limit wait of 60s exceeds the time"):
                connector.fetch()
        finally:
            http.session.close()
        assert clock.sleeps == [] and len(snapshot.responses) == 1
        assert sim.request_count("saxo") == 1
        assert len(sim_saxo.venue(sim).accounts) == 2  # page 2 was never asked for


# --- the token refresh (fake clock) ------------------------------------------------------------


class TokenSession(requests.Session):
    """Each post takes `took` seconds of the fake clock (at most its read timeout), then
    answers from `script` (status, headers) or raises `fail`; records each call's timeouts."""

    def __init__(
        self,
        clock: FakeClock,
        *,
        took: float = 0.0,
        fail: Exception | None = None,
        script: list[tuple[int, dict[str, str]]] | None = None,
    ) -> None:
        super().__init__()
        self.clock, self.took, self.fail, self.script = clock, took, fail, script or []
        self.timeouts: list[Any] = []

    def post(self, url: str | bytes, data: Any = None, **kwargs: Any) -> requests.Response:
        self.timeouts.append(kwargs["timeout"])
        self.clock.now += min(self.took, kwargs["timeout"][1])  # never longer than its timeout
        if self.fail is not None:
            raise self.fail
        status, headers = self.script.pop(0)
        resp = requests.Response()
        resp.status_code, resp.url = status, str(url)
        resp._content = b'{"access_token": "at-s3cr3t"}' if status == 200 else b"{}"
        resp.headers.update(headers)
        return resp


def tokens_for(
    session: requests.Session | None,
    http: HttpClient,
    token_url: str = "https://sim.logonvalidation.net/token?client_id=cid-7",
    **kwargs: Any,
) -> TokenProvider:
    return TokenProvider("saxo_test", access_token=None, client_id=Secret("cid-7"),
                         client_secret=Secret("cs-s3cr3t"), refresh_token=Secret("rt-s3cr3t"),
                         token_url=token_url, session=session, sleep=http.sleep, budget=http,
                         **kwargs)  # fmt: skip


def assert_no_secret(message: str) -> None:
    assert "\n" not in message
    assert not any(leak in message for leak in (*SECRETS, "logonvalidation", "127.0.0.1", "?"))


def test_token_timeouts_and_retries_stay_inside_the_budget() -> None:
    clock = FakeClock()
    http = budget(clock, 12.0)
    session = TokenSession(clock, took=4.0, fail=requests.ReadTimeout("POST ...cs-s3cr3t"))
    tokens = tokens_for(session, http, retry=RetryPolicy(max_attempts=10, backoff_seconds=0))
    with pytest.raises(SourceTimeout) as caught:
        tokens.current()
    message = str(caught.value)
    assert message == (
        "saxo_test: no answer within its time budget of 12s (POST /token: read timed out)"
    )
    assert_no_secret(message)
    # 4 s each from 1000: the third attempt's read timeout is the last 4 s of the budget.
    assert session.timeouts == [(5.0, 12.0), (5.0, 8.0), (4.0, 4.0)]
    assert clock.now == 1012.0


def test_token_backoff_that_cannot_finish_is_not_slept() -> None:
    clock = FakeClock()
    http = budget(clock, 10.0)
    session = TokenSession(clock, took=1.0, script=[(503, {"Retry-After": "20"})])
    tokens = tokens_for(session, http)
    with pytest.raises(SourceTimeout) as caught:
        tokens.current()
    assert str(caught.value) == (
        "saxo_test: no answer within its time budget of 10s "
        "(POST /token: answered HTTP 503; no time left to retry)"
    )
    assert caught.value.status == 503
    assert clock.sleeps == [] and len(session.timeouts) == 1


def test_token_backoff_that_fits_is_slept_and_the_refresh_succeeds() -> None:
    clock = FakeClock()
    http = budget(clock, 10.0)
    session = TokenSession(clock, took=1.0, script=[(503, {"Retry-After": "3"}), (200, {})])
    tokens = tokens_for(session, http)
    assert tokens.current() == "at-s3cr3t"
    assert clock.sleeps == [3.0]
    assert session.timeouts == [(5.0, 10.0), (5.0, 6.0)]  # the retry got what was left


def test_token_call_with_a_spent_budget_sends_nothing() -> None:
    clock = FakeClock()
    http = budget(clock, 5.0)
    session = TokenSession(clock, script=[(200, {})])
    tokens = tokens_for(session, http)
    clock.now += 4.95
    with pytest.raises(SourceTimeout) as caught:
        tokens.refresh(stale="anything")
    assert str(caught.value) == (
        "saxo_test: no answer within its time budget of 5s (POST /token: not sent)"
    )
    assert session.timeouts == []


def test_token_attempts_still_end_the_retries_inside_the_budget() -> None:
    clock = FakeClock()
    http = budget(clock, 100.0)
    session = TokenSession(clock, took=1.0, fail=requests.ConnectionError("refused"))
    tokens = tokens_for(session, http, retry=RetryPolicy(max_attempts=2, backoff_seconds=0))
    with pytest.raises(VenueUnavailable, match=r"POST /token failed after 2 attempts"):
        tokens.current()
    assert len(session.timeouts) == 2


# --- the token refresh (real socket) -----------------------------------------------------------


def test_a_hung_token_endpoint_ends_within_the_budget_in_one_line(
    hung_url: tuple[str, list[socket.socket]],
) -> None:
    url, accepted = hung_url
    http = HttpClient("saxo_test", deadline=Deadline.after(1.0))
    tokens = tokens_for(None, http, token_url=f"{url}/sim/token?tenant=t-1", read_timeout=30.0)
    started = time.monotonic()
    try:
        with pytest.raises(SourceTimeout) as caught:
            tokens.current()
    finally:
        tokens.close()
    elapsed = time.monotonic() - started
    assert 0.9 <= elapsed < 1.0 + SLACK
    message = str(caught.value)
    assert message == (
        "saxo_test: no answer within its time budget of 1s (POST /sim/token: read timed out)"
    )
    assert_no_secret(message)
    assert "t-1" not in message
    assert isinstance(caught.value, VenueError) and caught.value.source == "saxo_test"
    assert len(accepted) == 1  # the read timeout was capped at the budget: no second attempt
