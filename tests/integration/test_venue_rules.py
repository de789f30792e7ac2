"""Spec §3 "Every venue", end to end: simulator over HTTP -> the Dagster job in-process
(`runner.run_report`) -> local lake + DuckDB. A venue repeating an account, or sending one
bad value, must complete the run: the duplicates (every copy) or the bad row in quarantine —
warehouse table and quarantine file — each account counted once in completeness, and every
other row published.
"""

from __future__ import annotations

import copy
import json
import uuid
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from assets.runner import RunSummary, run_report
from etl_project.config import load_config
from etl_project.http import RawResponse
from etl_project.raw import RawSnapshot
from etl_project.report.columns import COLUMNS, REPORT_COLUMNS
from etl_project.simulator import DEFAULT_KRAKEN_API_KEY, DEFAULT_KRAKEN_API_SECRET, Simulator
from etl_project.simulator import saxo as sim_saxo
from etl_project.simulator.data import dumps
from etl_project.simulator.platform import platform_venue
from etl_project.sinks.files import quarantine_key
from etl_project.sinks.object_store import open_store
from etl_project.venues.platform.connector import PlatformConnector
from tests.integration.helpers import FIXTURES, expected_seed003_rows, write_config
from tests.report_text import fmt_amount, report_rows

TODAY = datetime.now(UTC).date()
NS = uuid.uuid5(uuid.NAMESPACE_URL, "urn:settlement-balance-report")
SEED_UID = "7f5c528e-2285-45f0-95f5-83d53d4bfcd2"
OTHER_UID = "11111111-2222-4333-8444-555555555555"
DUPLICATE = "duplicate (accountUUID, Ccy): listed 2 times by the venue"
SQL = {c.name: c.sql for c in COLUMNS}


def u5(name: str) -> str:
    return str(uuid.uuid5(NS, name))


# --- set-up ------------------------------------------------------------------------------------


@pytest.fixture()
def kraken_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TEST_KRAKEN_KEY", DEFAULT_KRAKEN_API_KEY)
    monkeypatch.setenv("TEST_KRAKEN_SECRET", DEFAULT_KRAKEN_API_SECRET)


def kraken_config(sim: Simulator, tmp: Path) -> Path:
    return write_config(tmp, storage=str(tmp / "lake"), warehouse=f"duckdb:///{tmp / 'wh.duckdb'}",
                        kraken_url=sim.kraken_base_url)  # fmt: skip


def one_source_config(tmp: Path, source: str) -> Path:
    """A config with one (non-Kraken) source block, local lake and DuckDB in `tmp`."""
    path = tmp / "config.yaml"
    path.write_text(
        f"storage: {tmp / 'lake'}\n"
        f"warehouse: duckdb:///{tmp / 'wh.duckdb'}\n"
        "sources:\n" + source + "report:\n  venue_retries: 0\n  venue_retry_delay_seconds: 0\n",
        encoding="utf-8",
    )
    return path


def seed003() -> dict[str, Any]:
    """Seed 003's payload with exact decimals (written back exactly by `dumps`)."""
    doc: dict[str, Any] = json.loads(
        (FIXTURES / "kraken_futures_seed003.json").read_bytes(),
        parse_float=Decimal,
        parse_int=Decimal,
    )
    return doc


def run(config: Path) -> RunSummary:
    summary = run_report(str(config), TODAY)
    assert summary.success, summary.failures
    assert summary.failures == []
    return summary


# --- reading the outputs -----------------------------------------------------------------------


def warehouse(config: Path, sql: str) -> list[dict[str, Any]]:
    engine = sa.create_engine(load_config(config).warehouse)
    try:
        with engine.connect() as conn:
            return [dict(r) for r in conn.execute(sa.text(sql), {"d": TODAY}).mappings().all()]
    finally:
        engine.dispose()


def _text(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, Decimal):
        return fmt_amount(value)
    return str(value)


def published_rows(config: Path) -> list[dict[str, str]]:
    """The warehouse report of TODAY as report CSV text, sorted like the report."""
    rows = warehouse(config, "select * from settlement_balance_report where report_date = :d "
                             "order by user_uuid, account_uuid, ccy")  # fmt: skip
    return [{name: _text(row[SQL[name]]) for name in REPORT_COLUMNS} for row in rows]


def quarantined(config: Path) -> list[dict[str, Any]]:
    """TODAY's warehouse quarantine as (source, check, reason, record) dicts."""
    rows = warehouse(config, "select source, check_name, reason, record from "
                             "settlement_balance_quarantine where report_date = :d")  # fmt: skip
    return [{"source": r["source"], "check": r["check_name"], "reason": r["reason"],
             "record": json.loads(r["record"])} for r in rows]  # fmt: skip


def quarantine_file(config: Path) -> list[dict[str, Any]]:
    store = open_store(load_config(config).storage)
    entries: list[dict[str, Any]] = json.loads(store.get(quarantine_key(TODAY)))
    return [{k: e[k] for k in ("source", "check", "reason", "record")} for e in entries]


