"""Simulated Saxo OpenAPI (seed 001): accounts, balances, the OAuth2 token endpoint, rate limits.

Routes (venue name `saxo`; every request is counted and obeys `sim.set_fault("saxo", ...)`):
- `GET /sim/openapi/port/v1/accounts/me`: `{"__count", "Data": [...], "__next"?}`, paged with
  `$top` (default `SimulatorConfig.saxo_page_size`, at most 1000) and `$skip`. `__next` links
  alternate absolute (odd pages) and relative (even pages) so a client must follow both forms;
  `venue(sim).next_link` = `"absolute"`, `"relative"` or `"none"` (`$skip`/`__count` only).
- `GET /sim/openapi/port/v1/balances?ClientKey=…&AccountKey=…`: a body shaped like seed 001's
  example with seeded exact decimals (2 fractional digits). Deterministically, the third
  account (index 2, present when `saxo_accounts >= 3`) answers
  `"CalculationReliability": "ApproximatedPrice"`; every other one `"Ok"`. Missing keys: 400,
  unknown account or a ClientKey that does not own it: 404.
- `POST /sim/token`: RFC 6749 refresh (`grant_type=refresh_token`, `refresh_token`,
  `client_id`, `client_secret` in the form, or the client pair as HTTP Basic). Issues a new
  access token and a rotated refresh token; the configured refresh token and every issued one
  stay valid (no expiry is simulated), 400 `invalid_grant` / 401 `invalid_client` otherwise.

Auth: `Authorization: Bearer <token>` must be the configured `saxo_access_token` (unless
`venue(sim).expire_static_token()` was called) or an issued one; else 401 with a Saxo-style
`{"ErrorCode", "Message"}` body. Rate limit: a sliding window of `saxo_rate_limit_per_minute`
requests per token per 60 s; every OpenAPI answer carries `X-RateLimit-Session-Limit`,
`-Remaining` and `-Reset` (seconds until a slot frees); past the limit 429 with `Retry-After`.

Controls beyond `SimulatorConfig`, on `venue(sim)`: `fail_account`, `expire_static_token`,
`set_accounts` (a fixed accounts list), `next_link`, `clock` (of the rate window).
`sim.serve_payload("saxo", bytes)` serves the bytes verbatim as every account's balances.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import random
import secrets
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import parse_qs

from etl_project.simulator import data
from etl_project.simulator.routing import Request, Response
from etl_project.simulator.saxo_data import saxo_accounts, saxo_balances
from etl_project.simulator.server import Simulator

VENUE = "saxo"
PREFIX = "/sim/openapi"
ACCOUNTS_PATH = f"{PREFIX}/port/v1/accounts/me"
BALANCES_PATH = f"{PREFIX}/port/v1/balances"
TOKEN_PATH = "/sim/token"
WINDOW_SECONDS = 60.0
MAX_TOP = 1000

_ERROR_CODES = {
    400: "InvalidRequest", 401: "Unauthorized", 403: "Forbidden", 404: "NotFound",
    429: "RateLimitExceeded", 500: "InternalServerError", 502: "BadGateway",
    503: "ServiceUnavailable", 504: "GatewayTimeout",
}  # fmt: skip

_VENUES: weakref.WeakKeyDictionary[Simulator, SaxoVenue] = weakref.WeakKeyDictionary()


def venue(sim: Simulator) -> SaxoVenue:
    """The simulated Saxo venue of a simulator (for controls tests need)."""
    return _VENUES[sim]


def base_url(sim: Simulator) -> str:
    """The OpenAPI base URL to configure (`base_url`) against this simulator."""
    return f"{sim.url}{PREFIX}"


def token_url(sim: Simulator) -> str:
    return f"{sim.url}{TOKEN_PATH}"


def error_body(status: int, message: str | None = None) -> bytes:
    code = _ERROR_CODES.get(status, "UnknownError")
    return json.dumps({"ErrorCode": code, "Message": message or f"Simulated {code}"}).encode()


class SaxoVenue:
    """State of the simulated venue: data, tokens, per-token rate windows, account faults."""

    def __init__(self, sim: Simulator) -> None:
        config = sim.config
        self._sim = weakref.ref(sim)
        self.page_size = config.saxo_page_size
        self.rate_limit = config.saxo_rate_limit_per_minute
        self.client_id = config.saxo_client_id
        self.client_secret = config.saxo_client_secret
        self.static_token = config.saxo_access_token
        rng = random.Random(f"saxo:{config.seed}")
        self._generated = saxo_accounts(rng, config.saxo_accounts)
        self._balances = {
            a["AccountKey"]: saxo_balances(rng, i, a["Currency"])
            for i, a in enumerate(self._generated)
        }
        self._accounts: list[dict[str, Any]] = self._generated
        #: "alternate" (default), "absolute", "relative" or "none".
        self.next_link = "alternate"
        #: Clock of the rate window (tests may replace it).
        self.clock: Callable[[], float] = time.monotonic
        self.static_token_expired = False
        self._lock = threading.Lock()
        self._issued: set[str] = set()
        self._configured_refresh = config.saxo_refresh_token
        self._refresh_tokens = {config.saxo_refresh_token}
        self._windows: dict[str, deque[float]] = {}
        self._account_faults: dict[str, tuple[int, bytes | None]] = {}
        #: Successful token refreshes served.
        self.refreshes = 0

    # --- controls ------------------------------------------------------------------------

    @property
    def accounts(self) -> list[dict[str, Any]]:
        return list(self._accounts)

    @property
    def issued_tokens(self) -> list[str]:
        """Every access and refresh token issued so far (tests check none of them leaks)."""
        with self._lock:
            return sorted(self._issued | (self._refresh_tokens - {self._configured_refresh}))

    def set_accounts(self, accounts: list[dict[str, Any]] | None) -> None:
        """Serve these `accounts/me` entries instead of the generated ones (None: back)."""
        self._accounts = list(accounts) if accounts is not None else self._generated

    def expire_static_token(self, expired: bool = True) -> None:
        """Make the configured access token answer 401, so clients must refresh."""
        self.static_token_expired = expired

    def fail_account(self, account_key: str, status: int = 500, body: bytes | None = None) -> None:
        """Every balances request for this account answers `status` until cleared."""
        with self._lock:
            self._account_faults[account_key] = (status, body)

    def clear_account_faults(self) -> None:
        with self._lock:
            self._account_faults.clear()

    # --- handlers ------------------------------------------------------------------------

    def accounts_me(self, request: Request) -> Response:
        token, problem = self._admit(request)
        if problem is not None:
            return problem
        query = parse_qs(request.query, keep_blank_values=True)
        try:
            top = min(int(_first(query, "$top") or self.page_size), MAX_TOP)
            skip = int(_first(query, "$skip") or 0)
            if top < 1 or skip < 0:
                raise ValueError
        except ValueError:
            return self._answer(token, 400, error_body(400, "$top/$skip must be integers"))
        everything = self._accounts
        doc: dict[str, Any] = {"__count": len(everything), "Data": everything[skip : skip + top]}
        if skip + top < len(everything):
            link = self._next_link(request, top, skip + top, page=skip // top + 1)
            if link is not None:
                doc["__next"] = link
        return self._answer(token, 200, data.dumps(doc).encode("utf-8"))

    def balances(self, request: Request) -> Response:
        token, problem = self._admit(request)
        if problem is not None:
            return problem
        query = parse_qs(request.query, keep_blank_values=True)
        client_key, account_key = _first(query, "ClientKey"), _first(query, "AccountKey")
        if not client_key or not account_key:
            message = "ClientKey and AccountKey are required"
            return self._answer(token, 400, error_body(400, message))
        account = next((a for a in self._accounts if a.get("AccountKey") == account_key), None)
        if account is None or account.get("ClientKey") != client_key:
            return self._answer(token, 404, error_body(404, "Account not found for client"))
        with self._lock:
            fault = self._account_faults.get(account_key)
        if fault is not None:
            status, body = fault
            return self._answer(token, status, body if body is not None else error_body(status))
        sim = self._sim()
        payload = sim.payload(VENUE) if sim is not None else None
        if payload is not None:
            return self._answer(token, 200, payload)
        doc = self._balances.get(account_key)
        if doc is None:  # an account given through set_accounts without generated data
            index = self._accounts.index(account)
            seed = random.Random(f"saxo:{account_key}")
            doc = saxo_balances(seed, index, str(account.get("Currency") or "EUR"))
        return self._answer(token, 200, data.dumps(doc).encode("utf-8"))

    def token(self, request: Request) -> Response:
        form = {k: v[0] for k, v in parse_qs(request.body.decode("utf-8", "replace")).items()}
        client_id, client_secret = form.get("client_id"), form.get("client_secret")
        basic = _basic(request.header("Authorization"))
        if basic is not None:
            client_id, client_secret = basic
        if form.get("grant_type") != "refresh_token":
            return _oauth_error(400, "unsupported_grant_type")
        if client_id != self.client_id or client_secret != self.client_secret:
            return _oauth_error(401, "invalid_client")
        with self._lock:
            if form.get("refresh_token") not in self._refresh_tokens:
                return _oauth_error(400, "invalid_grant")
            access = f"sim-saxo-access-{secrets.token_urlsafe(16)}"
            refresh = f"sim-saxo-refresh-{secrets.token_urlsafe(16)}"
            self._issued.add(access)
            self._refresh_tokens.add(refresh)
            self.refreshes += 1
        doc = {"access_token": access, "token_type": "Bearer", "expires_in": 1200,
               "refresh_token": refresh, "refresh_token_expires_in": 3600}  # fmt: skip
        return Response(200, json.dumps(doc).encode("utf-8"), headers={"Cache-Control": "no-store"})

    # --- auth and rate limit -------------------------------------------------------------

    def _admit(self, request: Request) -> tuple[str, Response | None]:
        """The caller's token, or the 401/429 answer that stops the request."""
        header = request.header("Authorization") or ""
        scheme, _, token = header.partition(" ")
        token = token.strip()
        with self._lock:
            valid = token in self._issued or (
                token == self.static_token and not self.static_token_expired
            )
        if scheme.lower() != "bearer" or not token or not valid:
            return token, Response(
                401,
                error_body(401, "Authorization token is invalid"),
                headers={"WWW-Authenticate": 'Bearer error="invalid_token"'},
            )
        with self._lock:
            now = self.clock()
            window = self._windows.setdefault(token, deque())
            while window and window[0] <= now - WINDOW_SECONDS:
                window.popleft()
            if len(window) >= self.rate_limit:
                headers = self._rate_headers(window, now)
                headers["Retry-After"] = headers["X-RateLimit-Session-Reset"]
                return token, Response(429, error_body(429, "Request rate limit exceeded"),
                                       headers=headers)  # fmt: skip
            window.append(now)
        return token, None

    def _rate_headers(self, window: deque[float], now: float) -> dict[str, str]:
        reset = math.ceil(window[0] + WINDOW_SECONDS - now) if window else 0
        return {
            "X-RateLimit-Session-Limit": str(self.rate_limit),
            "X-RateLimit-Session-Remaining": str(max(0, self.rate_limit - len(window))),
            "X-RateLimit-Session-Reset": str(max(0, reset)),
        }

    def _answer(self, token: str, status: int, body: bytes) -> Response:
        with self._lock:
            headers = self._rate_headers(self._windows.get(token, deque()), self.clock())
        return Response(status, body, headers=headers)

    def _next_link(self, request: Request, top: int, skip: int, page: int) -> str | None:
        mode = self.next_link
        if mode == "none":
            return None
        relative = f"{ACCOUNTS_PATH}?$top={top}&$skip={skip}"
        if mode == "relative" or (mode == "alternate" and page % 2 == 0):
            return relative
        return f"http://{request.header('Host') or '127.0.0.1'}{relative}"

    def fault_body(self, status: int) -> bytes:
        return error_body(status)


def _first(query: Mapping[str, list[str]], name: str) -> str | None:
    values = query.get(name)
    return values[0] if values else None


def _basic(header: str | None) -> tuple[str, str] | None:
    if not header or not header.lower().startswith("basic "):
        return None
    try:
        decoded = base64.b64decode(header[6:].strip(), validate=True).decode("utf-8")
    except (binascii.Error, ValueError):
        return None
    user, colon, password = decoded.partition(":")
    return (user, password) if colon else None


def _oauth_error(status: int, code: str) -> Response:
    return Response(status, json.dumps({"error": code}).encode("utf-8"))


def install(sim: Simulator) -> None:
    """Register the venue and its routes on a simulator."""
    saxo = SaxoVenue(sim)
    _VENUES[sim] = saxo
    sim.add_venue(VENUE, saxo.fault_body)
    sim.add_route("GET", ACCOUNTS_PATH, VENUE, saxo.accounts_me)
    sim.add_route("GET", BALANCES_PATH, VENUE, saxo.balances)
    sim.add_route("POST", TOKEN_PATH, VENUE, saxo.token)
