"""The simulator's HTTP server: router, request counting, fault injection, admin endpoints.

Venues are modules listed in `VENUE_MODULES`; each has `install(sim)` that calls
`sim.add_venue(...)` and `sim.add_route(...)`. A route's handler gets a `Request` and returns a
`Response`. Before a venue handler runs, the server counts the request for that venue and, when
a fault is armed (`set_fault`), answers the fault instead. A fault with `hang_seconds` first
holds the request unanswered that long (a venue that accepts and never answers); clearing the
faults ends the hang early with the fault's answer, stopping the server drops it unanswered.

Admin endpoints (never counted as venue requests):
- `GET /_sim/requests`: `{"<venue>": <count>, ...}` for every installed venue;
- `POST /_sim/faults` with `{"venue", "status", "times", "retry_after", "body", "hang_seconds"}`:
  arm a fault;
- `DELETE /_sim/faults`: clear every fault (and release hung requests).
"""

from __future__ import annotations

import importlib
import json
import logging
import threading
import time
from dataclasses import dataclass
from http.server import ThreadingHTTPServer

from etl_project.simulator.config import SimulatorConfig
from etl_project.simulator.http_handler import handler_class
from etl_project.simulator.routing import (
    ErrorBody,
    Handler,
    Request,
    Response,
    Router,
    json_response,
)

log = logging.getLogger(__name__)

#: Venue modules; each exposes `install(sim: Simulator) -> None`. A new venue adds one line.
VENUE_MODULES: tuple[str, ...] = (
    "etl_project.simulator.kraken_futures",
    "etl_project.simulator.platform",
    "etl_project.simulator.saxo",
    "etl_project.simulator.settlement_report",
)

ADMIN_PREFIX = "/_sim/"


@dataclass
class _Fault:
    status: int
    remaining: int
    retry_after: float | int | str | None
    body: bytes | None
    hang_seconds: float | None = None


