"""Simulated multi-exchange platform (seeds 002/004): accounts, cached balances, balances.

Routes (all need `Authorization: Token <platform_api_token>`; otherwise HTTP 401 with
`{"detail": "Authentication credentials were not provided."}` or `{"detail": "Invalid token."}`):
- `GET /api/accounts/`: the seeded accounts with exactly the seed's fields, including the
  `api_key` and the masked `api_secret`/`password` the real platform returns. Archived accounts
  (the last of `platform_accounts`, renamed `<name>_archived_<uuid>`) are listed only with
  `?include_archived=true`, as documented.
- `GET /api/sor/get_cached_account_balance[?account_names=a,b]`: `balances[]` of the named
  non-archived accounts (all of them without the parameter; unknown and archived names are
  ignored), decimals as strings; the last `platform_failed_accounts` non-archived accounts are
  answered in `errors[]` instead. Tokens and positions (`BTC:PERP-USDT`, `ETH:PERP-USDT`, with
  `initial_margin`) per wallet, a `borrowed` token and an exponent-form dust amount.
- `GET /api/balances/[?account_names=a,b]`: the same assets keyed by account name, numbers
  as JSON numbers (the older endpoint of the seed).

Fixed payloads: `sim.serve_payload("platform", body)` replaces the cached-balance answer;
`platform_venue(sim).accounts_payload = body` replaces the account listing. Both are served
verbatim (no filtering). `platform_venue(sim).requested_names` lists the `account_names` of
every cached-balance request, for tests.
"""

from __future__ import annotations

import hmac
import random
import threading
import time
import weakref
from decimal import Decimal
from typing import Any
from urllib.parse import parse_qs

from etl_project.simulator import data
from etl_project.simulator.data import Num, decimal, plain, seeded_uuid, tiny
from etl_project.simulator.routing import Request, Response
from etl_project.simulator.server import Simulator

VENUE = "platform"
ACCOUNTS_PATH = "/api/accounts/"
CACHED_BALANCE_PATH = "/api/sor/get_cached_account_balance"
BALANCES_PATH = "/api/balances/"

_FAULT_DETAILS = {
    400: "Bad request.",
    401: "Invalid token.",
    403: "You do not have permission to perform this action.",
    404: "Not found.",
    429: "Request was throttled.",
}
_USERS = ((1042, "desk-ada"), (1043, "desk-grace"))
_ROLES = ("main", "hedge", "arb", "mm", "ops")
_CREATED = "2024-0{month}-1{day}T08:3{minute}:00.000000Z"

_VENUES: weakref.WeakKeyDictionary[Simulator, PlatformVenue] = weakref.WeakKeyDictionary()


def detail_body(detail: str) -> bytes:
    return data.dumps({"detail": detail}).encode("utf-8")


def _token(
    symbol: str, wallet: str, amount: Decimal | Num, borrowed: Decimal | None = None
) -> dict[str, Any]:
    """A token asset as the cached endpoint writes it (decimals as strings)."""
    text = str.__str__(amount) if isinstance(amount, Num) else plain(amount)
    return {
        "symbol": symbol, "amount": text, "margin_balance": None, "unrealized_profit": None,
        "notional": text, "wallet_type": wallet, "asset_type": "token", "funding_fee": None,
        "borrowed": None if borrowed is None else plain(borrowed), "initial_margin": None,
        "maint_margin": None, "leverage": None, "margin_mode": None,
    }  # fmt: skip


def _position(rng: random.Random, symbol: str, wallet: str, short: bool) -> dict[str, Any]:
    size = decimal(rng, 2, 3, negative=short)
    notional = decimal(rng, 6000, 6)
    leverage = Decimal(rng.choice((2, 5, 10)))
    initial = (notional / leverage).quantize(Decimal("0.00000001"))
    return {
        "symbol": symbol, "amount": plain(size), "margin_balance": None,
        "unrealized_profit": plain(decimal(rng, 40, 8, negative=rng.random() < 0.5)),
        "notional": plain(notional), "wallet_type": wallet, "asset_type": "position",
        "funding_fee": Num(f"-0.{rng.randint(1000, 9999)}"), "borrowed": None,
        "initial_margin": plain(initial), "maint_margin": plain(initial / 40),
        "leverage": plain(leverage), "margin_mode": "CROSS",
    }  # fmt: skip


