"""Multi-exchange platform connector: mapping (spec §3), positions, statuses, redaction, HTTP."""

from __future__ import annotations

import copy
import csv
import gzip
import json
import logging
from collections.abc import Callable
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
import requests

from etl_project.config import Secret, SourceConfig, parse_config
from etl_project.errors import (
    ConfigError,
    MalformedResponse,
    VenueAuthError,
    VenueError,
    VenueRateLimited,
    VenueUnavailable,
)
from etl_project.http import HttpClient, RawResponse
from etl_project.raw import RawSnapshot, SnapshotRecorder
from etl_project.report.columns import REPORT_COLUMNS
from etl_project.report.schema import BalancesModel
from etl_project.report.validate import split_valid
from etl_project.simulator.platform import platform_venue
from etl_project.venues import connector_for
from etl_project.venues.base import AccountStatus
from etl_project.venues.platform.connector import (
    POSITIONS_SCHEMA,
    PlatformConnector,
    PlatformSettings,
    check_response,
)
from etl_project.venues.platform.redact import WITHHELD, RedactingRecorder, redact_body
from tests.report_text import fmt_amount, report_rows

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures"
ACCOUNTS = FIXTURES / "platform_accounts.json"
CACHED = FIXTURES / "platform_cached_balance.json"
EXPECTED = FIXTURES / "platform_cached_balance_expected.csv"
HOST = "https://platform.example.com"
TOKEN = "sim-platform-api-token"
ID_A = "6f1c2d3e-4a5b-4c6d-8e7f-90a1b2c3d4e5"  # Binance, upper-case in the balances
ID_B = "0b7e4c2a-1d3f-4e5a-9b6c-7d8e9f0a1b2c"  # Bybit
ID_ARCHIVED = "a3c5e7f9-2b4d-4f6a-8c0e-1a3b5c7d9e0f"
ID_D = "d4e5f6a7-b8c9-4d0e-9f1a-2b3c4d5e6f70"  # in errors[]
ID_E = "e1f2a3b4-c5d6-4e7f-8a9b-0c1d2e3f4a5b"  # in neither list
CREDENTIAL_KEYS = ("api_key", "api_secret", "password")


# --- helpers -----------------------------------------------------------------------------------


def make_source(base_url: str = HOST, token: str = TOKEN, **settings: Any) -> SourceConfig:
    return SourceConfig(
        name="platform_test",
        kind="platform",
        settings=PlatformSettings(base_url, Secret(token), **settings),
    )


def response(path: str, body: bytes | Any, status: int = 200) -> RawResponse:
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    headers = {"Content-Type": "application/json"}
    return RawResponse("GET", HOST + path, status, headers, data, "t")


def listing(doc: Any = None, status: int = 200) -> RawResponse:
    return response("/api/accounts/", ACCOUNTS.read_bytes() if doc is None else doc, status)


def cached(doc: Any = None, status: int = 200, names: str = "x") -> RawResponse:
    body = CACHED.read_bytes() if doc is None else doc
    return response(f"/api/sor/get_cached_account_balance?account_names={names}", body, status)


def snapshot_of(*responses: RawResponse) -> RawSnapshot:
    return RawSnapshot(
        "platform_test",
        "platform",
        date(2026, 1, 2),
        datetime(2026, 1, 3, 0, 5, tzinfo=UTC),
        responses=list(responses),
    )


def cached_doc() -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(CACHED.read_bytes())
    return doc


def parse(*responses: RawResponse, **settings: Any) -> Any:
    return PlatformConnector.parse(snapshot_of(*responses), make_source(**settings))


def parse_cached(doc: dict[str, Any]) -> Any:
    return parse(listing(), cached(doc))


def expected_rows() -> list[dict[str, str]]:
    with EXPECTED.open(encoding="utf-8", newline="") as f:
        reader = csv.DictReader(f)
        assert reader.fieldnames == list(REPORT_COLUMNS)
        return list(reader)


def credential_values(accounts: list[dict[str, Any]]) -> list[str]:
    values = [str(a[k]) for a in accounts for k in CREDENTIAL_KEYS if a.get(k)]
    assert values
    return values


def test_fmt_amount_helper() -> None:
    assert fmt_amount(Decimal("100.00000000000000000000")) == "100"
    assert fmt_amount(Decimal("3.46E-9")) == "0.00000000346"
    assert fmt_amount(Decimal("-0E-20")) == "0"


# --- mapping of the hand-built payload -----------------------------------------------------


def test_fixture_maps_to_the_expected_report_rows() -> None:
    parsed = parse(listing(), cached())
    assert parsed.rejected == []
    assert report_rows(parsed.balances) == expected_rows()
    # 7 token assets (USDC 0 is kept here; the report drops all-zero rows), no position rows.
    assert parsed.balances.num_rows == 7


def test_fixture_trace_columns() -> None:
    rows = parse(listing(), cached()).balances.to_pylist()
    trace = sorted({(r["source"], r["venue"], r["venue_account_id"], r["wallet"]) for r in rows})
    assert trace == [
        ("platform_test", "platform", ID_B, "unified"),
        ("platform_test", "platform", ID_A, "futures"),
        ("platform_test", "platform", ID_A, "spot"),
    ]
    # Exact decimals, not floats, at full scale.
    eth = [r["Total"] for r in rows if r["Ccy"] == "ETH"]
    assert eth == [Decimal("-0.0009056832839642471")]


