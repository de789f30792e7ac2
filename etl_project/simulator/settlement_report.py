"""Simulated settlement platform: the Client Balance Report of a date (seed 000), CSV or JSON.

    GET /reports/client-balance/<YYYY-MM-DD>.csv
    GET /reports/client-balance/<YYYY-MM-DD>.json

The report is deterministic: the same seed gives the same accounts and UUIDs every day, and
the same seed and date give byte-identical files. Each report holds the awkward values real
reports hold: the seed's sample row shape (`Total 5.77`, `Available 5.00`, `Brokerage 0.37`),
a negative amount with 19 fractional digits (`-0.000…`), a dust amount (`0.00000000346`, in
exponent form `3.46e-9` in the JSON file), and one all-zero row.

Knobs (read from the simulator config when it has these fields, else the defaults below):
- `settlement_report_api_token` (`DEFAULT_API_TOKEN`): when non-empty, requests must send
  `Authorization: Bearer <token>`, else HTTP 401;
- `settlement_report_first_date` (`DEFAULT_FIRST_DATE`): dates before it, dates after today
  (UTC) and text that is not a date answer HTTP 404 (no report for that date);
- `settlement_report_accounts` (`DEFAULT_ACCOUNTS`): number of users in the report.
`sim.serve_payload("settlement_report", bytes)` serves those bytes for every date and format;
`serve_report(sim, date, bytes, fmt)` serves them as the file of that one date (any date, past
ones included: a dated file is history, it stays readable), before any other rule.
"""

from __future__ import annotations

import csv
import io
import json
import random
import re
import threading
import weakref
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

from etl_project.report.columns import AMOUNT_COLUMNS, REPORT_COLUMNS
from etl_project.simulator import data
from etl_project.simulator.data import Num
from etl_project.simulator.routing import Request, Response
from etl_project.simulator.server import Simulator

VENUE = "settlement_report"
PATH_PREFIX = "/reports/client-balance"
CSV_PATH = f"{PATH_PREFIX}/{{date}}.csv"
JSON_PATH = f"{PATH_PREFIX}/{{date}}.json"

DEFAULT_API_TOKEN = "sim-settlement-report-token"
DEFAULT_FIRST_DATE = "2020-01-01"
DEFAULT_ACCOUNTS = 3

CONTENT_TYPES = {"csv": "text/csv; charset=utf-8", "json": "application/json"}
_CURRENCIES = ("BTC", "ETH", "USDT", "USD", "SOL", "EUR")
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
_NAMES = ("ada", "grace", "alan", "edsger", "barbara", "donald", "frances", "ken", "radia")


def report_url(sim: Simulator, fmt: str = "csv") -> str:
    """The `location` of a source reading this simulator (`{date}` left for the connector)."""
    return f"{sim.url}{PATH_PREFIX}/{{date}}.{fmt}"


def serve_report(sim: Simulator, report_date: date, body: bytes | None, fmt: str = "csv") -> None:
    """Serve `body` as the `fmt` report file of `report_date` (None: the generated one again)."""
    if fmt not in CONTENT_TYPES:
        raise ValueError(f"unknown report format {fmt!r}")
    _VENUES[sim].set_file(report_date, fmt, body)


def error_body(status: int) -> bytes:
    return json.dumps({"error": f"HTTP {status}"}).encode("utf-8")


#: The venue of each simulator, for `serve_report`.
_VENUES: weakref.WeakKeyDictionary[Simulator, SettlementReportVenue] = weakref.WeakKeyDictionary()


# --- data ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Account:
    user_uuid: str
    account_uuid: str
    user: str
    email: str | None
    sub_main_type: str
    currencies: tuple[str, ...]


def _accounts(seed: int, users: int) -> tuple[str, list[_Account]]:
    """The platform's accounts: stable for a seed, whatever the date."""
    rng = random.Random(f"settlement_report:{seed}")
    group = data.seeded_uuid(rng)
    accounts: list[_Account] = []
    for i in range(users):
        user_uuid = data.seeded_uuid(rng)
        name = f"{rng.choice(_NAMES)}.{i}"
        email = None if i % 3 == 2 else f"{name}@example.com"
        for sub_main_type in ("Trading account", "Custody account")[: 1 + (i % 2)]:
            count = rng.randint(2, 4)
            currencies = tuple(sorted(rng.sample(_CURRENCIES, count)))
            if i == 0 and sub_main_type == "Trading account":
                currencies = tuple(sorted({"BTC", "ETH", "USDT", *currencies}))
            accounts.append(
                _Account(
                    user_uuid=user_uuid,
                    account_uuid=data.seeded_uuid(rng),
                    user=f"{name}@example.com",
                    email=email,
                    sub_main_type=sub_main_type,
                    currencies=currencies,
                )
            )
    return group, accounts


def _digits(rng: random.Random, count: int) -> str:
    """`count` random digits, the last one non-zero (no padding zeros)."""
    return "".join(str(rng.randint(0, 9)) for _ in range(count - 1)) + str(rng.randint(1, 9))


