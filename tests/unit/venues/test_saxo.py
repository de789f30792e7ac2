"""Saxo OpenAPI connector: settings, mapping (spec §3), paging, refresh, rate limits, simulator."""

from __future__ import annotations

import base64
import csv
import gzip
import json
import logging
import uuid
from collections.abc import Iterator
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
import requests

from etl_project.config import Secret, SourceConfig, parse_config
from etl_project.errors import (
    ConfigError,
    MalformedResponse,
    VenueAuthError,
    VenueError,
    VenueUnavailable,
)
from etl_project.http import HttpClient, RawResponse, RetryPolicy
from etl_project.raw import RawSnapshot, SnapshotRecorder
from etl_project.report.columns import REPORT_COLUMNS
from etl_project.simulator import Simulator, SimulatorConfig
from etl_project.simulator import saxo as sim_saxo
from etl_project.simulator.data import dumps
from etl_project.venues import connector_for
from etl_project.venues.base import AccountStatus
from etl_project.venues.saxo.auth import (
    LIVE_TOKEN_URL,
    SIM_TOKEN_URL,
    TokenProvider,
    default_token_url,
)
from etl_project.venues.saxo.connector import SaxoConnector, SaxoSettings
from etl_project.venues.saxo.limits import SlidingWindowLimiter, exhausted_reset
from etl_project.venues.saxo.parse import saxo_key
from tests.report_text import fmt_amount, report_rows

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures"
SEED_BALANCES = FIXTURES / "saxo_seed001_balances.json"
SEED_ACCOUNTS = FIXTURES / "saxo_seed001_accounts.json"
SEED_EXPECTED = FIXTURES / "saxo_seed001_expected.csv"
NS = uuid.uuid5(uuid.NAMESPACE_URL, "urn:settlement-balance-report")
BASE = "https://gateway.saxobank.com/sim/openapi"
ACCOUNTS_URL = f"{BASE}/port/v1/accounts/me"
SEED_ACCOUNT_KEY = "01b64edf-da03-4145-bf33-ae21527d4c86"
SEED_CLIENT_KEY = "493b43a5-fe85-4d1f-9071-dd4a9d4e42a4"

DEFAULTS = SimulatorConfig()
STATIC_TOKEN = DEFAULTS.saxo_access_token
CLIENT_ID = DEFAULTS.saxo_client_id
CLIENT_SECRET = DEFAULTS.saxo_client_secret
REFRESH_TOKEN = DEFAULTS.saxo_refresh_token


# --- helpers -----------------------------------------------------------------------------------


def u5(name: str) -> str:
    return str(uuid.uuid5(NS, name))


def make_source(
    base_url: str = BASE,
    *,
    access_token: str | None = STATIC_TOKEN,
    refresh: bool = False,
    refresh_token: str = REFRESH_TOKEN,
    page_size: int = 100,
    **common: Any,
) -> SourceConfig:
    trio: dict[str, Any] = {}
    if refresh:
        trio = {"client_id": Secret(CLIENT_ID), "client_secret": Secret(CLIENT_SECRET),
                "refresh_token": Secret(refresh_token)}  # fmt: skip
    settings = SaxoSettings(
        base_url=base_url,
        access_token=Secret(access_token) if access_token is not None else None,
        page_size=page_size,
        **trio,
    )
    settings.validate("test")
    return SourceConfig(name="saxo_test", kind="saxo", settings=settings, **common)


def response(url: str, body: bytes | dict[str, Any], status: int = 200) -> RawResponse:
    data = dumps(body).encode() if isinstance(body, dict) else body
    return RawResponse("GET", url, status, {"Content-Type": "application/json"}, data, "t")


def balances_url(account_key: str, client_key: str = SEED_CLIENT_KEY) -> str:
    query = urlencode({"ClientKey": client_key, "AccountKey": account_key, "FieldGroups": "x"})
    return f"{BASE}/port/v1/balances?{query}"


def make_snapshot(*responses: RawResponse, error: str | None = None) -> RawSnapshot:
    return RawSnapshot("saxo_test", "saxo", date(2026, 1, 2),
                       datetime(2026, 1, 3, 0, 5, tzinfo=UTC), list(responses), error)  # fmt: skip


def account(key: str, client: str = "C1", **extra: Any) -> dict[str, Any]:
    entry = {"AccountKey": key, "ClientKey": client, "ClientId": "77", "AccountType": "Normal"}
    entry.update(extra)
    return {k: v for k, v in entry.items() if v is not None}


def seed_balances() -> dict[str, Any]:
    """Seed 001's example with exact decimals (written back exactly by `dumps`)."""
    return dict(json.loads(SEED_BALANCES.read_bytes(), parse_float=Decimal, parse_int=Decimal))


def parse(accounts: list[dict[str, Any]], balances: dict[str, dict[str, Any] | RawResponse],
          **common: Any) -> Any:  # fmt: skip
    responses = [response(ACCOUNTS_URL, {"__count": len(accounts), "Data": accounts})]
    for key, body in balances.items():
        client = next(a["ClientKey"] for a in accounts if a["AccountKey"] == key)
        if isinstance(body, RawResponse):
            responses.append(body)
        else:
            responses.append(response(balances_url(key, client), body))
    return SaxoConnector.parse(make_snapshot(*responses), make_source(**common))


def expected_rows() -> list[dict[str, str]]:
    with SEED_EXPECTED.open(encoding="utf-8", newline="") as f:
        reader = csv.DictReader(f)
        assert reader.fieldnames == list(REPORT_COLUMNS)
        return list(reader)


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


def fetch_from(
    sim: Simulator,
    source: SourceConfig,
    *,
    sleeps: list[float] | None = None,
    limiter: SlidingWindowLimiter | None = None,
) -> tuple[SaxoConnector, RawSnapshot]:
    """Fetch over real HTTP from the simulator; the snapshot is returned even on failure."""
    snapshot = make_snapshot()
    record = sleeps.append if sleeps is not None else (lambda s: None)
    http = HttpClient(source.name, recorder=SnapshotRecorder(snapshot), sleep=record)
    clock = FakeClock()
    connector = SaxoConnector(
        source, http, limiter=limiter or SlidingWindowLimiter(120, clock=clock, sleep=clock.sleep)
    )
    try:
        connector.fetch()
    except VenueError as exc:
        snapshot.error = str(exc)
        raise
    finally:
        http.session.close()
    return connector, snapshot