def test_fixture_positions_table() -> None:
    positions = parse(listing(), cached()).extra_tables["positions"]
    assert positions.schema.equals(POSITIONS_SCHEMA)
    common = {"source": "platform_test", "venue": "platform", "account_id": ID_A,
              "account_name": "binance-main", "exchange_name": "Binance",
              "wallet_type": "futures"}  # fmt: skip
    assert positions.to_pylist() == [
        {**common, "symbol": "BTC:PERP-USDT", "settlement_ccy": "USDT",
         "amount": Decimal("0.021"), "initial_margin": Decimal("114.59134696"),
         "maint_margin": Decimal("2.29182693"), "unrealized_profit": Decimal("7.87343483"),
         "notional": Decimal("572.956735"), "leverage": Decimal("5"), "margin_mode": "CROSS"},
        {**common, "symbol": "ETH:PERP-USDT", "settlement_ccy": "USDT",
         "amount": Decimal("-0.5"), "initial_margin": Decimal("155.72429442"),
         "maint_margin": Decimal("3.32015061"), "unrealized_profit": Decimal("-11.02638782"),
         "notional": Decimal("1557.2429442"), "leverage": Decimal("10"),
         "margin_mode": "ISOLATED"},
        {**common, "symbol": "SOL:PERP-USDC", "settlement_ccy": "USDC",
         "amount": Decimal("3"), "initial_margin": Decimal("48.015"), "maint_margin": None,
         "unrealized_profit": None, "notional": Decimal("480.15"), "leverage": None,
         "margin_mode": None},
    ]  # fmt: skip


def test_positions_schema() -> None:
    assert POSITIONS_SCHEMA.names == [
        "source", "venue", "account_id", "account_name", "exchange_name", "wallet_type",
        "symbol", "settlement_ccy", "amount", "initial_margin", "maint_margin",
        "unrealized_profit", "notional", "leverage", "margin_mode",
    ]  # fmt: skip
    decimal = pa.decimal128(38, 20)
    assert [f.name for f in POSITIONS_SCHEMA if f.type == decimal] == POSITIONS_SCHEMA.names[8:14]
    assert [f.name for f in POSITIONS_SCHEMA if not f.nullable] == [
        "source", "venue", "account_id", "account_name", "exchange_name", "wallet_type",
        "symbol", "amount",
    ]  # fmt: skip


def test_fixture_account_statuses() -> None:
    parsed = parse(listing(), cached())
    assert parsed.accounts == [
        AccountStatus(ID_A, "received", None, "binance-main"),
        AccountStatus(ID_B, "received", None, "bybit-hedge"),
        AccountStatus(
            ID_D, "failed", "OKXDEX API error: invalid signature (code 50113)", "okxdex-arb"
        ),
        AccountStatus(ID_E, "failed", "not returned by the platform", "hyperliquid-ops"),
    ]  # the archived account is not expected at all; names are the listing's `name`


def test_trade_ahead_only_counts_the_same_wallet_and_settlement_currency() -> None:
    doc = cached_doc()
    assets = doc["balances"][0]["assets"]
    # A USDT-settled position in the *spot* wallet counts only there; a USDC one nowhere.
    spot_position = copy.deepcopy(assets[1])
    spot_position.update(wallet_type="spot", initial_margin="0.5")
    assets.append(spot_position)
    rows = {(r["wallet"], r["Ccy"]): r for r in parse_cached(doc).balances.to_pylist()}
    assert rows[("spot", "USDT")]["Trade Ahead"] == Decimal("0.5")
    assert rows[("spot", "USDT")]["Available"] == Decimal("250")
    assert rows[("futures", "USDT")]["Trade Ahead"] == Decimal("270.31564138")
    assert rows[("spot", "BTC")]["Trade Ahead"] == 0


def test_null_borrowed_and_initial_margin_count_as_zero() -> None:
    doc = cached_doc()
    assets = doc["balances"][0]["assets"]
    assets[2]["initial_margin"] = None
    rows = {(r["wallet"], r["Ccy"]): r for r in parse_cached(doc).balances.to_pylist()}
    assert rows[("futures", "USDT")]["Trade Ahead"] == Decimal("114.59134696")
    assert rows[("futures", "USDT")]["Available"] == Decimal("1299.46904945")


def test_json_numbers_are_accepted_exactly() -> None:
    exact = b'"amount": 250.12345678901234567891'
    text = CACHED.read_bytes().replace(b'"amount": "250.5"', exact)
    rows = parse(listing(), cached(text)).balances.to_pylist()
    usdt = [r["Total"] for r in rows if r["wallet"] == "spot" and r["Ccy"] == "USDT"]
    assert usdt == [Decimal("250.12345678901234567891")]
    too_fine = b'"amount": "250.123456789012345678912"'
    parsed = parse(listing(), cached(CACHED.read_bytes().replace(b'"amount": "250.5"', too_fine)))
    assert [(r.check, r.record["Ccy"]) for r in parsed.rejected] == [("exact_decimal", "USDT")]


# --- rejected values and failed accounts ----------------------------------------------------