class Simulator:
    """A local HTTP server speaking like the venues (see the module docstring)."""

    def __init__(self, config: SimulatorConfig | None = None) -> None:
        self.config = config or SimulatorConfig()
        self.router = Router()
        self._lock = threading.Lock()
        self._counts: dict[str, int] = {}
        self._faults: dict[str, _Fault] = {}
        self._payloads: dict[str, bytes] = {}
        self._error_bodies: dict[str, ErrorBody] = {}
        #: Set to end every current hang (a new one per clear, so later hangs hang again).
        self._release = threading.Event()
        self._stopping = False
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        for module in VENUE_MODULES:
            importlib.import_module(module).install(self)

    # --- venue registration --------------------------------------------------------------

    def add_venue(self, name: str, error_body: ErrorBody) -> None:
        """Register a venue; `error_body(status)` is its error body for injected faults."""
        self._counts.setdefault(name, 0)
        self._error_bodies[name] = error_body

    def add_route(self, method: str, template: str, venue: str, handler: Handler) -> None:
        self._known(venue)
        self.router.add(method, template, venue, handler)

    @property
    def venues(self) -> tuple[str, ...]:
        return tuple(self._counts)

    def payload(self, venue: str) -> bytes | None:
        """The bytes set by `serve_payload` for a venue, if any."""
        with self._lock:
            return self._payloads.get(venue)

    # --- lifecycle -----------------------------------------------------------------------

    def start(self) -> Simulator:
        if self._server is not None:
            raise RuntimeError("simulator already started")
        server = ThreadingHTTPServer((self.config.host, self.config.port), handler_class(self))
        with self._lock:
            self._stopping = False
            self._release = threading.Event()
        server.daemon_threads = True
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": 0.1},
            name="venue-simulator",
            daemon=True,
        )
        self._thread.start()
        log.info("venue simulator listening on %s", self.url)
        return self

    def stop(self) -> None:
        server, thread = self._server, self._thread
        self._server = self._thread = None
        if server is None:
            return
        with self._lock:
            self._stopping = True
            self._release.set()  # hung requests end now (unanswered); shutdown never waits
        server.shutdown()
        server.server_close()
        if thread is not None:
            thread.join(timeout=5)

    def __enter__(self) -> Simulator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        if self._server is None:
            raise RuntimeError("simulator is not started")
        host, port = self._server.server_address[:2]
        host_text = host.decode() if isinstance(host, bytes) else str(host)
        return f"http://{host_text}:{port}"

    @property
    def kraken_base_url(self) -> str:
        return f"{self.url}/derivatives/api/v3"

    @property
    def saxo_base_url(self) -> str:
        return f"{self.url}/sim/openapi"

    @property
    def platform_base_url(self) -> str:
        return self.url

    def settlement_report_location(self, fmt: str = "csv") -> str:
        """A `location` for a settlement_report source (`{date}` is left for the connector)."""
        return f"{self.url}/reports/client-balance/{{date}}.{fmt}"

    # --- control -------------------------------------------------------------------------

    def request_count(self, venue: str | None = None) -> int:
        """Venue requests received (admin endpoints excluded), for one venue or all."""
        with self._lock:
            if venue is None:
                return sum(self._counts.values())
            self._known(venue)
            return self._counts[venue]

    def set_fault(
        self,
        venue: str,
        status: int = 503,
        times: int = 1,
        retry_after: float | int | str | None = None,
        body: bytes | None = None,
        hang_seconds: float | None = None,
    ) -> None:
        """The next `times` requests of `venue` answer `status` (replaces an armed fault).

        With `hang_seconds`, each of them is first held unanswered that long (or until the
        faults are cleared, or the server stops), as a venue that accepts and never answers.
        """
        self._known(venue)
        if not 100 <= int(status) <= 599:
            raise ValueError(f"status {status} is not an HTTP status")
        if int(times) < 1:
            raise ValueError("times must be at least 1")
        hang = None if hang_seconds is None else float(hang_seconds)
        if hang is not None and not hang > 0:
            raise ValueError("hang_seconds must be positive")
        with self._lock:
            self._faults[venue] = _Fault(int(status), int(times), retry_after, body, hang)

    def set_hang(self, venue: str, hang_seconds: float = 3600.0, times: int = 1000) -> None:
        """Requests of `venue` are accepted and not answered for `hang_seconds` (then 503)."""
        self.set_fault(venue, status=503, times=times, hang_seconds=hang_seconds)

    def clear_faults(self) -> None:
        """Disarm every fault; requests hanging now are released and answer their fault."""
        with self._lock:
            self._faults.clear()
            self._release.set()
            self._release = threading.Event()

    def serve_payload(self, venue: str, payload: bytes | None) -> None:
        """Serve these bytes verbatim instead of generated data (None: back to generated)."""
        self._known(venue)
        with self._lock:
            if payload is None:
                self._payloads.pop(venue, None)
            else:
                self._payloads[venue] = bytes(payload)

    def _known(self, venue: str) -> None:
        if venue not in self._counts:
            raise ValueError(f"unknown venue {venue!r} (known: {', '.join(self._counts)})")

    # --- dispatch ------------------------------------------------------------------------

    def handle(self, request: Request) -> Response | None:
        """The answer to one request; None: drop the connection unanswered (server stopping)."""
        if request.path.startswith(ADMIN_PREFIX):
            return self._admin(request)
        matched = self.router.match(request.method, request.path)
        if matched is None:
            return json_response(404, {"error": "notFound", "path": request.path})
        if matched == "method":
            return json_response(405, {"error": "methodNotAllowed", "path": request.path})
        assert not isinstance(matched, str)
        route, params = matched
        with self._lock:
            self._counts[route.venue] += 1
            fault = self._faults.get(route.venue)
            if fault is not None:
                fault.remaining -= 1
                if fault.remaining <= 0:
                    del self._faults[route.venue]
            release = self._release
        if fault is not None and fault.hang_seconds is not None:
            release.wait(fault.hang_seconds)
            with self._lock:
                if self._stopping:
                    return None
        if fault is not None:
            headers = {} if fault.retry_after is None else {"Retry-After": str(fault.retry_after)}
            body = (
                fault.body
                if fault.body is not None
                else self._error_bodies[route.venue](fault.status)
            )
            return Response(fault.status, body, headers=headers)
        request = Request(
            request.method, request.path, request.query, request.headers, request.body, params
        )
        return route.handler(request)

    def _admin(self, request: Request) -> Response:
        path = request.path
        if path == "/_sim/requests" and request.method == "GET":
            with self._lock:
                return json_response(200, dict(self._counts))
        if path == "/_sim/faults" and request.method == "DELETE":
            self.clear_faults()
            return json_response(200, {"ok": True})
        if path == "/_sim/faults" and request.method == "POST":
            try:
                doc = json.loads(request.body or b"{}")
                if not isinstance(doc, dict):
                    raise ValueError("body must be a JSON object")
                body = doc.get("body")
                self.set_fault(
                    str(doc["venue"]),
                    status=int(doc.get("status", 503)),
                    times=int(doc.get("times", 1)),
                    retry_after=doc.get("retry_after"),
                    body=None if body is None else str(body).encode("utf-8"),
                    hang_seconds=doc.get("hang_seconds"),
                )
            except (KeyError, TypeError, ValueError) as exc:
                return json_response(400, {"error": f"bad fault: {exc}"})
            return json_response(200, {"ok": True})
        return json_response(404, {"error": "notFound", "path": path})


def serve_forever(config: SimulatorConfig) -> None:
    """Run the simulator in the foreground until interrupted (`etl-balances simulate`)."""
    sim = Simulator(config).start()
    print(f"venue simulator listening on {sim.url}", flush=True)
    print(f"  kraken_futures base_url: {sim.kraken_base_url}", flush=True)
    print(f"  saxo base_url: {sim.saxo_base_url}", flush=True)
    print(f"  platform base_url: {sim.platform_base_url}", flush=True)
    print(f"  settlement_report location: {sim.settlement_report_location()}", flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        sim.stop()