def sim_source(sim: Simulator, **kwargs: Any) -> SourceConfig:
    return make_source(sim_saxo.base_url(sim), **kwargs)


@pytest.fixture()
def sim5() -> Iterator[Simulator]:
    """Five accounts (three clients), two per page."""
    sim = Simulator(SimulatorConfig(seed=7, saxo_accounts=5, saxo_page_size=2)).start()
    try:
        yield sim
    finally:
        sim.stop()


# --- settings ----------------------------------------------------------------------------------


def test_registered_and_settings_through_config_are_secrets() -> None:
    assert connector_for("saxo") is SaxoConnector
    config = parse_config({"sources": [{
        "name": "saxo_main", "kind": "saxo", "access_token": "tok-123",
        "client_id": "cid", "client_secret": "csecret", "refresh_token": "rtok",
    }]})  # fmt: skip
    settings = config.sources[0].settings
    assert isinstance(settings, SaxoSettings)
    for name in ("access_token", "client_id", "client_secret", "refresh_token"):
        assert isinstance(getattr(settings, name), Secret)
    for value in ("tok-123", "csecret", "rtok"):
        assert value not in repr(settings)
    assert sorted(config.sources[0].secrets()) == ["cid", "csecret", "rtok", "tok-123"]
    assert settings.base_url == "https://gateway.saxobank.com/sim/openapi"
    assert (settings.requests_per_minute, settings.page_size) == (120, 100)
    assert (settings.connect_timeout, settings.read_timeout) == (5.0, 30.0)
    assert settings.resolved_token_url() == SIM_TOKEN_URL


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({}, "cfg: give access_token, or client_id + client_secret + refresh_token"),
        ({"access_token": " "}, "cfg: give access_token, or client_id"),
        ({"client_id": "c", "refresh_token": "r"},
         "cfg: the refresh flow needs client_id, client_secret and refresh_token together "
         "(missing: client_secret)"),
        ({"access_token": "t", "base_url": "gateway.saxobank.com/sim/openapi"},
         "cfg: base_url: 'gateway.saxobank.com/sim/openapi' is not a valid http/https URL"),
        ({"access_token": "t", "token_url": "ftp://x/token"}, "cfg: token_url: 'ftp://x/token'"),
        ({"client_id": "c", "client_secret": "s", "refresh_token": "r",
          "base_url": "https://proxy.example/saxo"},
         "cfg: token_url is required (it cannot be derived from base_url)"),
        ({"access_token": "t", "page_size": 0}, "cfg: page_size must be an integer from 1 to 1000"),
        ({"access_token": "t", "page_size": 1001}, "cfg: page_size must be an integer from 1"),
        ({"access_token": "t", "requests_per_minute": 0}, "cfg: requests_per_minute must be"),
        ({"access_token": "t", "requests_per_minute": True}, "cfg: requests_per_minute must be"),
        ({"access_token": "t", "read_timeout": 0}, "cfg: read_timeout must be a positive number"),
    ],
)  # fmt: skip
def test_settings_validate(fields: dict[str, Any], message: str) -> None:
    secret_names = ("access_token", "client_id", "client_secret", "refresh_token")
    values = {k: Secret(v) if k in secret_names else v for k, v in fields.items()}
    with pytest.raises(ConfigError) as info:
        SaxoSettings(**values).validate("cfg")
    assert str(info.value).startswith(message)
    for name in secret_names:
        if fields.get(name, " ").strip():
            assert f"'{fields[name]}'" not in str(info.value)


@pytest.mark.parametrize(
    ("base_url", "token_url"),
    [
        ("https://gateway.saxobank.com/sim/openapi", SIM_TOKEN_URL),
        ("https://gateway.saxobank.com/sim/openapi/", SIM_TOKEN_URL),
        ("https://gateway.saxobank.com/openapi", LIVE_TOKEN_URL),
        ("http://127.0.0.1:8080/sim/openapi", "http://127.0.0.1:8080/sim/token"),
        ("https://proxy.example/saxo/openapi", "https://proxy.example/saxo/token"),
        ("https://proxy.example/saxo", None),
        ("https://gateway.saxobank.com/other", None),
    ],
)
def test_default_token_url(base_url: str, token_url: str | None) -> None:
    assert default_token_url(base_url) == token_url


def test_saxo_key_lower_cases_only_uuids() -> None:
    assert saxo_key("01B64EDF-DA03-4145-BF33-AE21527D4C86") == SEED_ACCOUNT_KEY
    assert saxo_key("X1JlUyeXTMK3mBxzd-D2UA==") == "X1JlUyeXTMK3mBxzd-D2UA=="  # case-sensitive
    assert saxo_key("stringValue") == "stringValue"
    assert saxo_key("01b64edfda034145bf33ae21527d4c86") == "01b64edfda034145bf33ae21527d4c86"


# --- mapping (pure parse) ----------------------------------------------------------------------


def seed_snapshot() -> RawSnapshot:
    return make_snapshot(
        response(ACCOUNTS_URL, SEED_ACCOUNTS.read_bytes()),
        response(balances_url(SEED_ACCOUNT_KEY), SEED_BALANCES.read_bytes()),
    )


def test_seed001_maps_to_the_expected_report_row() -> None:
    parsed = SaxoConnector.parse(seed_snapshot(), make_source())
    assert report_rows(parsed.balances) == expected_rows()
    assert parsed.rejected == []
    assert [(a.account_id, a.status, a.reason) for a in parsed.accounts] == [
        (SEED_ACCOUNT_KEY, "received", None)
    ]
    (row,) = parsed.balances.to_pylist()
    assert row["userUUID"] == u5(f"saxo:client:{SEED_CLIENT_KEY}")
    assert row["accountUUID"] == u5(f"saxo:account:{SEED_ACCOUNT_KEY}")
    assert row["Account Group UUID"] == u5("saxo:account_group:stringValue")
    assert (row["source"], row["venue"], row["venue_account_id"], row["wallet"]) == (
        "saxo_test", "saxo", SEED_ACCOUNT_KEY, "account")  # fmt: skip
    # Hand-checked against seed 001's example (spec §3 Saxo):
    assert row["Brokerage"] == Decimal("1677.57")  # |CostToClosePositions -1677.57|
    assert row["Collateral"] == Decimal("326828.87")  # |MarginUsedByCurrentPositions|
    assert row["Unsettle Buy"] == Decimal("118.71")  # max(-(-118.71), 0)
    assert row["Unsettle Sell"] == Decimal(0)
    assert row["Exchange"] == Decimal("509207.41")