def test_non_numeric_amount_rejects_only_that_row() -> None:
    doc = cached_doc()
    doc["balances"][1]["assets"][0]["amount"] = "n/a"
    doc["balances"][1]["assets"][2]["borrowed"] = "NaN"
    parsed = parse_cached(doc)
    assert [(r.check, r.record["symbol"], r.reason) for r in parsed.rejected] == [
        ("decimal", "USDT", "amount 'n/a' is not a decimal"),
        ("decimal", "xbt", "borrowed 'NaN' is not a decimal"),
    ]
    assert parsed.rejected[0].record["account_id"] == ID_B
    assert parsed.rejected[0].record["amount"] == "n/a"
    kept = {(r["venue_account_id"], r["Ccy"]) for r in parsed.balances.to_pylist()}
    assert (ID_B, "USDT") not in kept and (ID_B, "BTC") not in kept
    assert (ID_B, "ETH") in kept and parsed.balances.num_rows == 5
    assert AccountStatus(ID_B, "received", None, "bybit-hedge") in parsed.accounts


def test_a_rejected_copy_of_a_token_takes_the_other_copy_to_quarantine() -> None:
    doc = cached_doc()
    assets = doc["balances"][0]["assets"]
    assets.append({**assets[5], "amount": "n/a"})  # spot USDT listed twice, one copy bad
    parsed = parse_cached(doc)
    spot = "8eb83f9d-f000-526b-89ba-f11a51896220"
    assert [(r.check, r.reason, r.record["accountUUID"], r.record["Ccy"])
            for r in parsed.rejected] == [
        ("decimal", "amount 'n/a' is not a decimal", spot, "USDT"),
        ("unique_account_ccy", "duplicate (accountUUID, Ccy): listed 2 times by the venue",
         spot, "USDT"),
    ]  # fmt: skip
    assert parsed.rejected[1].record["Total"] == "250.5"
    assert report_rows(parsed.balances) == _without(expected_rows(), ("spot", "USDT"))


def test_bad_initial_margin_rejects_the_position_and_its_tokens_trade_ahead() -> None:
    doc = cached_doc()
    doc["balances"][0]["assets"][1]["initial_margin"] = "1,5"
    parsed = parse_cached(doc)
    assert [(r.record["symbol"], r.reason) for r in parsed.rejected] == [
        ("BTC:PERP-USDT", "initial_margin '1,5' is not a decimal"),
        ("USDT", "Trade Ahead unknown: position BTC:PERP-USDT "
                 "initial_margin '1,5' is not a decimal"),
    ]  # fmt: skip
    wallets = {(r["wallet"], r["Ccy"]) for r in parsed.balances.to_pylist()}
    assert ("futures", "USDT") not in wallets and ("spot", "USDT") in wallets
    symbols = parsed.extra_tables["positions"].column("symbol").to_pylist()
    assert symbols == ["ETH:PERP-USDT", "SOL:PERP-USDC"]


def test_unrepresentable_position_value_is_rejected() -> None:
    doc = cached_doc()
    doc["balances"][0]["assets"][3]["notional"] = "0.123456789012345678901"
    parsed = parse_cached(doc)
    assert [r.record["symbol"] for r in parsed.rejected] == ["SOL:PERP-USDC"]
    assert "more than 20 fractional digits" in parsed.rejected[0].reason
    assert parsed.extra_tables["positions"].num_rows == 2


def test_unknown_asset_type_is_rejected() -> None:
    doc = cached_doc()
    doc["balances"][0]["assets"][4]["asset_type"] = "option"
    parsed = parse_cached(doc)
    assert [(r.check, r.reason) for r in parsed.rejected] == [
        ("asset_type", "asset_type 'option' is not token or position")
    ]


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        (lambda e: e.pop("username"), "username is missing"),
        (lambda e: e.update(user_id="x1"), "user_id must be an integer, got string"),
        (lambda e: e.update(exchange_name=""),
         "exchange_name must be a non-empty string, got string"),
        (lambda e: e.update(assets=None), "assets must be an array, got null"),
    ],
)  # fmt: skip
def test_malformed_balance_object_fails_only_that_account(
    change: Callable[[dict[str, Any]], Any], reason: str
) -> None:
    doc = cached_doc()
    change(doc["balances"][0])
    parsed = parse_cached(doc)
    assert parsed.accounts[0] == AccountStatus(
        ID_A, "failed", f"malformed balance entry: {reason}", "binance-main"
    )
    assert parsed.accounts[1] == AccountStatus(ID_B, "received", None, "bybit-hedge")
    assert set(parsed.balances.column("venue_account_id").to_pylist()) == {ID_B}
    assert parsed.extra_tables["positions"].num_rows == 0


def _without(rows: list[dict[str, str]], *keys: tuple[str, str]) -> list[dict[str, str]]:
    """Expected report rows minus those of the given (subMainType, Ccy) of binance-main."""
    return [
        r for r in rows
        if not (r["Account Group"] == "Binance" and (r["subMainType"], r["Ccy"]) in keys)
    ]  # fmt: skip