def report_rows(
    seed: int, report_date: date, users: int = DEFAULT_ACCOUNTS
) -> list[dict[str, Any]]:
    """The report of a date as rows keyed by the 33 column names.

    Amounts are `Decimal` or `Num` (exact JSON text), booleans `bool`, a missing e-mail `None`.
    Rows are sorted by `userUUID, accountUUID, Ccy` like the platform's export.
    """
    group, accounts = _accounts(seed, users)
    rng = random.Random(f"settlement_report:{seed}:{report_date.isoformat()}")
    rows: list[dict[str, Any]] = []
    for n, account in enumerate(accounts):
        for ccy in account.currencies:
            amounts: dict[str, Decimal | Num] = {name: Decimal(0) for name in AMOUNT_COLUMNS}
            special = (n, ccy)
            if special == (0, "BTC"):  # the seed's sample row
                amounts.update(
                    {"Total": Decimal("5.77"), "Total Prefunding": Decimal("5.77"),
                     "Available": Decimal("5.00"), "Brokerage": Decimal("0.37")}
                )  # fmt: skip
            elif special == (0, "ETH"):  # negative dust, 19 fractional digits
                value = Decimal(f"-0.000{_digits(rng, 16)}")
                amounts.update({"Total": value, "Total Prefunding": value, "Available": value})
            elif special == (0, "USDT"):  # all zero: dropped by the report by default
                pass
            elif n == 1 and ccy == account.currencies[0]:  # dust in exponent form
                dust = data.tiny(rng)
                amounts.update({"Total": dust, "Total Prefunding": dust, "custody": dust})
            else:
                total = data.decimal(rng, 20000, rng.randint(1, 8))
                hold = data.decimal(rng, 0, 2) if total >= 1 and rng.random() < 0.3 else Decimal(0)
                pending = (
                    data.decimal(rng, 0, 3) if total >= 2 and rng.random() < 0.3 else Decimal(0)
                )
                amounts.update(
                    {"Total": total, "Total Prefunding": total, "Hold": hold,
                     "Pending Withdrawal": pending, "Available": total - hold - pending}
                )  # fmt: skip
                if account.sub_main_type == "Custody account":
                    amounts["custody"] = total
            row: dict[str, Any] = {
                "userUUID": account.user_uuid,
                "accountUUID": account.account_uuid,
                "Account Group UUID": group,
                "Account Group": "Default",
                "User": account.user,
                "Email": account.email,
                "mainType": "Client",
                "subMainType": account.sub_main_type,
                "Ccy": ccy,
                "Account in Ledger": True,
                "System Account": False,
            }
            row.update(amounts)
            rows.append({name: row[name] for name in REPORT_COLUMNS})
    rows.sort(key=lambda r: (r["userUUID"], r["accountUUID"], r["Ccy"]))
    return rows


def render_csv(rows: list[dict[str, Any]]) -> bytes:
    """RFC 4180 CSV with the report header, `TRUE`/`FALSE`, decimals without exponent (the
    platform's own text, e.g. `5.00`), an empty field for a null e-mail."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(REPORT_COLUMNS)
    for row in rows:
        writer.writerow([_csv_text(row[name]) for name in REPORT_COLUMNS])
    return out.getvalue().encode("utf-8")


def _csv_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, Num):
        return format(Decimal(str.__str__(value)), "f")
    if isinstance(value, Decimal):
        return format(value, "f")  # as written, e.g. `5.00`; never in exponent form
    return str(value)


def render_json(rows: list[dict[str, Any]]) -> bytes:
    """A JSON array of row objects; amounts as exact JSON numbers."""
    return data.dumps(rows).encode("utf-8")


# --- the venue -------------------------------------------------------------------------------


class SettlementReportVenue:
    """The simulated platform's report endpoints."""

    def __init__(self, sim: Simulator) -> None:
        self.sim = sim
        config = sim.config
        self.seed = config.seed
        self.api_token: str = getattr(config, "settlement_report_api_token", DEFAULT_API_TOKEN)
        first = getattr(config, "settlement_report_first_date", DEFAULT_FIRST_DATE)
        self.first_date = date.fromisoformat(str(first))
        self.users = int(getattr(config, "settlement_report_accounts", DEFAULT_ACCOUNTS))
        self._files: dict[tuple[str, str], bytes] = {}
        self._lock = threading.Lock()

    def set_file(self, report_date: date, fmt: str, body: bytes | None) -> None:
        with self._lock:
            if body is None:
                self._files.pop((report_date.isoformat(), fmt), None)
            else:
                self._files[(report_date.isoformat(), fmt)] = bytes(body)

    def fault_body(self, status: int) -> bytes:
        return error_body(status)

    def body(self, report_date: date, fmt: str) -> bytes:
        rows = report_rows(self.seed, report_date, self.users)
        return render_csv(rows) if fmt == "csv" else render_json(rows)

    def report(self, request: Request, fmt: str) -> Response:
        if self.api_token and request.header("Authorization") != f"Bearer {self.api_token}":
            return Response(401, json.dumps({"error": "unauthorized"}).encode("utf-8"))
        text = request.params.get("date", "")
        with self._lock:
            served = self._files.get((text, fmt))
        if served is not None:
            return Response(200, served, content_type=CONTENT_TYPES[fmt])
        payload = self.sim.payload(VENUE)
        if payload is not None:
            return Response(200, payload, content_type=CONTENT_TYPES[fmt])
        report_date: date | None = None
        if _DATE.fullmatch(text):
            try:
                report_date = date.fromisoformat(text)
            except ValueError:
                report_date = None
        today = datetime.now(UTC).date()
        if report_date is None or not self.first_date <= report_date <= today:
            doc = {"error": "notFound", "message": f"no client balance report for {text[:20]!r}"}
            return Response(404, json.dumps(doc).encode("utf-8"))
        return Response(200, self.body(report_date, fmt), content_type=CONTENT_TYPES[fmt])

    def csv_report(self, request: Request) -> Response:
        return self.report(request, "csv")

    def json_report(self, request: Request) -> Response:
        return self.report(request, "json")


def install(sim: Simulator) -> None:
    """Register the venue and its two routes on a simulator."""
    venue = SettlementReportVenue(sim)
    _VENUES[sim] = venue
    sim.add_venue(VENUE, venue.fault_body)
    sim.add_route("GET", CSV_PATH, VENUE, venue.csv_report)
    sim.add_route("GET", JSON_PATH, VENUE, venue.json_report)