def _assets(rng: random.Random, pattern: int) -> tuple[str, list[dict[str, Any]]]:
    """The exchange and assets of one account; three patterns cycle over the accounts."""
    if pattern == 0:  # Binance: futures wallet with a position, and a spot wallet
        return "Binance", [
            _token("USDT", "futures", decimal(rng, 5000, 8)),
            _position(rng, "BTC:PERP-USDT", "futures", short=False),
            _token("BTC", "spot", decimal(rng, 3, 8)),
            _token("USDT", "spot", decimal(rng, 900, 4)),
            _token("BNB", "spot", tiny(rng)),
        ]
    if pattern == 1:  # Bybit unified: borrowed USDT, a short ETH perp and a BTC perp
        return "Bybit", [
            _token("USDT", "unified", decimal(rng, 20000, 6), borrowed=decimal(rng, 500, 2)),
            _token("ETH", "unified", decimal(rng, 40, 9)),
            _position(rng, "ETH:PERP-USDT", "unified", short=True),
            _position(rng, "BTC:PERP-USDT", "unified", short=False),
        ]
    return "OKXDEX", [
        _token("SOL", "spot", decimal(rng, 800, 9)),
        _token("USDC", "spot", decimal(rng, 10000, 6)),
        _token("ETH", "spot", Decimal(0)),
    ]


class PlatformVenue:
    """State of the simulated platform: seeded accounts and their balances."""

    def __init__(self, sim: Simulator) -> None:
        self.sim = sim
        config = sim.config
        self.token = config.platform_api_token
        self.accounts_payload: bytes | None = None
        self.requested_names: list[list[str] | None] = []
        self._lock = threading.Lock()
        rng = random.Random(f"platform:{config.seed}")
        count = max(0, config.platform_accounts)
        self.accounts: list[dict[str, Any]] = []
        self.balances: dict[str, dict[str, Any]] = {}  # by account name
        for i in range(count):
            account_id = seeded_uuid(rng)
            exchange, assets = _assets(rng, i % 3)
            user, username = _USERS[i % len(_USERS)]
            name = f"{exchange.lower()}-{_ROLES[i % len(_ROLES)]}-{i + 1}"
            archived = count > 1 and i == count - 1
            if archived:
                name = f"{name}_archived_{seeded_uuid(rng)}"
            created = _CREATED.format(month=i % 9 + 1, day=i % 10, minute=i % 10)
            self.accounts.append({
                "id": account_id, "name": name, "user": user, "username": username,
                "exchange": exchange, "margin_mode": "CROSS" if i % 3 < 2 else "CASH",
                "created_at": created, "credential_options": {}, "vcefi_enabled": False,
                "archived": archived, "wallet_type": None, "wallet_provider": None,
                "vault_address": None, "egress_ip": f"203.0.113.{10 + i}",
                "api_key": f"SIMKEY{rng.getrandbits(96):024x}",
                "api_secret": f"{rng.getrandbits(16):04x}{'*' * 28}{rng.getrandbits(16):04x}",
                "password": f"pw{'*' * 10}{rng.randint(10, 99)}",
            })  # fmt: skip
            self.balances[name] = {
                "exchange_name": exchange, "account_name": name, "user_id": user,
                "account_id": account_id, "username": username,
                "equity": plain(decimal(rng, 30000, 6)), "assets": assets,
                "equities": [{"total_equity": plain(decimal(rng, 30000, 6)),
                              "market_type": "perp" if i % 3 < 2 else "spot"}],
                "transfers": [], "timestamp_millis": 0, "created_at": created,
                "vcefi_enabled": False,
            }  # fmt: skip
        active = [a["name"] for a in self.accounts if not a["archived"]]
        failed = max(0, min(config.platform_failed_accounts, len(active)))
        self.failed = frozenset(active[len(active) - failed :])

    # --- handlers --------------------------------------------------------------------------

    def fault_body(self, status: int) -> bytes:
        if status >= 500:
            return detail_body("A server error occurred.")
        return detail_body(_FAULT_DETAILS.get(status, "Request failed."))

    def authenticate(self, request: Request) -> Response | None:
        header = (request.header("Authorization") or "").strip()
        scheme, _, token = header.partition(" ")
        challenge = {"WWW-Authenticate": "Token"}
        if not header:
            body = detail_body("Authentication credentials were not provided.")
            return Response(401, body, headers=challenge)
        given = token.strip().encode("utf-8")
        if scheme.lower() != "token" or not hmac.compare_digest(given, self.token.encode()):
            return Response(401, detail_body("Invalid token."), headers=challenge)
        return None

    def list_accounts(self, request: Request) -> Response:
        problem = self.authenticate(request)
        if problem is not None:
            return problem
        if self.accounts_payload is not None:
            return Response(200, self.accounts_payload)
        archived = parse_qs(request.query).get("include_archived", [""])[-1] == "true"
        listed = [a for a in self.accounts if archived or not a["archived"]]
        return Response(200, data.dumps(listed).encode("utf-8"))

    def cached_balance(self, request: Request) -> Response:
        problem = self.authenticate(request)
        if problem is not None:
            return problem
        names = self._names(request)
        with self._lock:
            self.requested_names.append(names)
        payload = self.sim.payload(VENUE)
        if payload is not None:
            return Response(200, payload)
        now = int(time.time() * 1000)
        balances, errors = [], []
        for account in self._selected(names):
            name = account["name"]
            if name in self.failed:
                errors.append({
                    "account_name": name, "account_id": account["id"],
                    "exchange_name": account["exchange"],
                    "error": f"{account['exchange']} API error: request timed out after 10s",
                })  # fmt: skip
            else:
                balances.append({**self.balances[name], "timestamp_millis": now})
        body = data.dumps({"balances": balances, "errors": errors})
        return Response(200, body.encode("utf-8"))

    def legacy_balances(self, request: Request) -> Response:
        """`GET /api/balances/`: assets keyed by account name, numbers as JSON numbers."""
        problem = self.authenticate(request)
        if problem is not None:
            return problem
        doc: dict[str, Any] = {}
        for account in self._selected(self._names(request)):
            entry = self.balances[account["name"]]
            assets = [_legacy_asset(asset) for asset in entry["assets"]]
            doc[account["name"]] = {"exchange": entry["exchange_name"], "assets": assets}
        return Response(200, data.dumps(doc).encode("utf-8"))

    # --- helpers ---------------------------------------------------------------------------

    @staticmethod
    def _names(request: Request) -> list[str] | None:
        values = parse_qs(request.query, keep_blank_values=True).get("account_names")
        if values is None:
            return None
        return [n.strip() for v in values for n in v.split(",") if n.strip()]

    def _selected(self, names: list[str] | None) -> list[dict[str, Any]]:
        active = [a for a in self.accounts if not a["archived"]]
        if names is None:
            return active
        wanted = set(names)
        return [a for a in active if a["name"] in wanted]