def test_a_broken_asset_rejects_only_its_row() -> None:
    doc = cached_doc()
    assets = doc["balances"][0]["assets"]
    assets[4].pop("symbol")  # the spot BTC token
    assets.append(5)
    parsed = parse_cached(doc)
    trace = {"account_id": ID_A, "account_name": "binance-main", "exchange_name": "Binance"}
    assert [(r.check, r.reason, r.record) for r in parsed.rejected] == [
        ("venue_value", "symbol is missing",
         {**trace, "asset_type": "token", "symbol": None, "wallet_type": "spot",
          "amount": "3.46e-9", "margin_balance": None, "unrealized_profit": None,
          "notional": None, "funding_fee": None, "borrowed": None, "initial_margin": None,
          "maint_margin": None, "leverage": None, "margin_mode": None}),
        ("venue_value", "assets[6] must be an object, got number",
         {**trace, "asset_type": None, "symbol": None, "wallet_type": None, "asset": "5"}),
    ]  # fmt: skip
    assert report_rows(parsed.balances) == _without(expected_rows(), ("spot", "BTC"))
    assert parsed.accounts[0] == AccountStatus(ID_A, "received", None, "binance-main")
    assert parsed.extra_tables["positions"].num_rows == 3


def test_a_position_without_wallet_makes_trade_ahead_unknown_in_every_wallet() -> None:
    doc = cached_doc()
    doc["balances"][0]["assets"][1].pop("wallet_type")  # BTC:PERP-USDT, settles in USDT
    parsed = parse_cached(doc)
    why = "Trade Ahead unknown: position BTC:PERP-USDT wallet_type is missing"
    assert [(r.check, r.record["symbol"], r.record["wallet_type"], r.reason)
            for r in parsed.rejected] == [
        ("venue_value", "BTC:PERP-USDT", None, "wallet_type is missing"),
        ("decimal", "USDT", "futures", why),
        ("decimal", "USDT", "spot", why),
    ]  # fmt: skip
    assert report_rows(parsed.balances) == _without(
        expected_rows(), ("futures", "USDT"), ("spot", "USDT")
    )
    symbols = parsed.extra_tables["positions"].column("symbol").to_pylist()
    assert symbols == ["ETH:PERP-USDT", "SOL:PERP-USDC"]


def test_broken_listing_entries_fail_only_that_account() -> None:
    accounts = json.loads(ACCOUNTS.read_bytes())
    accounts += [
        {"name": "no-id-desk"},
        {"id": ID_E.upper(), "name": "hyperliquid-ops"},  # listed twice: one account
        {"id": "F0000000-0000-4000-8000-000000000000", "name": "flag", "archived": "no"},
        ["not", "an", "object"],
    ]
    parsed = parse(listing(accounts), cached())
    where = "GET /api/accounts/"
    assert parsed.accounts[4:] == [
        AccountStatus("accounts[5]", "failed", f"{where}: [5] id is missing", "no-id-desk"),
        AccountStatus("f0000000-0000-4000-8000-000000000000", "failed",
                      f"{where}: [7] archived must be a boolean, got string", "flag"),
        AccountStatus("accounts[8]", "failed", f"{where}: [8] must be an object, got array"),
    ]  # fmt: skip
    assert [a.account_id for a in parsed.accounts[:4]] == [ID_A, ID_B, ID_D, ID_E]
    assert report_rows(parsed.balances) == expected_rows()


def test_an_account_returned_twice_is_one_account_and_its_rows_are_quarantined() -> None:
    doc = cached_doc()
    doc["balances"].append(copy.deepcopy(doc["balances"][0]))  # binance-main twice
    parsed = parse_cached(doc)
    assert [(a.account_id, a.status) for a in parsed.accounts] == [
        (ID_A, "received"), (ID_B, "received"), (ID_D, "failed"), (ID_E, "failed"),
    ]  # fmt: skip
    # Its positions are not kept twice: both copies go to quarantine, named.
    assert [(r.check, r.reason, r.record["symbol"]) for r in parsed.rejected] == [
        ("repeated_account", "account listed 2 times by the platform; its positions are not "
         "kept", symbol) for symbol in ["BTC:PERP-USDT", "ETH:PERP-USDT", "SOL:PERP-USDC"] * 2
    ]  # fmt: skip
    assert parsed.extra_tables["positions"].num_rows == 0
    # Its token rows come twice, and the balances stage quarantines both copies of each.
    valid, rejected = split_valid(parsed.balances, BalancesModel)
    assert report_rows(valid) == [r for r in expected_rows() if r["Account Group"] == "Bybit"]
    assert sorted((r.record["subMainType"], r.record["Ccy"], r.check, r.reason)
                  for r in rejected) == sorted(
        (wallet, ccy, "unique_account_ccy",
         "duplicate (accountUUID, Ccy): listed 2 times by the venue")
        for wallet, ccy in [("futures", "USDT"), ("spot", "BTC"), ("spot", "USDT")] * 2
    )  # fmt: skip


def test_archived_or_unknown_accounts_in_balances_are_not_reported() -> None:
    doc = cached_doc()
    archived = copy.deepcopy(doc["balances"][1])
    archived.update(account_id=ID_ARCHIVED.upper(), account_name="whatever")
    stranger = copy.deepcopy(doc["balances"][1])
    stranger.update(account_id="99999999-9999-4999-8999-999999999999")
    doc["balances"] += [archived, stranger]
    parsed = parse_cached(doc)
    assert [(r.check, r.reason) for r in parsed.rejected] == [
        ("unexpected_account", "balances[2]: account is archived; not reported"),
        ("unexpected_account", "balances[3]: account is not in the /api/accounts/ listing; "
                               "not reported"),
    ]  # fmt: skip
    assert report_rows(parsed.balances) == expected_rows()