def test_parse_is_pure_and_survives_a_replay() -> None:
    snapshot = seed_snapshot()
    first = SaxoConnector.parse(snapshot, make_source())
    second = SaxoConnector.parse(RawSnapshot.from_bytes(snapshot.to_bytes()), make_source())
    assert first.balances.equals(second.balances)
    assert snapshot.responses[1].body == SEED_BALANCES.read_bytes()


def test_positive_and_zero_transactions_not_booked() -> None:
    accounts = [account("A"), account("B")]
    parsed = parse(accounts, {
        "A": {**seed_balances(), "TransactionsNotBooked": Decimal("42.5")},
        "B": {**seed_balances(), "TransactionsNotBooked": 0},
    })  # fmt: skip
    rows = {r["venue_account_id"]: r for r in parsed.balances.to_pylist()}
    assert (rows["A"]["Unsettle Buy"], rows["A"]["Unsettle Sell"]) == (0, Decimal("42.5"))
    assert (rows["B"]["Unsettle Buy"], rows["B"]["Unsettle Sell"]) == (0, 0)


def test_amounts_are_exact_beyond_28_digits() -> None:
    """abs/negation must not round through the default 28-digit decimal context."""
    long_text = "-123456789012345678.12345678901234567891"  # 38 significant digits
    body = {**seed_balances(), "CostToClosePositions": Decimal(long_text),
            "TransactionsNotBooked": Decimal(long_text)}  # fmt: skip
    assert long_text.encode() in dumps(body).encode()
    parsed = parse([account("A")], {"A": body})
    (row,) = parsed.balances.to_pylist()
    assert row["Brokerage"] == Decimal(long_text[1:])
    assert row["Unsettle Buy"] == Decimal(long_text[1:])
    assert fmt_amount(row["Brokerage"]) == long_text[1:]


def test_identity_rules_group_label_and_user() -> None:
    upper = SEED_ACCOUNT_KEY.upper()
    accounts = [
        account(upper, client="CK-Base64==", AccountGroupKey="GroupKey", ClientId=None),
        account("aBc==", client="CK-Base64==", AccountGroupName="Hedging desk",
                AccountGroupKey="GroupKey", ClientId=4567123),
        account("ABC==", client="CK-Base64==", AccountType="TaxSaving"),
    ]  # fmt: skip
    parsed = parse(accounts, {a["AccountKey"]: seed_balances() for a in accounts},
                   account_group="Desk A")  # fmt: skip
    rows = {r["venue_account_id"]: r for r in parsed.balances.to_pylist()}
    # A UUID-shaped key is lower-cased inside the uuid5 name; venue_account_id keeps the venue's.
    assert rows[upper]["accountUUID"] == u5(f"saxo:account:{SEED_ACCOUNT_KEY}")
    # Base64-like keys are case-sensitive: two keys differing in case stay two accounts.
    assert rows["aBc=="]["accountUUID"] == u5("saxo:account:aBc==")
    assert rows["ABC=="]["accountUUID"] == u5("saxo:account:ABC==")
    assert {r["userUUID"] for r in rows.values()} == {u5("saxo:client:CK-Base64==")}
    # AccountGroupName wins; without it the source's configured label; no key -> client's group.
    assert rows[upper]["Account Group"] == "Desk A"
    assert rows["aBc=="]["Account Group"] == "Hedging desk"
    assert rows[upper]["Account Group UUID"] == u5("saxo:account_group:GroupKey")
    assert rows["ABC=="]["Account Group UUID"] == u5("saxo:account_group:CK-Base64==")
    # User = ClientId (a JSON number too), else the ClientKey.
    assert rows[upper]["User"] == "CK-Base64=="
    assert rows["aBc=="]["User"] == "4567123"
    assert rows["ABC=="]["subMainType"] == "TaxSaving"
    assert {r["Email"] for r in rows.values()} == {None}


def test_calculation_reliability_other_than_ok_is_quarantined() -> None:
    accounts = [account("A"), account("B"), account("C")]
    parsed = parse(accounts, {
        "A": {**seed_balances(), "CalculationReliability": "ApproximatedPrice"},
        "B": seed_balances(),
        "C": {k: v for k, v in seed_balances().items() if k != "CalculationReliability"},
    })  # fmt: skip
    assert [r["venue_account_id"] for r in parsed.balances.to_pylist()] == ["B"]
    assert [(r.source, r.check, r.reason) for r in parsed.rejected] == [
        ("saxo_test", "calculation_reliability",
         "CalculationReliability is 'ApproximatedPrice', not 'Ok'"),
        ("saxo_test", "calculation_reliability", "CalculationReliability is missing"),
    ]  # fmt: skip
    record = parsed.rejected[0].record
    assert record["accountUUID"] == u5("saxo:account:A")
    assert (record["Ccy"], record["TotalValue"], record["TransactionsNotBooked"]) == (
        "EUR", "100634324.36", "-118.71")  # fmt: skip
    json.dumps(record)  # quarantine records are JSON text
    assert [a.status for a in parsed.accounts] == ["received"] * 3