def completeness(config: Path) -> list[tuple[str, str, str | None, bool, bool, str | None]]:
    rows = warehouse(config, "select * from settlement_source_completeness "
                             "where report_date = :d order by source, account_id")  # fmt: skip
    return [(r["source"], r["account_id"], r["account_name"], r["received"], r["failed"],
             r["reason"]) for r in rows]  # fmt: skip


def _key(entry: dict[str, Any]) -> tuple[str, str, str, str]:
    record = entry["record"]
    return entry["source"], entry["check"], str(record.get("accountUUID")), str(record.get("Ccy"))


def assert_same_quarantine(config: Path, expected: list[dict[str, Any]]) -> None:
    """The warehouse quarantine and the quarantine file hold exactly `expected` (any order)."""
    for found in (quarantined(config), quarantine_file(config)):
        simple = sorted((e["source"], e["check"], e["reason"]) for e in found)
        assert simple == sorted((e["source"], e["check"], e["reason"]) for e in expected)
        assert sorted(map(_key, found)) == sorted(map(_key, expected))


# --- Kraken Futures ----------------------------------------------------------------------------


def seed_rows_for(uid: str, user: str) -> list[dict[str, str]]:
    """Seed 003's expected report rows, as they are for a sub-account with another uid and
    `name`."""
    doc = seed003()
    wallets = ["holding", "flex"] + [
        f"futures:{f['name']}" for f in doc["subaccounts"][0]["futuresAccounts"]
    ]
    uuids = {u5(f"kraken_futures:{SEED_UID}:{w}"): u5(f"kraken_futures:{uid}:{w}") for w in wallets}
    rows = [{**r, "userUUID": uid, "accountUUID": uuids[r["accountUUID"]], "User": user}
            for r in expected_seed003_rows()]  # fmt: skip
    return sorted(rows, key=lambda r: (r["userUUID"], r["accountUUID"], r["Ccy"]))


def test_kraken_subaccount_listed_twice(simulator: Simulator, tmp_path: Path,
                                        kraken_env: None) -> None:  # fmt: skip
    doc = seed003()
    seed = doc["subaccounts"][0]
    other = {**copy.deepcopy(seed), "accountUid": OTHER_UID, "name": "Desk B"}
    doc["subaccounts"] = [seed, other, copy.deepcopy(seed)]  # the seed account listed twice
    simulator.serve_payload("kraken_futures", dumps(doc).encode())
    config = kraken_config(simulator, tmp_path)

    run(config)

    # The other sub-account is published, exactly as the spec maps it.
    assert published_rows(config) == seed_rows_for(OTHER_UID, "Desk B")
    # Every row of the repeated sub-account is quarantined, both copies (21 rows each, zero
    # rows included: the balances stage sees them before the report drops all-zero rows).
    entries = quarantined(config)
    assert len(entries) == 2 * 21
    assert {(e["source"], e["check"], e["reason"]) for e in entries} == {
        ("kraken_main", "unique_account_ccy", DUPLICATE)
    }
    assert {e["record"]["venue_account_id"] for e in entries} == {SEED_UID}
    xrp = [e["record"] for e in entries
           if e["record"]["wallet"] == "holding" and e["record"]["Ccy"] == "XRP"]  # fmt: skip
    assert [r["Total"] for r in xrp] == ["13662.85078", "13662.85078"]
    assert_same_quarantine(config, entries)
    # Counted once each in completeness (the warehouse primary key did not crash the run).
    assert completeness(config) == [
        ("kraken_main", OTHER_UID, "Desk B", True, False, None),
        ("kraken_main", SEED_UID, "fullname redacted", True, False, None),
    ]


def test_kraken_holding_with_a_bad_amount(simulator: Simulator, tmp_path: Path,
                                          kraken_env: None) -> None:  # fmt: skip
    doc = seed003()
    xrp = doc["subaccounts"][0]["holdingAccounts"][2]
    assert xrp["currency"] == "xrp"
    xrp["amount"] = "abc"
    simulator.serve_payload("kraken_futures", dumps(doc).encode())
    config = kraken_config(simulator, tmp_path)

    run(config)

    holding = u5(f"kraken_futures:{SEED_UID}:holding")
    assert published_rows(config) == [
        r for r in expected_seed003_rows() if (r["accountUUID"], r["Ccy"]) != (holding, "XRP")
    ]
    reason = 'subaccounts[0].holdingAccounts[2].amount must be a number, got string "abc"'
    record = {"userUUID": SEED_UID, "accountUUID": holding, "Ccy": "XRP",
              "venue_account_id": SEED_UID, "wallet": "holding", "currency": "xrp",
              "amount": "abc"}  # fmt: skip
    expected = [{"source": "kraken_main", "check": "decimal", "reason": reason, "record": record}]
    assert quarantined(config) == expected
    assert quarantine_file(config) == expected
    assert completeness(config) == [
        ("kraken_main", SEED_UID, "fullname redacted", True, False, None)
    ]


# --- Saxo --------------------------------------------------------------------------------------