def test_an_account_in_errors_is_failed_even_with_balances() -> None:
    doc = cached_doc()
    doc["errors"].append({"account_name": "bybit-hedge", "error": "stale cache"})
    parsed = parse_cached(doc)
    assert parsed.accounts[1] == AccountStatus(ID_B, "failed", "stale cache", "bybit-hedge")
    assert set(parsed.balances.column("venue_account_id").to_pylist()) == {ID_A}


@pytest.mark.parametrize(
    ("entry", "reason"),
    [
        ({"account": "okxdex-arb", "message": "  rate\nlimited  "}, "rate limited"),
        ({"account_id": ID_D.upper(), "detail": {"code": 5, "msg": "down"}}, "down"),
        ({"id": "error-17", "name": "okxdex-arb", "reason": "x"}, "x"),
        ({"account_name": "okxdex-arb"}, "listed in errors[] without a message"),
        ({"account_name": "nobody", "error": "ignored"}, "not returned by the platform"),
    ],
)
def test_errors_entries_are_read_leniently(entry: dict[str, Any], reason: str) -> None:
    doc = cached_doc()
    doc["errors"] = [entry]
    statuses = {a.account_id: a for a in parse_cached(doc).accounts}
    assert statuses[ID_D] == AccountStatus(ID_D, "failed", reason, "okxdex-arb")


def test_account_matched_by_name_when_the_balance_has_no_id() -> None:
    doc = cached_doc()
    del doc["balances"][0]["account_id"]
    parsed = parse_cached(doc)
    assert report_rows(parsed.balances) == expected_rows()
    assert parsed.accounts[0] == AccountStatus(ID_A, "received", None, "binance-main")


# --- top-level shapes and stored errors -------------------------------------------------------


@pytest.mark.parametrize(
    ("responses", "message"),
    [
        ((listing({"x": 1}), cached()), "GET /api/accounts/: must be an array, got object"),
        ((listing(b"<html>"), cached()),
         "GET /api/accounts/: response is not valid JSON (Expecting value: line 1 column 1 "
         "(char 0))"),
        ((listing({"results": [], "next": "https://x/?page=2"}),),
         "GET /api/accounts/: paginated listing ('next' set)"),
        ((listing(), cached({"balances": {}, "errors": []})),
         "GET /api/sor/get_cached_account_balance: balances must be an array, got object"),
        ((listing(), cached([1])),
         "GET /api/sor/get_cached_account_balance: must be an object, got array"),
    ],
)  # fmt: skip
def test_malformed_answers_fail_the_source(responses: tuple[RawResponse], message: str) -> None:
    with pytest.raises(MalformedResponse) as info:
        parse(*responses)
    assert str(info.value) == f"platform_test: {message}"


def test_paged_listing_without_next_is_accepted() -> None:
    page = {"count": 5, "next": None, "results": json.loads(ACCOUNTS.read_bytes())}
    assert report_rows(parse(listing(page), cached()).balances) == expected_rows()


def test_stored_failures_replay_as_typed_errors() -> None:
    with pytest.raises(VenueAuthError, match=r"HTTP 401: Invalid token\.$"):
        parse(listing({"detail": "Invalid token."}, 401))
    with pytest.raises(VenueUnavailable, match="HTTP 503"):
        parse(listing(), cached({"detail": "A server error occurred."}, 503))
    with pytest.raises(MalformedResponse, match="snapshot holds no successful /api/accounts/"):
        parse()
    snapshot = snapshot_of()
    snapshot.error = "platform_test: GET /api/accounts/ failed after 4 attempts: ConnectTimeout"
    with pytest.raises(VenueUnavailable, match="ConnectTimeout"):
        PlatformConnector.parse(snapshot, make_source())


def test_retries_and_batches_in_one_snapshot_are_merged() -> None:
    doc = cached_doc()
    first = {"balances": doc["balances"][:1], "errors": []}
    second = {"balances": doc["balances"][1:], "errors": doc["errors"]}
    parsed = parse(
        listing({"detail": "x"}, 503), listing(), cached({"detail": "x"}, 502), cached(first),
        cached(second),
    )  # fmt: skip
    assert report_rows(parsed.balances) == expected_rows()
    assert [a.status for a in parsed.accounts] == ["received", "received", "failed", "failed"]


def test_no_expected_accounts_gives_empty_tables() -> None:
    only_archived = [a for a in json.loads(ACCOUNTS.read_bytes()) if a["archived"]]
    parsed = parse(listing(only_archived))
    assert parsed.balances.num_rows == 0 and parsed.accounts == []
    assert parsed.extra_tables["positions"].schema.equals(POSITIONS_SCHEMA)


@pytest.mark.parametrize(
    ("status", "kind"),
    [
        (401, VenueAuthError),
        (403, VenueAuthError),
        (404, VenueError),
        (429, VenueRateLimited),
        (500, VenueUnavailable),
    ],
)
def test_check_response_types(status: int, kind: type[VenueError]) -> None:
    raw = listing({"detail": f"about {TOKEN}\nand more"}, status)
    with pytest.raises(VenueError) as info:
        check_response(raw, "platform_test", [TOKEN])
    assert type(info.value) is kind and info.value.status == status
    text = str(info.value)
    assert text == f"platform_test: GET /api/accounts/ answered HTTP {status}: about *** and more"


