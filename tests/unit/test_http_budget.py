"""One time budget per source in `HttpClient`: a hung venue ends within it, in one line.

Real local sockets: a server that accepts and never answers, and one that always answers 503,
so the timeouts and waits measured here are the ones requests really applies.
"""

from __future__ import annotations

import math
import pickle
import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
import requests

from etl_project.errors import SourceTimeout, VenueError, VenueUnavailable
from etl_project.http import Deadline, HttpClient, RawResponse, RetryPolicy

SLACK = 0.75  # seconds allowed past the budget (thread start, socket close, a slow CI box)
PATH = "/derivatives/api/v3/subaccounts"


@pytest.fixture()
def unavailable_url() -> Iterator[tuple[str, list[float]]]:
    """A server answering every GET with 503 and `Retry-After: 1`. Yields (url, request times)."""
    seen: list[float] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            seen.append(time.monotonic())
            self.send_response(503)
            self.send_header("Retry-After", "1")
            self.send_header("Content-Length", "4")
            self.end_headers()
            self.wfile.write(b"down")

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", seen
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


class Recorder:
    def __init__(self) -> None:
        self.responses: list[RawResponse] = []

    def record(self, response: RawResponse) -> None:
        self.responses.append(response)


# --- real sockets ----------------------------------------------------------------------------


def test_a_hung_venue_ends_within_its_budget_in_one_line(
    hung_url: tuple[str, list[socket.socket]],
) -> None:
    url, accepted = hung_url
    http = HttpClient("kraken_main", read_timeout=30.0, deadline=Deadline.after(1.0))
    started = time.monotonic()
    with pytest.raises(SourceTimeout) as caught:
        http.get(f"{url}{PATH}?account=desk-7&token=s3cr3t", headers={"APIKey": "k3y"})
    elapsed = time.monotonic() - started
    assert 0.9 <= elapsed < 1.0 + SLACK
    message = str(caught.value)
    assert message == (
        f"kraken_main: no answer within its time budget of 1s (GET {PATH}: read timed out)"
    )
    assert "\n" not in message
    assert not any(leak in message for leak in ("desk-7", "s3cr3t", "k3y", "127.0.0.1", "?"))
    assert isinstance(caught.value, VenueError) and caught.value.source == "kraken_main"
    assert len(accepted) == 1  # the read timeout was capped at the budget: no second attempt


def test_retries_of_a_hung_venue_never_multiply_past_the_budget(
    hung_url: tuple[str, list[socket.socket]],
) -> None:
    url, accepted = hung_url
    http = HttpClient(
        "kraken_main",
        read_timeout=0.3,
        retry=RetryPolicy(max_attempts=100, backoff_seconds=0.01, max_backoff_seconds=0.02),
        deadline=Deadline.after(1.5),
    )
    started = time.monotonic()
    with pytest.raises(SourceTimeout, match=r"^kraken_main: no answer within its time budget"):
        http.get(f"{url}{PATH}")
    assert time.monotonic() - started < 1.5 + SLACK
    assert 2 <= len(accepted) <= 6  # it did retry, only inside the budget


def test_5xx_retries_stop_at_the_deadline(unavailable_url: tuple[str, list[float]]) -> None:
    url, seen = unavailable_url
    recorder = Recorder()
    http = HttpClient(
        "platform_main",
        recorder=recorder,
        retry=RetryPolicy(max_attempts=10),
        deadline=Deadline.after(1.5),
    )
    started = time.monotonic()
    with pytest.raises(SourceTimeout) as caught:
        http.get(f"{url}/api/accounts/?page=2")
    elapsed = time.monotonic() - started
    # Retry-After: 1 fits once into 1.5 s; the second wait would end past the deadline, so it is
    # not started: the client gives up at ~1 s instead of sleeping into the deadline.
    assert len(seen) == 2 and 0.9 <= elapsed < 1.5
    assert str(caught.value) == (
        "platform_main: no answer within its time budget of 1.5s "
        "(GET /api/accounts/: answered HTTP 503; no time left to retry)"
    )
    assert caught.value.status == 503
    assert [r.status for r in recorder.responses] == [503, 503]  # every answer still landed