def test_failed_and_malformed_accounts_fail_alone() -> None:
    accounts = [account(k) for k in ("ok", "err", "none", "nofield", "badjson", "retried")]
    error = {"ErrorCode": "InternalServerError", "Message": "Simulated  failure\nline"}
    parsed = parse(accounts, {
        "ok": seed_balances(),
        "err": response(balances_url("err", "C1"), error, status=500),
        "nofield": {k: v for k, v in seed_balances().items() if k != "CashBlocked"},
        "badjson": response(balances_url("badjson", "C1"), b"<html>oops</html>"),
        "retried": response(balances_url("retried", "C1"), b"", status=503),
    })  # fmt: skip
    # A later answer for the same account wins over the earlier failed attempt.
    snapshot = make_snapshot()
    snapshot.responses = [
        response(ACCOUNTS_URL, {"Data": accounts}),
        response(balances_url("retried", "C1"), b"", status=503),
        response(balances_url("retried", "C1"), seed_balances()),
    ]
    later = SaxoConnector.parse(snapshot, make_source())
    statuses = {a.account_id: (a.status, a.reason) for a in parsed.accounts}
    assert statuses == {
        "ok": ("received", None),
        "err": ("failed", "HTTP 500 InternalServerError: Simulated failure line"),
        "none": ("failed", "no response recorded"),
        # A missing figure is a bad value: the row goes to quarantine, the answer arrived.
        "nofield": ("received", None),
        "badjson": ("failed", "HTTP 200 body is not valid JSON"),
        "retried": ("failed", "HTTP 503"),
    }
    assert [(r.check, r.reason, r.record["venue_account_id"]) for r in parsed.rejected] == [
        ("decimal", "balances: CashBlocked is missing", "nofield")
    ]
    assert [r["venue_account_id"] for r in parsed.balances.to_pylist()] == ["ok"]
    assert {a.account_id: a.status for a in later.accounts}["retried"] == "received"


@pytest.mark.parametrize(
    ("change", "check", "reason", "ccy"),
    [
        ({"TotalValue": "abc"}, "decimal",
         'balances: TotalValue must be a number, got string "abc"', "EUR"),
        ({"CashBlocked": None}, "decimal", "balances: CashBlocked must be a number, got null",
         "EUR"),
        ({"TotalValue": True, "CostToClosePositions": "1,5"}, "decimal",
         "balances: TotalValue must be a number, got boolean true; "
         'balances: CostToClosePositions must be a number, got string "1,5"', "EUR"),
        ({"Currency": None}, "venue_value",
         "balances: Currency must be a non-empty string, got null", None),
        ({"Currency": Decimal(978), "TransactionsNotBooked": None}, "venue_value, decimal",
         "balances: Currency must be a non-empty string, got number 978; "
         "balances: TransactionsNotBooked must be a number, got null", None),
    ],
)  # fmt: skip
def test_a_bad_value_rejects_only_that_accounts_row(
    change: dict[str, Any], check: str, reason: str, ccy: str | None
) -> None:
    body = {**seed_balances(), **change}
    parsed = parse([account("A"), account("B")], {"A": body, "B": seed_balances()})
    assert [(r.source, r.check, r.reason) for r in parsed.rejected] == [
        ("saxo_test", check, reason)
    ]
    record = parsed.rejected[0].record
    assert (record["accountUUID"], record["Ccy"], record["venue_account_id"]) == (
        u5("saxo:account:A"), ccy, "A")  # fmt: skip
    # The venue's values as sent, a bad one included; amounts as exact text.
    assert {k: record.get(k) for k in change} == {
        k: format(v, "f") if isinstance(v, Decimal) else v for k, v in change.items()
    }
    assert record["CashBalance"] == "100573853.73"
    json.dumps(record)
    assert [r["venue_account_id"] for r in parsed.balances.to_pylist()] == ["B"]
    assert [(a.account_id, a.status) for a in parsed.accounts] == [
        ("A", "received"), ("B", "received"),
    ]  # fmt: skip


def test_broken_listing_entries_fail_only_that_account() -> None:
    listing = [
        account("A", DisplayName="Desk A"),
        "not an account",
        {"ClientKey": "C1", "AccountType": "Normal", "AccountId": "77/EUR"},
        account("D", AccountType=None, DisplayName="Desk D"),
        account("E", ClientKey=""),
    ]
    snapshot = make_snapshot(
        response(ACCOUNTS_URL, {"__count": 5, "Data": listing}),
        response(balances_url("A"), seed_balances()),
    )
    parsed = SaxoConnector.parse(snapshot, make_source())
    where = "/port/v1/accounts/me"
    assert parsed.accounts == [
        AccountStatus("A", "received", None, "Desk A"),
        AccountStatus("Data[1]", "failed", f'{where}: Data[1] must be an object, got string '
                                            '"not an account"'),
        AccountStatus("Data[2]", "failed", f"{where}: Data[2].AccountKey is missing", "77/EUR"),
        AccountStatus("D", "failed", f"{where}: Data[3].AccountType is missing", "Desk D"),
        AccountStatus("E", "failed",
                      f'{where}: Data[4].ClientKey must be a non-empty string, got string ""'),
    ]  # fmt: skip
    assert [r["venue_account_id"] for r in parsed.balances.to_pylist()] == ["A"]


def test_account_status_carries_the_venue_display_name() -> None:
    accounts = [
        account("A", DisplayName="Hedging desk", AccountId="77/EUR"),
        account("B", AccountId="77/USD"),
        account("C"),
    ]
    parsed = parse(accounts, {k: seed_balances() for k in ("A", "B", "C")})
    assert [(a.account_id, a.name) for a in parsed.accounts] == [
        ("A", "Hedging desk"), ("B", "77/USD"), ("C", None),
    ]  # fmt: skip
    seed = SaxoConnector.parse(seed_snapshot(), make_source())
    assert [a.name for a in seed.accounts] == ["Seed 001 example account"]


def test_parse_refuses_incomplete_or_missing_listings() -> None:
    with pytest.raises(VenueError, match="snapshot of a fetch that ended with an error"):
        SaxoConnector.parse(make_snapshot(*seed_snapshot().responses, error="boom"), make_source())
    with pytest.raises(MalformedResponse, match="no /port/v1/accounts/me answer"):
        SaxoConnector.parse(make_snapshot(), make_source())
    unauthorized = response(ACCOUNTS_URL, {"ErrorCode": "Unauthorized", "Message": "no"}, 401)
    with pytest.raises(VenueAuthError) as info:
        SaxoConnector.parse(make_snapshot(unauthorized), make_source())
    assert (info.value.status, info.value.code) == (401, "Unauthorized")
    # An unreadable page (no Data array) fails the source; a broken entry only its account.
    for body in ({"Data": {"AccountKey": "A"}}, {"Value": []}):
        with pytest.raises(MalformedResponse, match="accounts/me: answer has no Data array"):
            SaxoConnector.parse(make_snapshot(response(ACCOUNTS_URL, body)), make_source())


