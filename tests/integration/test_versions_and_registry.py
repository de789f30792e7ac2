"""Report versions, restatements and vanished accounts, through the real job and warehouse.

The simulator serves Kraken's seed 003 body, then an edited body for a re-run or a later date;
the warehouse and the materialisation must say exactly what changed, and an account that the
venue stops listing must be a named gap (report partial), never a silent shrink or a zero.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from assets.cli import main
from assets.report import WAREHOUSE_KEY
from etl_project.simulator import DEFAULT_KRAKEN_API_KEY, DEFAULT_KRAKEN_API_SECRET
from tests.integration.helpers import FIXTURES, materialise, write_config
from tests.integration.publish_view import read_view

TODAY = datetime.now(UTC).date()
YESTERDAY = TODAY - timedelta(days=1)
SEED = json.loads((FIXTURES / "kraken_futures_seed003.json").read_text(encoding="utf-8"))


@pytest.fixture(autouse=True)
def _env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TEST_KRAKEN_KEY", DEFAULT_KRAKEN_API_KEY)
    monkeypatch.setenv("TEST_KRAKEN_SECRET", DEFAULT_KRAKEN_API_SECRET)


def _serve(simulator: Any, body: dict[str, Any]) -> None:
    simulator.serve_payload("kraken_futures", json.dumps(body).encode("utf-8"))


def _rows(url: str, sql: str, **params: Any) -> list[dict[str, Any]]:
    engine = sa.create_engine(url, poolclass=sa.NullPool)
    try:
        with engine.connect() as conn:
            return [dict(r) for r in conn.execute(sa.text(sql), params).mappings()]
    finally:
        engine.dispose()


def _edited_seed() -> dict[str, Any]:
    body = json.loads(json.dumps(SEED))
    holdings = body["subaccounts"][0]["holdingAccounts"]
    for h in holdings:
        if h["currency"] == "xrp":
            h["amount"] = 13000.5
    body["subaccounts"][0]["holdingAccounts"] = [
        *(h for h in holdings if h["currency"] != "eth"),
        {"currency": "sol", "amount": 1.25},
    ]
    return body


def test_rerun_keeps_the_old_version_and_records_each_restated_row(
    simulator: Any, tmp_path: Path
) -> None:
    storage, warehouse = str(tmp_path / "lake"), f"duckdb:///{tmp_path / 'wh.duckdb'}"
    config = write_config(
        tmp_path, storage=storage, warehouse=warehouse, kraken_url=simulator.kraken_base_url
    )
    _serve(simulator, SEED)
    assert materialise(config, TODAY, raise_on_error=False).success
    v1 = read_view(storage, warehouse, TODAY)
    v1_run = v1.status["run_id"]  # type: ignore[index]

    _serve(simulator, _edited_seed())
    result = materialise(config, TODAY, raise_on_error=False)
    assert result.success
    v2 = read_view(storage, warehouse, TODAY)
    v2_run = v2.status["run_id"]  # type: ignore[index]
    v2.assert_one_version(v2_run)

    restated = _rows(
        warehouse,
        "select change, ccy, old_total, new_total, changed_columns, previous_run_id "
        "from settlement_report_restatements where report_date = :d and run_id = :r "
        "order by ccy",
        d=TODAY,
        r=v2_run,
    )
    assert [(r["change"], r["ccy"], r["old_total"], r["new_total"]) for r in restated] == [
        ("removed", "ETH", Decimal("3.0000485057"), None),
        ("added", "SOL", None, Decimal("1.25")),
        ("changed", "XRP", Decimal("13662.85078"), Decimal("13000.5")),
    ]
    xrp = restated[2]
    assert set(xrp["changed_columns"].split(",")) == {"total", "total_prefunding", "available"}
    assert {r["previous_run_id"] for r in restated} == {v1_run}

    # The superseded version: its rows in the history table, its files under its own prefix.
    history = _rows(
        warehouse,
        "select ccy, total from settlement_balance_report_history "
        "where report_date = :d and run_id = :r and ccy in ('ETH', 'XRP') "
        "and sub_main_type = 'Holding account' order by ccy",
        d=TODAY,
        r=v1_run,
    )
    assert history == [
        {"ccy": "ETH", "total": Decimal("3.0000485057")},
        {"ccy": "XRP", "total": Decimal("13662.85078")},
    ]
    versions = Path(storage) / "reports/settlement_balance" / f"date={TODAY}" / "versions"
    for run in (v1_run, v2_run):
        assert (versions / f"run={run}" / f"settlement_balance_{TODAY}.csv").is_file()
    assert [
        (v["run_id"], v["state"], v["changed_rows"], v["added_rows"], v["removed_rows"])
        for v in v2.versions
    ] == [(v1_run, "superseded", 0, 0, 0), (v2_run, "current", 1, 1, 1)]

    # The materialisation says it too.
    event = next(
        e for e in result.get_asset_materialization_events() if e.asset_key == WAREHOUSE_KEY
    )
    metadata = event.materialization.metadata
    assert metadata["restated_rows"].value == 3
    assert metadata["previous_run_id"].value == v1_run
    table = metadata["restatements"].value
    assert "1 added, 1 removed, 1 changed" in str(table)
    assert "| XRP | changed | 13662.85078 | 13000.5 |" in str(table)


def test_a_vanished_subaccount_is_a_named_gap_until_retired(
    simulator: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    storage, warehouse = str(tmp_path / "lake"), f"duckdb:///{tmp_path / 'wh.duckdb'}"
    config = write_config(
        tmp_path,
        storage=storage,
        warehouse=warehouse,
        kraken_url=simulator.kraken_base_url,
        extra="  live_cutoff_hours: 48\n",
    )
    named = json.loads(json.dumps(SEED))
    named["subaccounts"][0]["name"] = "desk-a"
    uid = named["subaccounts"][0]["accountUid"]
    _serve(simulator, named)
    assert main(["run", "--config", str(config), "--date", YESTERDAY.isoformat()]) == 0

    _serve(simulator, {**named, "subaccounts": []})
    capsys.readouterr()
    code = main(["run", "--config", str(config), "--date", TODAY.isoformat()])
    out = capsys.readouterr().out.splitlines()
    assert code == 0  # a gap is not a failure: the report is published, marked partial
    assert out[0] == f"{TODAY}: OK, 0 rows, partial"
    gap = f"kraken_main/desk-a ({uid}): listed on {YESTERDAY}, absent today"
    assert f"  gap: {gap}" in out
    status = read_view(storage, warehouse, TODAY).status
    assert status is not None and status["completeness"] == "partial"
    assert [g["account"] for g in status["gaps"]] == [f"desk-a ({uid})"]
    completeness = _rows(
        warehouse,
        "select account_id, account_name, received, failed, reason "
        "from settlement_source_completeness where report_date = :d",
        d=TODAY,
    )
    assert completeness == [
        {
            "account_id": uid,
            "account_name": "desk-a",
            "received": False,
            "failed": True,
            "reason": f"listed on {YESTERDAY}, absent today",
        }
    ]
    zero_rows = _rows(
        warehouse,
        "select count(*) as n from settlement_balance_report where report_date = :d",
        d=TODAY,
    )
    assert zero_rows == [{"n": 0}]  # never shown as a zero balance

    # The operator retires the account; the next run of the date is complete.
    assert (
        main(
            [
                "accounts",
                "retire",
                "--config",
                str(config),
                "--source",
                "kraken_main",
                "--account",
                uid,
                "--reason",
                "closed by the desk",
                "--on",
                TODAY.isoformat(),
            ]
        )
        == 0
    )
    capsys.readouterr()
    assert main(["run", "--config", str(config), "--date", TODAY.isoformat()]) == 0
    assert capsys.readouterr().out.splitlines()[0] == f"{TODAY}: OK, 0 rows, complete"
    assert read_view(storage, warehouse, TODAY).status["completeness"] == "complete"  # type: ignore[index]