def test_saxo_account_on_two_pages(simulator: Simulator, tmp_path: Path,
                                   monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    monkeypatch.setenv("TEST_SAXO_TOKEN", simulator.config.saxo_access_token)
    venue = sim_saxo.venue(simulator)
    a, b, c = venue.accounts  # seed 7: three accounts; c (index 2) is the unreliable one
    venue.set_accounts([a, b, b, c])  # pages of two: [a, b], [b, c]
    config = one_source_config(tmp_path, (
        "  - name: saxo_main\n    kind: saxo\n"
        f"    base_url: {simulator.saxo_base_url}\n"
        "    access_token: ${TEST_SAXO_TOKEN}\n    page_size: 2\n"
    ))  # fmt: skip

    run(config)

    # Two listing pages and one balances call per account: b was fetched once.
    assert simulator.request_count("saxo") == 2 + 3
    keys = [x["AccountKey"] for x in (a, b, c)]
    assert sorted(r["accountUUID"] for r in published_rows(config)) == sorted(
        u5(f"saxo:account:{k}") for k in keys[:2]
    )
    entries = quarantined(config)
    assert [(e["source"], e["check"], e["reason"], e["record"]["venue_account_id"])
            for e in entries] == [
        ("saxo_main", "calculation_reliability",
         "CalculationReliability is 'ApproximatedPrice', not 'Ok'", keys[2]),
    ]  # fmt: skip
    assert_same_quarantine(config, entries)
    assert completeness(config) == sorted(
        ("saxo_main", x["AccountKey"], x["DisplayName"], True, False, None) for x in (a, b, c)
    )


# --- the multi-exchange platform ---------------------------------------------------------------


def test_platform_account_listed_and_returned_twice(
    simulator: Simulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TEST_PLATFORM_TOKEN", simulator.config.platform_api_token)
    venue = platform_venue(simulator)
    active = [x for x in venue.accounts if not x["archived"]]
    first, second, failing = active  # seed 7: Binance, Bybit, and one answered in errors[]
    assert failing["name"] in venue.failed
    listing = [*active, copy.deepcopy(second)]  # the listing names `second` twice
    venue.accounts_payload = dumps(listing).encode()
    twice = [
        venue.balances[first["name"]],
        venue.balances[second["name"]],
        venue.balances[second["name"]],
    ]  # and the cached answer returns it twice
    error = {"account_name": failing["name"], "error": "Simulated outage"}
    simulator.serve_payload("platform", dumps({"balances": twice, "errors": [error]}).encode())
    config = one_source_config(tmp_path, (
        "  - name: desk_platform\n    kind: platform\n"
        f"    base_url: {simulator.platform_base_url}\n"
        "    api_token: ${TEST_PLATFORM_TOKEN}\n"
    ))  # fmt: skip

    run(config)

    # Each account requested once.
    assert venue.requested_names == [[x["name"] for x in active]]
    # The first account is published as its mapping gives it; nothing of the repeated one.
    alone = PlatformConnector.parse(_snapshot([first], [venue.balances[first["name"]]]),
                                    load_config(config).source("desk_platform"))  # fmt: skip
    assert published_rows(config) == report_rows(alone.balances)
    assert {r["accountUUID"] for r in published_rows(config)} == {
        u5(f"platform:{first['id']}:{w}") for w in ("futures", "spot")
    }
    # Both copies of each of its token rows, and both copies of its positions, in quarantine.
    entries = quarantined(config)
    tokens = [a for a in venue.balances[second["name"]]["assets"] if a["asset_type"] == "token"]
    positions = [a for a in venue.balances[second["name"]]["assets"] if a not in tokens]
    assert len(tokens) == 2 and len(positions) == 2
    assert sorted((e["check"], e["reason"], e["record"].get("Ccy") or e["record"]["symbol"])
                  for e in entries) == sorted(
        [("unique_account_ccy", DUPLICATE, t["symbol"]) for t in tokens] * 2
        + [("repeated_account", "account listed 2 times by the platform; its positions are "
            "not kept", p["symbol"]) for p in positions] * 2
    )  # fmt: skip
    assert {e["record"].get("venue_account_id") or e["record"]["account_id"]
            for e in entries} == {second["id"]}  # fmt: skip
    assert_same_quarantine(config, entries)
    # Positions of the first account only.
    kept = warehouse(config, "select account_id from venue_positions where report_date = :d")
    assert {r["account_id"] for r in kept} == {first["id"]}
    # Each listed account counted once.
    assert completeness(config) == sorted([
        ("desk_platform", first["id"], first["name"], True, False, None),
        ("desk_platform", second["id"], second["name"], True, False, None),
        ("desk_platform", failing["id"], failing["name"], False, True, "Simulated outage"),
    ])  # fmt: skip


def _snapshot(listing: list[dict[str, Any]], balances: list[dict[str, Any]]) -> RawSnapshot:
    """A stored platform snapshot of just these accounts (to map the expected rows)."""
    host = "https://platform.example.com"
    responses = [
        RawResponse("GET", f"{host}/api/accounts/", 200, {}, dumps(listing).encode(), "t"),
        RawResponse("GET", f"{host}/api/sor/get_cached_account_balance", 200, {},
                    dumps({"balances": balances, "errors": []}).encode(), "t"),
    ]  # fmt: skip
    return RawSnapshot("desk_platform", "platform", date.today(), datetime.now(UTC), responses)