def test_accounts_are_the_union_of_pages_without_duplicates() -> None:
    pages = [
        response(ACCOUNTS_URL, {"Data": [account("A"), account("B")]}),
        response(ACCOUNTS_URL + "?$skip=2", {"Data": [account("B"), account("C")]}),
    ]
    parsed = SaxoConnector.parse(make_snapshot(*pages), make_source())
    assert [a.account_id for a in parsed.accounts] == ["A", "B", "C"]
    assert parsed.balances.num_rows == 0
    # A readable entry wins over a broken one of the same key, wherever it is listed.
    broken_first = [
        response(ACCOUNTS_URL, {"Data": [account("A", AccountType=None)]}),
        response(ACCOUNTS_URL + "?$skip=1", {"Data": [account("A", DisplayName="A again")]}),
        response(balances_url("A", "C1"), seed_balances()),
    ]
    parsed = SaxoConnector.parse(make_snapshot(*broken_first), make_source())
    assert parsed.accounts == [AccountStatus("A", "received", None, "A again")]


# --- over HTTP: seed, paging, failures ---------------------------------------------------------


def test_seed001_served_over_http(simulator: Simulator) -> None:
    venue = sim_saxo.venue(simulator)
    venue.set_accounts(json.loads(SEED_ACCOUNTS.read_bytes())["Data"])
    simulator.serve_payload("saxo", SEED_BALANCES.read_bytes())
    source = sim_source(simulator)
    _, snapshot = fetch_from(simulator, source)
    assert [r.status for r in snapshot.responses] == [200, 200]
    assert snapshot.responses[1].body == SEED_BALANCES.read_bytes()
    parsed = SaxoConnector.parse(snapshot, source)
    assert report_rows(parsed.balances) == expected_rows()


def test_paging_follows_absolute_and_relative_next(sim5: Simulator) -> None:
    source = sim_source(sim5, page_size=2)
    _, snapshot = fetch_from(sim5, source)
    listing = [r for r in snapshot.responses if "/accounts/me" in r.url]
    links = [json.loads(r.body).get("__next") for r in listing]
    assert links[0].startswith(f"{sim5.url}/sim/openapi/port/v1/accounts/me?")  # absolute
    assert links[1].startswith("/sim/openapi/port/v1/accounts/me?")  # relative
    assert links[2] is None
    assert [parse_qs(urlsplit(r.url).query) for r in listing] == [
        {"$top": ["2"]},
        {"$top": ["2"], "$skip": ["2"]},
        {"$top": ["2"], "$skip": ["4"]},
    ]
    expected_keys = [a["AccountKey"] for a in sim_saxo.venue(sim5).accounts]
    parsed = SaxoConnector.parse(snapshot, source)
    assert [a.account_id for a in parsed.accounts] == expected_keys
    assert len(expected_keys) == 5 and len(set(expected_keys)) == 5
    assert {a.status for a in parsed.accounts} == {"received"}
    # Index 2 is the simulator's unreliable account: quarantined, not in balances.
    assert [r.record["venue_account_id"] for r in parsed.rejected] == [expected_keys[2]]
    assert sorted(parsed.balances.column("venue_account_id").to_pylist()) == sorted(
        k for i, k in enumerate(expected_keys) if i != 2
    )
    assert sim5.request_count("saxo") == 3 + 5


def test_paging_with_skip_and_count_only(sim5: Simulator) -> None:
    sim_saxo.venue(sim5).next_link = "none"
    source = sim_source(sim5, page_size=2)
    _, snapshot = fetch_from(sim5, source)
    listing = [r.url for r in snapshot.responses if "/accounts/me" in r.url]
    assert [parse_qs(urlsplit(u).query).get("$skip") for u in listing] == [None, ["2"], ["4"]]
    parsed = SaxoConnector.parse(snapshot, source)
    assert len(parsed.accounts) == 5 and {a.status for a in parsed.accounts} == {"received"}


@pytest.mark.parametrize(
    ("order", "pages"),
    [
        ([0, 1, 1, 2, 3, 4], 3),  # overlapping pages: [0, 1], [1, 2], [3, 4]
        ([0, 1, 0, 1, 2], 3),  # one page of nothing but repeats: [0, 1], [0, 1], [2]
    ],
)
def test_an_account_on_two_pages_is_fetched_once(
    sim5: Simulator, order: list[int], pages: int
) -> None:
    venue = sim_saxo.venue(sim5)
    generated = venue.accounts
    venue.set_accounts([generated[i] for i in order])
    source = sim_source(sim5, page_size=2)
    _, snapshot = fetch_from(sim5, source)
    keys = [generated[i]["AccountKey"] for i in dict.fromkeys(order)]
    asked = [
        parse_qs(urlsplit(r.url).query)["AccountKey"][0]
        for r in snapshot.responses
        if "/balances" in r.url
    ]
    assert asked == keys  # each account once, in listing order
    assert sim5.request_count("saxo") == pages + len(keys)
    parsed = SaxoConnector.parse(snapshot, source)
    assert [a.account_id for a in parsed.accounts] == keys
    assert [a.name for a in parsed.accounts] == [
        generated[i]["DisplayName"] for i in dict.fromkeys(order)
    ]


def test_next_link_to_another_host_is_refused_without_sending_the_token() -> None:
    sent: list[str] = []

    class Session(requests.Session):
        def request(self, method: str | bytes, url: str | bytes, *args: Any,
                    **kwargs: Any) -> requests.Response:  # fmt: skip
            sent.append(str(url))
            resp = requests.Response()
            resp.status_code, resp.url = 200, str(url)
            resp._content = json.dumps(
                {"Data": [account("A")], "__next": "https://evil.example/steal?$skip=1"}
            ).encode()
            return resp

    source = make_source()
    http = HttpClient(source.name, session=Session())
    with pytest.raises(MalformedResponse, match=r"__next points outside base_url \(evil.example\)"):
        SaxoConnector(source, http).fetch()
    assert sent == [ACCOUNTS_URL]