def test_parse_is_pure_and_repeatable() -> None:
    snapshot = snapshot_of(listing(), cached())
    first = PlatformConnector.parse(snapshot, make_source())
    second = PlatformConnector.parse(RawSnapshot.from_bytes(snapshot.to_bytes()), make_source())
    assert first.balances.equals(second.balances)
    assert first.extra_tables["positions"].equals(second.extra_tables["positions"])
    assert snapshot.responses[1].body == CACHED.read_bytes()


# --- settings -------------------------------------------------------------------------------


def test_settings_through_config() -> None:
    config = parse_config(
        {"sources": [{"name": "desk_platform", "kind": "platform", "base_url": HOST,
                      "api_token": "tok-123"}]}
    )  # fmt: skip
    settings = config.sources[0].settings
    assert connector_for("platform") is PlatformConnector
    assert isinstance(settings, PlatformSettings) and isinstance(settings.api_token, Secret)
    assert "tok-123" not in repr(settings)
    assert (settings.connect_timeout, settings.read_timeout, settings.batch_size) == (5.0, 30.0, 50)
    with pytest.raises(ConfigError, match="missing required field 'api_token'"):
        parse_config({"sources": [{"name": "p", "kind": "platform", "base_url": HOST}]})


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"base_url": "platform.example.com"}, "cfg: base_url: 'platform.example.com' is not"),
        ({"base_url": HOST + "/api/"}, "cfg: base_url is the platform's host"),
        ({"token": " "}, "cfg: api_token is empty"),
        ({"token": "abc def"}, "cfg: api_token contains whitespace"),
        ({"read_timeout": -1}, "cfg: read_timeout must be a positive number"),
        ({"batch_size": 0}, "cfg: batch_size must be an integer from 1 to 200"),
        ({"batch_size": True}, "cfg: batch_size must be an integer"),
    ],
)
def test_settings_validate(change: dict[str, Any], message: str) -> None:
    values: dict[str, Any] = {"base_url": HOST, "token": "tok", **change}
    settings = make_source(**values).settings
    with pytest.raises(ConfigError) as info:
        settings.validate("cfg")
    assert str(info.value).startswith(message) and "\n" not in str(info.value)
    assert "abc def" not in str(info.value)


# --- redaction ------------------------------------------------------------------------------


def test_redaction_is_byte_faithful_for_the_listing() -> None:
    original = ACCOUNTS.read_bytes()
    redacted = redact_body(original)
    values = [*credential_values(json.loads(original)), "FIXTUREpassphrase"]
    for value in values:
        assert value.encode() not in redacted
    # Same bytes apart from the credential values, which became "***" (nulls stay null).
    expected = original
    for value in values:
        expected = expected.replace(f'"{value}"'.encode(), b'"***"')
    assert redacted == expected
    doc = json.loads(redacted)
    assert [a["password"] for a in doc] == [None, "***", None, "***", None]
    assert doc[3]["credential_options"] == {"passphrase": "***"}


def test_redaction_of_odd_shapes() -> None:
    nested = b'{"a": 1.10, "items": [{"Password": {"x": "leak1"}, "n": 3.46e-9}]}'
    assert redact_body(nested) == b'{"a": 1.10, "items": [{"Password": "***", "n": 3.46e-9}]}'
    escaped = b'[{"p\\u0061ssword": "leak2", "amount": 0.1000}]'
    assert redact_body(escaped) == b'[{"password": "***", "amount": 0.1000}]'
    assert redact_body(b'{"api_key": 12345, "ok": true}') == b'{"api_key": "***", "ok": true}'
    truncated = b'[{"api_key": "leak3", "api_secret": {"x'
    assert redact_body(truncated) == WITHHELD
    assert redact_body(b'[{"api_key": "leak4", "na') == b'[{"api_key": "***", "na'
    assert redact_body(b"\xff\xfe api_key") == WITHHELD
    assert redact_body(b"<html>tok-9 inside</html>", ["tok-9"]) == b"<html>*** inside</html>"
    inside = b'{"name": "say \\"password\\": \\"x\\""}'
    assert redact_body(inside) == inside  # a key-like text inside a string value is not a key


def test_redacting_recorder_passes_other_fields_unchanged() -> None:
    seen: list[RawResponse] = []

    class Sink:
        def record(self, response: RawResponse) -> None:
            seen.append(response)

    raw = listing()
    RedactingRecorder(Sink(), ["", TOKEN]).record(raw)
    assert seen[0].body == redact_body(raw.body)
    assert (seen[0].url, seen[0].status, seen[0].headers) == (raw.url, raw.status, raw.headers)


# --- over real HTTP against the simulator -------------------------------------------------


def fetch_from(sim: Any, token: str = TOKEN, **settings: Any) -> tuple[SourceConfig, RawSnapshot]:
    source = make_source(base_url=sim.url, token=token, **settings)
    snapshot = snapshot_of()
    http = HttpClient(source.name, recorder=SnapshotRecorder(snapshot), sleep=lambda s: None)
    try:
        PlatformConnector(source, http).fetch()
    finally:
        http.session.close()
    return source, snapshot


def all_sim_accounts(sim: Any) -> list[dict[str, Any]]:
    url = f"{sim.url}/api/accounts/?include_archived=true"
    answer = requests.get(url, headers={"Authorization": f"Token {TOKEN}"}, timeout=5)
    assert answer.status_code == 200
    accounts: list[dict[str, Any]] = answer.json()
    return accounts