def _legacy_asset(asset: dict[str, Any]) -> dict[str, Any]:
    """A cached-endpoint asset in the older `/api/balances/` form of seed 004."""
    keys = ("symbol", "size", "notional", "market_type", "asset_type", "unrealized_profit",
            "initial_margin", "maint_margin", "margin_balance", "leverage")  # fmt: skip
    source = {**asset, "size": asset["amount"], "market_type": asset["wallet_type"]}
    return {k: _number(source.get(k)) for k in keys}


def _number(value: Any) -> Any:
    """A decimal string of the cached endpoint as a JSON number (the legacy endpoint's form)."""
    if isinstance(value, str):
        try:
            return Num(value)
        except ValueError:
            return value
    return value


def platform_venue(sim: Simulator) -> PlatformVenue:
    """The platform venue installed on `sim` (to set `accounts_payload`, read requests)."""
    return _VENUES[sim]


def install(sim: Simulator) -> None:
    """Register the venue and its routes on a simulator."""
    venue = PlatformVenue(sim)
    _VENUES[sim] = venue
    sim.add_venue(VENUE, venue.fault_body)
    sim.add_route("GET", ACCOUNTS_PATH, VENUE, venue.list_accounts)
    sim.add_route("GET", CACHED_BALANCE_PATH, VENUE, venue.cached_balance)
    sim.add_route("GET", BALANCES_PATH, VENUE, venue.legacy_balances)