def test_a_paging_loop_is_refused() -> None:
    sent: list[str] = []

    class Session(requests.Session):
        def request(
            self, method: str | bytes, url: str | bytes, *args: Any, **kwargs: Any
        ) -> requests.Response:
            sent.append(str(url))
            resp = requests.Response()
            resp.status_code, resp.url = 200, str(url)
            link = f"/sim/openapi/port/v1/accounts/me?$skip={len(sent)}"  # always a new URL
            resp._content = json.dumps({"Data": [account("A")], "__next": link}).encode()
            return resp

    source = make_source()
    with pytest.raises(MalformedResponse, match="2 pages in a row repeat earlier accounts"):
        SaxoConnector(source, HttpClient(source.name, session=Session())).fetch()
    assert len(sent) == 3  # one page of repeats is an overlap; two in a row are a loop


def test_one_failing_account_does_not_stop_the_others(
    sim5: Simulator, caplog: pytest.LogCaptureFixture
) -> None:
    venue = sim_saxo.venue(sim5)
    keys = [a["AccountKey"] for a in venue.accounts]
    venue.fail_account(keys[1], status=500)
    source = sim_source(sim5, page_size=2)
    sleeps: list[float] = []
    with caplog.at_level(logging.WARNING):
        _, snapshot = fetch_from(sim5, source, sleeps=sleeps)
    assert snapshot.error is None
    assert len(sleeps) == RetryPolicy().max_attempts - 1  # the HTTP layer retried the 500s
    parsed = SaxoConnector.parse(snapshot, source)
    statuses = {a.account_id: (a.status, a.reason) for a in parsed.accounts}
    assert statuses[keys[1]] == ("failed", "HTTP 500 InternalServerError: Simulated "
                                           "InternalServerError")  # fmt: skip
    assert [statuses[k][0] for k in keys] == ["received", "failed", "received", "received",
                                              "received"]  # fmt: skip
    failed_uuid = u5(f"saxo:account:{keys[1]}")
    assert failed_uuid not in parsed.balances.column("accountUUID").to_pylist()
    assert parsed.balances.num_rows == 3  # 5 accounts - 1 failed - 1 unreliable
    assert any(keys[1] in r.getMessage() and "HTTP 500" in r.getMessage() for r in caplog.records)


def test_accounts_listing_failure_fails_the_whole_source(sim5: Simulator) -> None:
    sim5.set_fault("saxo", status=503, times=10)
    with pytest.raises(VenueUnavailable, match="answered HTTP 503"):
        fetch_from(sim5, sim_source(sim5))
    assert sim5.request_count("saxo") == RetryPolicy().max_attempts


def test_429_retry_after_is_honoured(simulator: Simulator) -> None:
    simulator.set_fault("saxo", status=429, times=1, retry_after=7)
    sleeps: list[float] = []
    _, snapshot = fetch_from(simulator, sim_source(simulator), sleeps=sleeps)
    assert sleeps == [7.0]
    assert [r.status for r in snapshot.responses][:2] == [429, 200]
    assert snapshot.responses[0].headers.get("Retry-After") == "7"
    assert json.loads(snapshot.responses[0].body)["ErrorCode"] == "RateLimitExceeded"


# --- tokens ------------------------------------------------------------------------------------


def secret_values(sim: Simulator) -> list[str]:
    venue = sim_saxo.venue(sim)
    return [STATIC_TOKEN, CLIENT_SECRET, REFRESH_TOKEN, *venue.issued_tokens]


def assert_no_secret(texts: list[str], secrets: list[str]) -> None:
    for text in texts:
        for secret in secrets:
            assert secret not in text


def test_expired_token_is_refreshed_exactly_once(
    simulator: Simulator, caplog: pytest.LogCaptureFixture
) -> None:
    venue = sim_saxo.venue(simulator)
    venue.expire_static_token()
    source = sim_source(simulator, refresh=True)  # token_url derived: <host>/sim/token
    with caplog.at_level(logging.DEBUG):
        connector, snapshot = fetch_from(simulator, source)
    assert connector.tokens.refreshes == 1 and venue.refreshes == 1
    assert [r.status for r in snapshot.responses] == [401, 200, 200, 200, 200]
    parsed = SaxoConnector.parse(snapshot, source)
    assert [a.status for a in parsed.accounts] == ["received"] * 3
    secrets = secret_values(simulator)
    assert len(secrets) == 5  # static, client secret, refresh, + the issued access/refresh pair
    stored = gzip.decompress(snapshot.to_bytes()).decode("utf-8")
    assert_no_secret([stored, caplog.text, *(r.getMessage() for r in caplog.records)], secrets)
    assert "/sim/token" not in stored  # the token call is never recorded


def test_access_token_can_come_from_the_refresh_flow_alone(simulator: Simulator) -> None:
    source = sim_source(simulator, access_token=None, refresh=True)
    connector, snapshot = fetch_from(simulator, source)
    assert connector.tokens.refreshes == 1
    assert {r.status for r in snapshot.responses} == {200}


def test_bad_refresh_token_is_an_auth_error_without_secrets(
    simulator: Simulator, caplog: pytest.LogCaptureFixture
) -> None:
    sim_saxo.venue(simulator).expire_static_token()
    source = sim_source(simulator, refresh=True, refresh_token="not-the-refresh-token")
    with caplog.at_level(logging.DEBUG), pytest.raises(VenueAuthError) as info:
        fetch_from(simulator, source)
    assert (info.value.code, info.value.status) == ("invalid_grant", 400)
    assert str(info.value) == (
        "saxo_test: token refresh refused: POST /sim/token answered HTTP 400 invalid_grant"
    )
    secrets = [*secret_values(simulator), "not-the-refresh-token"]
    assert_no_secret([str(info.value), repr(info.value), caplog.text], secrets)


def test_401_without_refresh_credentials_is_an_auth_error(simulator: Simulator) -> None:
    sim_saxo.venue(simulator).expire_static_token()
    with pytest.raises(VenueAuthError) as info:
        fetch_from(simulator, sim_source(simulator))
    assert str(info.value) == (
        "saxo_test: GET /sim/openapi/port/v1/accounts/me answered HTTP 401 Unauthorized: "
        "Authorization token is invalid"
    )
    assert STATIC_TOKEN not in str(info.value)


