"""The stdlib HTTP request handler that feeds `Simulator.handle`: wire format, not venue logic."""

from __future__ import annotations

import logging
from http.server import BaseHTTPRequestHandler
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from etl_project.simulator.routing import Request, json_response

if TYPE_CHECKING:
    from etl_project.simulator.server import Simulator

__all__ = ["handler_class"]

log = logging.getLogger(__name__)


def handler_class(sim: Simulator) -> type[BaseHTTPRequestHandler]:
    class _RequestHandler(BaseHTTPRequestHandler):
        server_version = "etl-balances-simulator/1"
        sys_version = ""
        protocol_version = "HTTP/1.0"  # one request per connection: stop() leaves nothing behind

        def _serve(self) -> None:
            parts = urlsplit(self.path)
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length > 0 else b""
            request = Request(
                method=self.command,
                path=parts.path,
                query=parts.query,
                headers={k: v for k, v in self.headers.items()},
                body=body,
            )
            try:
                response = sim.handle(request)
            except Exception as exc:  # a handler bug must still answer, and show in the log
                log.exception("simulator handler failed for %s %s", self.command, parts.path)
                response = json_response(500, {"error": f"simulator error: {type(exc).__name__}"})
            if response is None:  # a hung request the stopping server drops unanswered
                self.close_connection = True
                return
            try:
                self.send_response(response.status)
                self.send_header("Content-Type", response.content_type)
                self.send_header("Content-Length", str(len(response.body)))
                for name, value in response.headers.items():
                    self.send_header(name, value)
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(response.body)
            except (BrokenPipeError, ConnectionResetError):
                # The client gave up first (e.g. timed out on a hung fault): nothing to answer.
                log.debug(
                    "simulator: client left before %s %s was answered", self.command, parts.path
                )
                self.close_connection = True

        do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = _serve

        def log_message(self, format: str, *args: Any) -> None:
            log.debug("simulator: " + format, *args)

    return _RequestHandler
