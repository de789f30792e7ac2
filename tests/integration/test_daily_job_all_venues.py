"""All four venue kinds in one Dagster run against the simulator; one venue down.

A failing venue does not stop the others: their rows are published, the report is marked
partial, and the gap is named in the completeness table, the status sidecar and Dagster.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import dagster as dg
import sqlalchemy as sa

from assets.definitions import build_definitions
from etl_project.report.serialise import read_csv_rows
from etl_project.simulator import SimulatorConfig
from etl_project.sinks.files import report_keys
from etl_project.sinks.object_store import open_store
from etl_project.stages.publish import status_key
from tests.integration.helpers import FIXTURES, expected_seed003_rows

TODAY = datetime.now(UTC).date()


def run(config: Path) -> dg.ExecuteInProcessResult:
    defs = build_definitions(config)
    return dg.materialize(
        [*defs.assets, *defs.asset_checks],  # type: ignore[list-item]
        resources=defs.resources,
        partition_key=TODAY.isoformat(),
        instance=dg.DagsterInstance.ephemeral(),
    )


def warehouse_rows(tmp_path: Path, sql: str) -> list[dict]:
    engine = sa.create_engine(f"duckdb:///{tmp_path / 'wh.duckdb'}")
    with engine.connect() as conn:
        rows = [dict(r) for r in conn.execute(sa.text(sql)).mappings()]
    engine.dispose()
    return rows


def test_four_venues_one_down(simulator, all_venues_config: Path, tmp_path: Path) -> None:
    simulator.serve_payload(
        "kraken_futures", (FIXTURES / "kraken_futures_seed003.json").read_bytes()
    )
    simulator.set_fault("saxo", status=503, times=1000)  # Saxo is down all day

    result = run(all_venues_config)
    assert result.success  # partial by default: the run publishes what arrived

    store = open_store(str(tmp_path / "lake"))
    rows = read_csv_rows(store.get(report_keys(TODAY)["csv"]))
    by_source = {
        source: [r for r in rows if r["accountUUID"] in ids]
        for source, ids in _accounts_by_source(tmp_path).items()
    }
    # Kraken's rows are exactly spec §3's rows for the seed payload (the demo source's
    # configured account_group is "Demo").
    expected = [{**r, "Account Group": "Demo"} for r in expected_seed003_rows()]
    assert by_source["kraken_demo"] == expected
    assert by_source["platform_demo"] and by_source["settlement_platform_demo"]
    assert "saxo_demo" not in by_source  # no rows, and no zero rows, for the failed venue

    completeness = warehouse_rows(
        tmp_path,
        "select source, account_id, expected, received, failed, reason "
        "from settlement_source_completeness order by source, account_id",
    )
    saxo = [r for r in completeness if r["source"] == "saxo_demo"]
    assert len(saxo) == 1 and saxo[0]["account_id"] == "*" and saxo[0]["failed"]
    assert "503" in saxo[0]["reason"]
    platform_failed = [r for r in completeness if r["source"] == "platform_demo" and r["failed"]]
    assert len(platform_failed) == SimulatorConfig().platform_failed_accounts
    assert all(r["reason"] for r in platform_failed)
    assert all(
        r["received"]
        for r in completeness
        if r["source"] in ("kraken_demo", "settlement_platform_demo")
    )

    status = json.loads(store.get(status_key(TODAY)))
    assert status["completeness"] == "partial"
    assert {g["source"] for g in status["gaps"]} == {"saxo_demo", "platform_demo"}
    (report_status,) = warehouse_rows(tmp_path, "select * from settlement_report_status")
    assert report_status["completeness"] == "partial"
    assert report_status["report_rows"] == len(rows)

    # The failure is visible in Dagster: the source's check failed with the venue's reason.
    checks = [
        e
        for e in result.get_asset_check_evaluations()
        if e.asset_key == dg.AssetKey("saxo_demo__balances")
    ]
    assert len(checks) == 1 and not checks[0].passed
    assert "503" in str(checks[0].metadata["reason"].value)

    positions = warehouse_rows(tmp_path, "select count(*) as n from venue_positions")
    assert positions[0]["n"] > 0


def _accounts_by_source(tmp_path: Path) -> dict[str, set[str]]:
    rows = warehouse_rows(tmp_path, "select source, account_uuid from settlement_balance_report")
    out: dict[str, set[str]] = {}
    for r in rows:
        out.setdefault(r["source"], set()).add(r["account_uuid"])
    return out