def test_second_401_after_refresh_fails_the_whole_source(sim5: Simulator) -> None:
    venue = sim_saxo.venue(sim5)
    keys = [a["AccountKey"] for a in venue.accounts]
    venue.fail_account(keys[0], status=401)
    with pytest.raises(VenueAuthError, match=r"HTTP 401 Unauthorized.* after a token refresh"):
        fetch_from(sim5, sim_source(sim5, refresh=True))
    assert venue.refreshes == 1
    # One listing page, the first account's attempt, the token call and the one retry; no
    # other account was called.
    assert sim5.request_count("saxo") == 1 + 1 + 1 + 1


class TokenSession(requests.Session):
    """Answers the token endpoint from a script of (status, body, headers); records forms."""

    def __init__(self, script: list[tuple[int, bytes, dict[str, str]]]) -> None:
        super().__init__()
        self.script = script
        self.forms: list[dict[str, str]] = []

    def post(self, url: str | bytes, data: Any = None, **kwargs: Any) -> requests.Response:
        self.forms.append(dict(data))
        status, body, headers = self.script.pop(0)
        resp = requests.Response()
        resp.status_code, resp._content, resp.url = status, body, str(url)
        resp.headers.update(headers)
        return resp


def test_token_call_retries_and_validates_its_answer() -> None:
    good = json.dumps({"access_token": "new-access", "refresh_token": "new-refresh"}).encode()
    session = TokenSession([(503, b"", {"Retry-After": "3"}), (200, good, {})])
    sleeps: list[float] = []
    tokens = TokenProvider("saxo_test", access_token=Secret("old"), client_id=Secret("cid"),
                           client_secret=Secret("cs"), refresh_token=Secret("rt"),
                           token_url="https://auth.example/token", session=session,
                           sleep=sleeps.append)  # fmt: skip
    assert tokens.current() == "old"
    tokens.refresh(stale="old")
    assert (tokens.current(), tokens.refreshes, sleeps) == ("new-access", 1, [3.0])
    assert session.forms[-1] == {"grant_type": "refresh_token", "refresh_token": "rt",
                                 "client_id": "cid", "client_secret": "cs"}  # fmt: skip
    tokens.refresh(stale="old")  # someone else already replaced "old": no second call
    assert tokens.refreshes == 1 and session.script == []
    session.script = [(200, b"{}", {})]
    with pytest.raises(MalformedResponse):
        tokens.refresh(stale="new-access")
    assert session.forms[-1]["refresh_token"] == "new-refresh"  # the rotated one is sent now
    assert repr(tokens) == "TokenProvider(source='saxo_test', can_refresh=True)"


def test_token_answer_without_access_token_is_malformed() -> None:
    session = TokenSession([(200, b'{"token_type": "Bearer"}', {})])
    tokens = TokenProvider("saxo_test", access_token=None, client_id=Secret("cid"),
                           client_secret=Secret("cs"), refresh_token=Secret("rt"),
                           token_url="https://auth.example/token", session=session)  # fmt: skip
    with pytest.raises(MalformedResponse, match="POST /token: answer has no access_token"):
        tokens.current()


# --- rate limits -------------------------------------------------------------------------------


def test_limiter_waits_for_the_window() -> None:
    clock = FakeClock()
    limiter = SlidingWindowLimiter(3, clock=clock, sleep=clock.sleep)
    for at in (0, 10, 20):
        clock.now = 1000.0 + at
        limiter.acquire()
    clock.now = 1030.0
    limiter.acquire()  # 4th within a minute: waits until the first leaves the window
    assert clock.sleeps == [30.0] and clock.now == 1060.0
    limiter.acquire()  # the second (t=10) leaves at t=70
    assert clock.sleeps == [30.0, 10.0]


def test_121_requests_within_a_minute_wait_for_the_window() -> None:
    """Over HTTP: 1 listing + 120 balances calls; the 121st waits the rest of the minute."""
    config = SimulatorConfig(seed=3, saxo_accounts=120, saxo_rate_limit_per_minute=1000)
    with Simulator(config) as sim:
        clock = FakeClock()
        limiter = SlidingWindowLimiter(120, clock=clock, sleep=clock.sleep)
        _, snapshot = fetch_from(sim, sim_source(sim, page_size=1000), limiter=limiter)
        assert len(snapshot.responses) == 121
        assert clock.sleeps == [60.0]
        assert sim.request_count("saxo") == 121


def test_exhausted_rate_limit_headers_hold_requests() -> None:
    """The simulator allows 2/min; the client reads Remaining=0 and waits instead of a 429."""
    config = SimulatorConfig(seed=7, saxo_accounts=3, saxo_rate_limit_per_minute=2)
    with Simulator(config) as sim:
        clock = FakeClock()
        sim_saxo.venue(sim).clock = clock  # one clock for venue and client
        limiter = SlidingWindowLimiter(120, clock=clock, sleep=clock.sleep)
        _, snapshot = fetch_from(sim, sim_source(sim, page_size=2), limiter=limiter)
        assert {r.status for r in snapshot.responses} == {200}
        assert len(snapshot.responses) == 2 + 3  # two pages (page size 2) + three accounts
        remaining = [r.headers["X-RateLimit-Session-Remaining"] for r in snapshot.responses]
        assert remaining == ["1", "0", "1", "0", "1"]
        assert clock.sleeps == [60.0, 60.0]


def test_exhausted_reset_reads_every_dimension() -> None:
    headers = {
        "X-RateLimit-Session-Remaining": "0", "X-RateLimit-Session-Reset": "12",
        "X-RateLimit-AppDay-Remaining": "5", "X-RateLimit-AppDay-Reset": "3600",
    }  # fmt: skip
    assert exhausted_reset(headers) == 12.0
    assert exhausted_reset({"x-ratelimit-session-remaining": "3"}) is None
    assert exhausted_reset({"X-RateLimit-Session-Remaining": "0"}) is None  # no reset given
    assert exhausted_reset({"X-RateLimit-S-Remaining": "x", "X-RateLimit-S-Reset": "1"}) is None
    clock = FakeClock()
    limiter = SlidingWindowLimiter(120, clock=clock, sleep=clock.sleep)
    daily = {"X-RateLimit-AppDay-Remaining": "0", "X-RateLimit-AppDay-Reset": "3600"}
    limiter.observe(RawResponse("GET", BASE, 200, daily, b"", "t"))
    limiter.acquire()
    assert clock.sleeps == []  # a daily reset is not waited for (the venue's 429s decide)
    limiter.observe(RawResponse("GET", BASE, 200, headers, b"", "t"))
    limiter.acquire()
    assert clock.sleeps == [12.0]