def test_fetch_and_parse_over_http(simulator: Any) -> None:
    venue = platform_venue(simulator)
    source, snapshot = fetch_from(simulator)
    assert simulator.request_count("platform") == 2
    assert [r.status for r in snapshot.responses] == [200, 200]
    assert snapshot.responses[0].url == f"{simulator.url}/api/accounts/"
    accounts = all_sim_accounts(simulator)
    assert len(accounts) == 4 and [a["archived"] for a in accounts] == [False] * 3 + [True]
    active = [a["name"] for a in accounts if not a["archived"]]
    assert venue.requested_names == [active]  # the archived account is never requested
    parsed = PlatformConnector.parse(snapshot, source)
    assert parsed.rejected == []
    assert [(a.account_id, a.status) for a in parsed.accounts] == [
        (accounts[0]["id"], "received"),
        (accounts[1]["id"], "received"),
        (accounts[2]["id"], "failed"),
    ]
    assert parsed.accounts[2].reason == "OKXDEX API error: request timed out after 10s"
    rows = parsed.balances.to_pylist()
    assert {r["Account Group"] for r in rows} == {"Binance", "Bybit"}
    futures_usdt = [r for r in rows if r["wallet"] == "futures" and r["Ccy"] == "USDT"]
    positions = parsed.extra_tables["positions"].to_pylist()
    btc = [p for p in positions if p["wallet_type"] == "futures"]
    assert len(futures_usdt) == 1 and len(btc) == 1 and btc[0]["symbol"] == "BTC:PERP-USDT"
    assert futures_usdt[0]["Trade Ahead"] == btc[0]["initial_margin"] > 0
    assert futures_usdt[0]["Available"] == futures_usdt[0]["Total"] - btc[0]["initial_margin"]
    assert len(positions) == 3


def test_archived_account_in_the_listing_is_dropped_by_the_connector(simulator: Any) -> None:
    venue = platform_venue(simulator)
    accounts = all_sim_accounts(simulator)
    venue.accounts_payload = json.dumps(accounts).encode()
    source, snapshot = fetch_from(simulator)
    archived = accounts[-1]
    assert archived["archived"] is True and "_archived_" in archived["name"]
    assert venue.requested_names == [[a["name"] for a in accounts[:3]]]
    assert archived["name"] not in snapshot.responses[1].url
    parsed = PlatformConnector.parse(snapshot, source)
    assert archived["id"] not in {a.account_id for a in parsed.accounts}
    assert len(parsed.accounts) == 3


def test_an_account_listed_twice_is_requested_once_and_a_broken_one_never(
    simulator: Any,
) -> None:
    venue = platform_venue(simulator)
    accounts = all_sim_accounts(simulator)[:3]
    twice = {**accounts[1], "name": accounts[1]["name"]}
    venue.accounts_payload = json.dumps([*accounts, twice, {"name": "no-id"}]).encode()
    source, snapshot = fetch_from(simulator)
    assert venue.requested_names == [[a["name"] for a in accounts]]
    parsed = PlatformConnector.parse(snapshot, source)
    assert [(a.account_id, a.status, a.name) for a in parsed.accounts] == [
        *((a["id"], "received", a["name"]) for a in accounts[:2]),
        (accounts[2]["id"], "failed", accounts[2]["name"]),
        ("accounts[4]", "failed", "no-id"),
    ]


def test_batches_of_account_names(simulator: Any) -> None:
    source, snapshot = fetch_from(simulator, batch_size=2)
    names = [a["name"] for a in all_sim_accounts(simulator)[:3]]
    assert platform_venue(simulator).requested_names == [names[:2], names[2:]]
    parsed = PlatformConnector.parse(snapshot, source)
    assert [a.status for a in parsed.accounts] == ["received", "received", "failed"]
    whole = PlatformConnector.parse(fetch_from(simulator)[1], source)
    assert report_rows(parsed.balances) == report_rows(whole.balances)


def test_fixture_payload_served_over_http(simulator: Any) -> None:
    platform_venue(simulator).accounts_payload = ACCOUNTS.read_bytes()
    simulator.serve_payload("platform", CACHED.read_bytes())
    source, snapshot = fetch_from(simulator)
    assert snapshot.responses[1].body == CACHED.read_bytes()  # no credentials in it: verbatim
    expected_names = ["binance-main", "bybit-hedge", "okxdex-arb", "hyperliquid-ops"]
    assert platform_venue(simulator).requested_names == [expected_names]
    parsed = PlatformConnector.parse(snapshot, source)
    assert report_rows(parsed.balances) == expected_rows()
    assert [a.status for a in parsed.accounts] == ["received", "received", "failed", "failed"]


def test_wrong_token_is_an_auth_error(simulator: Any) -> None:
    with pytest.raises(VenueAuthError) as info:
        fetch_from(simulator, token="someone-elses-token")
    assert info.value.status == 401
    assert str(info.value) == "platform_test: GET /api/accounts/ answered HTTP 401: Invalid token."
    assert "someone-elses-token" not in str(info.value) + repr(info.value)
    assert platform_venue(simulator).requested_names == []


def test_503_then_success(simulator: Any) -> None:
    simulator.set_fault("platform", status=503, times=1)
    source, snapshot = fetch_from(simulator)
    assert [r.status for r in snapshot.responses] == [503, 200, 200]
    assert [a.status for a in PlatformConnector.parse(snapshot, source).accounts] == [
        "received", "received", "failed",
    ]  # fmt: skip