def test_without_a_deadline_attempts_still_end_the_retries(
    unavailable_url: tuple[str, list[float]],
) -> None:
    url, seen = unavailable_url
    http = HttpClient("platform_main", retry=RetryPolicy(max_attempts=2), sleep=lambda _s: None)
    assert http.remaining() == math.inf
    with pytest.raises(VenueUnavailable, match="answered HTTP 503 2 times; giving up"):
        http.get(f"{url}/api/accounts/")
    assert len(seen) == 2


# --- the budget's arithmetic (fake clock and session) ----------------------------------------


class Clock:
    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


class Session(requests.Session):
    """Takes `took` seconds of the fake clock (at most its read timeout), then answers 200 or
    raises `fail`; records each call's (connect, read) timeout."""

    def __init__(self, clock: Clock, took: float = 0.0, fail: Exception | None = None) -> None:
        super().__init__()
        self.clock, self.took, self.fail = clock, took, fail
        self.timeouts: list[Any] = []

    def request(self, method: str | bytes, url: str | bytes, *args: Any, **kwargs: Any) -> Any:
        self.timeouts.append(kwargs["timeout"])
        self.clock.now += min(self.took, kwargs["timeout"][1])  # never longer than its timeout
        if self.fail is not None:
            raise self.fail
        resp = requests.Response()
        resp.status_code, resp.url, resp._content = 200, str(url), b"{}"
        return resp


def client(clock: Clock, session: Session, seconds: float, **kwargs: Any) -> HttpClient:
    return HttpClient(
        "src",
        session=session,
        clock=clock,
        sleep=clock.sleep,
        deadline=Deadline.after(seconds, start=clock.now),
        **kwargs,
    )


def test_timeouts_are_capped_at_what_is_left() -> None:
    clock = Clock()
    session = Session(clock, took=8.0)
    http = client(clock, session, 12.0, connect_timeout=5.0, read_timeout=30.0)
    assert http.get("https://venue.example/a").status == 200
    assert http.remaining() == 4.0
    http.get("https://venue.example/b")
    assert session.timeouts == [(5.0, 12.0), (4.0, 4.0)]


def test_a_spent_budget_sends_nothing() -> None:
    clock = Clock()
    session = Session(clock)
    http = client(clock, session, 5.0)
    clock.now += 5.0
    with pytest.raises(SourceTimeout) as caught:
        http.get("https://venue.example/x?key=1")
    assert str(caught.value) == "src: no answer within its time budget of 5s (GET /x: not sent)"
    assert session.timeouts == []


def test_a_rate_limit_wait_past_the_deadline_sends_nothing() -> None:
    clock = Clock()
    session = Session(clock)
    http = client(clock, session, 10.0, before_request=lambda: clock.sleep(60.0))
    with pytest.raises(SourceTimeout, match=r"budget of 10s \(GET /x: not sent\)$"):
        http.get("https://venue.example/x")
    assert session.timeouts == []


def test_connection_failures_retry_only_inside_the_budget() -> None:
    clock = Clock()
    session = Session(clock, took=2.0, fail=requests.ConnectTimeout("https://venue.example/x?q"))
    http = client(clock, session, 7.0, retry=RetryPolicy(max_attempts=10, backoff_seconds=0))
    with pytest.raises(SourceTimeout) as caught:
        http.get("https://venue.example/x")
    assert str(caught.value) == (
        "src: no answer within its time budget of 7s (GET /x: connect timed out)"
    )
    # 2 s each from 1000: the fourth attempt gets the last second, as its connect timeout too.
    assert session.timeouts == [(5.0, 7.0), (5.0, 5.0), (3.0, 3.0), (1.0, 1.0)]
    assert clock.now == 1007.0


def test_deadline_remembers_its_budget() -> None:
    deadline = Deadline.after(120.0, start=1000.0)
    assert deadline == 1120.0 and deadline.budget_seconds == 120.0
    copied = pickle.loads(pickle.dumps(deadline))
    assert copied == 1120.0 and copied.budget_seconds == 120.0
    clock = Clock(1030.0)
    # A plain float: the message names what was left when the client was made.
    assert HttpClient("s", deadline=1120.0, clock=clock).budget_seconds == 90.0
    assert HttpClient("s", deadline=deadline, clock=clock).budget_seconds == 120.0


def test_source_timeout_is_one_line() -> None:
    error = SourceTimeout("src", 2.5, "GET /x:\n  read\ttimed out", status=None)
    assert str(error) == "src: no answer within its time budget of 2.5s (GET /x: read timed out)"
    assert isinstance(error, VenueError) and error.budget_seconds == 2.5