# --- the simulator itself ----------------------------------------------------------------------


def sim_get(sim: Simulator, path: str, token: str = STATIC_TOKEN, **params: str) -> Any:
    return requests.get(f"{sim.url}{path}", params=params, timeout=5,
                        headers={"Authorization": f"Bearer {token}"})  # fmt: skip


def test_simulator_data_is_deterministic_exact_and_documented() -> None:
    bodies: list[list[bytes]] = []
    for _ in range(2):
        with Simulator(SimulatorConfig(seed=11, saxo_accounts=4)) as sim:
            accounts = sim_saxo.venue(sim).accounts
            bodies.append([
                sim_get(sim, sim_saxo.BALANCES_PATH, ClientKey=a["ClientKey"],
                        AccountKey=a["AccountKey"]).content
                for a in accounts
            ])  # fmt: skip
    assert bodies[0] == bodies[1]
    docs = [json.loads(b, parse_float=Decimal) for b in bodies[0]]
    assert [d["CalculationReliability"] for d in docs] == ["Ok", "Ok", "ApproximatedPrice", "Ok"]
    for body, doc in zip(bodies[0], docs, strict=True):
        assert b"e-" not in body.lower() and b"E+" not in body
        for name in ("CashBalance", "TotalValue", "CostToClosePositions"):
            assert f'"{name}": {doc[name]}'.encode() in body  # written exactly, 2 decimals
        assert doc["CostToClosePositions"] < 0 and doc["MarginUsedByCurrentPositions"] < 0
    assert [d["TransactionsNotBooked"] < 0 for d in docs] == [True, False, False, True]


def test_simulator_auth_paging_and_errors(simulator: Simulator) -> None:
    none = requests.get(f"{simulator.url}{sim_saxo.ACCOUNTS_PATH}", timeout=5)
    assert none.status_code == 401 and none.json()["ErrorCode"] == "Unauthorized"
    page = sim_get(simulator, sim_saxo.ACCOUNTS_PATH)
    assert page.status_code == 200
    assert page.json()["__count"] == 3 and len(page.json()["Data"]) == 2  # saxo_page_size 2
    assert page.headers["X-RateLimit-Session-Limit"] == "120"
    last = sim_get(simulator, sim_saxo.ACCOUNTS_PATH, **{"$top": "5000", "$skip": "2"})
    assert len(last.json()["Data"]) == 1 and "__next" not in last.json()
    assert sim_get(simulator, sim_saxo.ACCOUNTS_PATH, **{"$top": "x"}).status_code == 400
    first = sim_saxo.venue(simulator).accounts[0]
    missing = sim_get(simulator, sim_saxo.BALANCES_PATH, AccountKey=first["AccountKey"])
    assert missing.status_code == 400 and missing.json()["ErrorCode"] == "InvalidRequest"
    wrong_client = sim_get(simulator, sim_saxo.BALANCES_PATH, ClientKey="other",
                           AccountKey=first["AccountKey"])  # fmt: skip
    assert wrong_client.status_code == 404


def test_simulator_token_endpoint(simulator: Simulator) -> None:
    url = sim_saxo.token_url(simulator)
    form = {"grant_type": "refresh_token", "refresh_token": REFRESH_TOKEN,
            "client_id": CLIENT_ID, "client_secret": CLIENT_SECRET}  # fmt: skip
    ok = requests.post(url, data=form, timeout=5)
    assert ok.status_code == 200 and ok.json()["token_type"] == "Bearer"
    assert sim_get(simulator, sim_saxo.ACCOUNTS_PATH, token=ok.json()["access_token"]).ok
    rotated = {**form, "refresh_token": ok.json()["refresh_token"]}
    assert requests.post(url, data=rotated, timeout=5).status_code == 200
    basic = base64.b64encode(f"{CLIENT_ID}:{CLIENT_SECRET}".encode()).decode()
    by_basic = {"grant_type": "refresh_token", "refresh_token": REFRESH_TOKEN}
    assert (
        requests.post(
            url, data=by_basic, timeout=5, headers={"Authorization": f"Basic {basic}"}
        ).status_code
        == 200
    )
    for change, status, code in [
        ({"grant_type": "password"}, 400, "unsupported_grant_type"),
        ({"client_secret": "nope"}, 401, "invalid_client"),
        ({"refresh_token": "nope"}, 400, "invalid_grant"),
    ]:
        answer = requests.post(url, data={**form, **change}, timeout=5)
        assert (answer.status_code, answer.json()) == (status, {"error": code})


def test_simulator_rate_limit_window() -> None:
    with Simulator(SimulatorConfig(saxo_rate_limit_per_minute=2)) as sim:
        clock = FakeClock()
        sim_saxo.venue(sim).clock = clock
        answers = [sim_get(sim, sim_saxo.ACCOUNTS_PATH) for _ in range(3)]
        assert [a.status_code for a in answers] == [200, 200, 429]
        assert [a.headers["X-RateLimit-Session-Remaining"] for a in answers] == ["1", "0", "0"]
        assert answers[2].headers["Retry-After"] == "60"
        assert answers[2].json()["ErrorCode"] == "RateLimitExceeded"
        clock.now += 30
        assert sim_get(sim, sim_saxo.ACCOUNTS_PATH).status_code == 429
        assert sim_get(sim, sim_saxo.ACCOUNTS_PATH).headers["Retry-After"] == "30"
        clock.now += 30
        assert sim_get(sim, sim_saxo.ACCOUNTS_PATH).status_code == 200
        # Another token has its own window.
        form = {"grant_type": "refresh_token", "refresh_token": REFRESH_TOKEN,
                "client_id": CLIENT_ID, "client_secret": CLIENT_SECRET}  # fmt: skip
        other = requests.post(sim_saxo.token_url(sim), data=form, timeout=5).json()["access_token"]
        assert sim_get(sim, sim_saxo.ACCOUNTS_PATH, token=other).status_code == 200