def test_secrets_never_reach_the_snapshot_errors_or_logs(
    simulator: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    accounts = all_sim_accounts(simulator)
    secrets = [*credential_values(accounts), TOKEN]
    venue = platform_venue(simulator)
    venue.accounts_payload = json.dumps(accounts).encode()  # archived one included
    # An error body echoing credentials is redacted as well.
    leak = json.dumps({"detail": "boom", "api_key": accounts[0]["api_key"], "echo": TOKEN})
    simulator.set_fault("platform", status=500, times=1, body=leak.encode())
    source, snapshot = fetch_from(simulator)
    assert [r.status for r in snapshot.responses] == [500, 200, 200]
    texts = [gzip.decompress(snapshot.to_bytes()).decode("utf-8")]
    texts.append(repr(PlatformConnector.parse(snapshot, source)))
    simulator.set_fault("platform", status=403, times=1, body=leak.encode())
    with pytest.raises(VenueAuthError) as info:
        fetch_from(simulator)
    texts += [str(info.value), repr(info.value), caplog.text]
    with pytest.raises(VenueAuthError) as info:
        fetch_from(simulator, token=TOKEN + "x")
    texts += [str(info.value), caplog.text]
    for text in texts:
        for secret in secrets:
            assert secret not in text
    stored = json.loads(gzip.decompress(snapshot.to_bytes()))
    listing_body = json.loads(stored["responses"][1]["body"])
    assert {a[k] for a in listing_body for k in CREDENTIAL_KEYS} == {"***"}
    assert json.loads(stored["responses"][0]["body"])["api_key"] == "***"


# --- the simulator itself -------------------------------------------------------------------

SEED_ACCOUNT_FIELDS = [
    "id", "name", "user", "username", "exchange", "margin_mode", "created_at",
    "credential_options", "vcefi_enabled", "archived", "wallet_type", "wallet_provider",
    "vault_address", "egress_ip", "api_key", "api_secret", "password",
]  # fmt: skip
SEED_BALANCE_FIELDS = {
    "exchange_name", "account_name", "user_id", "account_id", "username", "equity", "assets",
    "equities", "transfers", "timestamp_millis", "created_at", "vcefi_enabled",
}  # fmt: skip
SEED_ASSET_FIELDS = {
    "symbol", "amount", "margin_balance", "unrealized_profit", "notional", "wallet_type",
    "asset_type", "funding_fee", "borrowed", "initial_margin", "maint_margin", "leverage",
    "margin_mode",
}  # fmt: skip


def test_simulator_shapes_follow_seed_004(simulator: Any) -> None:
    accounts = all_sim_accounts(simulator)
    assert all(list(a) == SEED_ACCOUNT_FIELDS for a in accounts)
    assert all(a["api_secret"].count("*") >= 20 and "**" in a["password"] for a in accounts)
    headers = {"Authorization": f"Token {TOKEN}"}
    url = f"{simulator.url}/api/sor/get_cached_account_balance"
    doc = requests.get(url, headers=headers, timeout=5).json(parse_float=Decimal)
    assert [b["account_name"] for b in doc["balances"]] == [a["name"] for a in accounts[:2]]
    assert [e["account_name"] for e in doc["errors"]] == [accounts[2]["name"]]
    for balance in doc["balances"]:
        assert set(balance) == SEED_BALANCE_FIELDS
        for asset in balance["assets"]:
            assert set(asset) == SEED_ASSET_FIELDS
            assert isinstance(asset["amount"], str) and Decimal(asset["amount"]).is_finite()
    only = requests.get(url, headers=headers, params={"account_names": "nobody,"}, timeout=5)
    assert only.json() == {"balances": [], "errors": []}
    legacy = requests.get(f"{simulator.url}/api/balances/", headers=headers, timeout=5).json()
    assert list(legacy) == [a["name"] for a in accounts[:3]]
    first = legacy[accounts[0]["name"]]
    assert first["exchange"] == "Binance" and isinstance(first["assets"][0]["size"], float)


def test_simulator_auth(simulator: Any) -> None:
    url = f"{simulator.url}/api/accounts/"
    missing = requests.get(url, timeout=5)
    assert missing.status_code == 401
    assert missing.json() == {"detail": "Authentication credentials were not provided."}
    wrong = requests.get(url, headers={"Authorization": "Bearer " + TOKEN}, timeout=5)
    assert (wrong.status_code, wrong.json()) == (401, {"detail": "Invalid token."})
    assert wrong.headers["WWW-Authenticate"] == "Token"


def test_simulator_is_deterministic_per_seed() -> None:
    from etl_project.simulator import Simulator, SimulatorConfig

    def listing_of(config: SimulatorConfig) -> list[dict[str, Any]]:
        accounts: list[dict[str, Any]] = platform_venue(Simulator(config)).accounts
        return accounts

    assert listing_of(SimulatorConfig(seed=3)) == listing_of(SimulatorConfig(seed=3))
    assert listing_of(SimulatorConfig(seed=3)) != listing_of(SimulatorConfig(seed=4))
    many = platform_venue(
        Simulator(SimulatorConfig(platform_accounts=7, platform_failed_accounts=2))
    )
    assert [a["archived"] for a in many.accounts] == [False] * 6 + [True]
    assert sorted(many.failed) == sorted(a["name"] for a in many.accounts[4:6])
