"""Simulated Kraken Futures: `GET /derivatives/api/v3/subaccounts` (seed 003).

Authentication is checked the way the venue does it, computed here independently of the
connector: `APIKey` must be the configured key, `Authent` must be
base64(HMAC-SHA512(base64decode(secret), SHA256(postData + Nonce + endpointPath))) with
endpointPath the path after `/derivatives`, and a `Nonce`, when sent, must exceed the last
accepted one for that key. Failures answer like Kraken: HTTP 401 `authenticationError`,
HTTP 400 `nonceBelowThreshold` / `nonceDuplicate`.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import random
import threading
from datetime import UTC, datetime
from typing import Any

from etl_project.simulator import data
from etl_project.simulator.routing import Request, Response
from etl_project.simulator.server import Simulator

VENUE = "kraken_futures"
PREFIX = "/derivatives"
SUBACCOUNTS_PATH = f"{PREFIX}/api/v3/subaccounts"

#: Error code Kraken sends for an HTTP status, used for injected faults.
_FAULT_CODES = {
    400: "invalidArgument",
    401: "authenticationError",
    404: "notFound",
    429: "apiLimitExceeded",
    500: "Server Error",
    502: "Unavailable",
    503: "Unavailable",
    504: "Unavailable",
}


def server_time() -> str:
    """`2022-03-31T20:38:53.677Z`, as Kraken writes it."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def error_body(code: str) -> bytes:
    doc = {"result": "error", "serverTime": server_time(), "error": code}
    return json.dumps(doc).encode("utf-8")


def expected_authent(secret_b64: str, endpoint_path: str, nonce: str, post_data: str) -> str | None:
    """The venue-side signature; None when the configured secret is not base64."""
    try:
        key = base64.b64decode(secret_b64, validate=True)
    except (binascii.Error, ValueError):
        return None
    message = hashlib.sha256(f"{post_data}{nonce}{endpoint_path}".encode()).digest()
    return base64.b64encode(hmac.new(key, message, hashlib.sha512).digest()).decode("ascii")


class KrakenFuturesVenue:
    """State of the simulated venue: its data, and the last nonce accepted per key."""

    def __init__(self, sim: Simulator) -> None:
        self.sim = sim
        config = sim.config
        self.api_key = config.kraken_api_key
        self.api_secret = config.kraken_api_secret
        self.document: dict[str, Any] = data.kraken_subaccounts(
            random.Random(config.seed), config.kraken_subaccounts
        )
        self._lock = threading.Lock()
        self._last_nonce: dict[str, int] = {}

    def fault_body(self, status: int) -> bytes:
        return error_body(_FAULT_CODES.get(status, "unknownError"))

    def body(self) -> bytes:
        """The generated success body; byte-identical for a seed apart from `serverTime`."""
        doc = dict(self.document)
        doc["serverTime"] = server_time()
        return data.dumps(doc).encode("utf-8")

    def subaccounts(self, request: Request) -> Response:
        problem = self.authenticate(request)
        if problem is not None:
            return problem
        payload = self.sim.payload(VENUE)
        return Response(200, payload if payload is not None else self.body())

    def authenticate(self, request: Request) -> Response | None:
        key = request.header("APIKey")
        signature = request.header("Authent")
        nonce = request.header("Nonce") or ""
        if key != self.api_key or not signature:
            return Response(401, error_body("authenticationError"))
        endpoint_path = request.path[len(PREFIX) :]
        expected = expected_authent(self.api_secret, endpoint_path, nonce, request.query)
        if expected is None or not hmac.compare_digest(signature.encode(), expected.encode()):
            return Response(401, error_body("authenticationError"))
        if not nonce:
            return None
        if not nonce.isascii() or not nonce.isdigit():
            return Response(400, error_body("invalidArgument"))
        value = int(nonce)
        with self._lock:
            last = self._last_nonce.get(key, -1)
            if value == last:
                return Response(400, error_body("nonceDuplicate"))
            if value < last:
                return Response(400, error_body("nonceBelowThreshold"))
            self._last_nonce[key] = value
        return None


def install(sim: Simulator) -> None:
    """Register the venue and its route on a simulator."""
    venue = KrakenFuturesVenue(sim)
    sim.add_venue(VENUE, venue.fault_body)
    sim.add_route("GET", SUBACCOUNTS_PATH, VENUE, venue.subaccounts)
