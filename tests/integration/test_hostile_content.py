"""Hostile content in the settlement platform's report, end to end (docs/hostile-input.md).

Real components only: the simulator over HTTP serves the file, `run_report` runs the Dagster
job in-process, the lake is a local folder and the warehouse a DuckDB file in `tmp_path`.
- A formula in a text cell is published with a leading `'` in the CSV and exactly as sent in
  the JSON, the Parquet and the warehouse.
- One broken line is quarantined with its line number; the other rows are published.
"""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from assets.runner import run_report
from etl_project.report.serialise import read_csv_rows, read_json_rows, read_parquet
from etl_project.simulator import settlement_report as sim_report
from etl_project.sinks.files import quarantine_key, report_keys
from etl_project.sinks.object_store import open_store
from tests.integration.helpers import FIXTURES

TODAY = datetime.now(UTC).date()
PAST = TODAY - timedelta(days=20)  # a dated file is history: readable long after its window
HYPERLINK = '=HYPERLINK("http://x","y")'
CALC = "+cmd|' /C calc'!A0"
A1 = "0d0be8d3-f8f7-48c6-9c79-4b9493c821a1"
A2 = "a1b2c3d4-e5f6-4a7b-8c9d-0e1f2a3b4c5d"
NEG = "-0.0009056832839642471"


@pytest.fixture()
def config(simulator: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """One settlement_report source reading the simulator's dated files."""
    monkeypatch.setenv("TEST_SETTLEMENT_TOKEN", sim_report.DEFAULT_API_TOKEN)
    path = tmp_path / "config.yaml"
    path.write_text(
        f"storage: {tmp_path / 'lake'}\n"
        f"warehouse: duckdb:///{tmp_path / 'wh.duckdb'}\n"
        "sources:\n"
        "  - name: settlement_platform\n"
        "    kind: settlement_report\n"
        f"    location: {sim_report.report_url(simulator, 'csv')}\n"
        "    api_token: ${TEST_SETTLEMENT_TOKEN}\n"
        "report:\n"
        f"  start_date: '{PAST - timedelta(days=5)}'\n"
        "  venue_retries: 0\n"
        "  venue_retry_delay_seconds: 0\n",
        encoding="utf-8",
    )
    return path


def fixture_lines() -> list[list[str]]:
    text = (FIXTURES / "settlement_report_seed000.csv").read_text(encoding="utf-8")
    return list(csv.reader(io.StringIO(text)))


def csv_file(lines: list[list[str]]) -> bytes:
    out = io.StringIO()
    csv.writer(out, lineterminator="\r\n").writerows(lines)
    return out.getvalue().encode("utf-8")


def warehouse(tmp_path: Path, sql: str, day: date) -> list[dict[str, Any]]:
    engine = sa.create_engine(f"duckdb:///{tmp_path / 'wh.duckdb'}")
    with engine.connect() as conn:
        rows = [dict(r) for r in conn.execute(sa.text(sql), {"d": day}).mappings()]
    engine.dispose()
    return rows


def test_formula_cells_are_defused_in_the_csv_only(
    simulator: Any, config: Path, tmp_path: Path
) -> None:
    lines = fixture_lines()
    header = lines[0]
    lines[1][header.index("User")] = HYPERLINK
    lines[4][header.index("Account Group")] = CALC
    sim_report.serve_report(simulator, PAST, csv_file(lines))  # the file of a past date

    summary = run_report(str(config), PAST)
    assert summary.success, summary.failures
    assert summary.rows == 3  # the file's all-zero row is dropped, as for every source

    store = open_store(str(tmp_path / "lake"))
    keys = report_keys(PAST)
    # sorted by userUUID, accountUUID, Ccy; the file's `XBT` is `BTC` (spec §3)
    csv_rows = [
        (r["accountUUID"], r["Ccy"], r["User"], r["Account Group"], r["Total"])
        for r in read_csv_rows(store.get(keys["csv"]))
    ]
    assert csv_rows == [
        (A1, "BTC", "'" + HYPERLINK, "Default", "5.77"),
        (A2, "BTC", "Treasury Desk, Ops", "'" + CALC, "1.5"),
        (A2, "ETH", "Treasury Desk, Ops", "Default", NEG),  # a negative amount is not text
    ]
    sent = [
        (A1, "BTC", HYPERLINK, "Default", Decimal("5.77")),
        (A2, "BTC", "Treasury Desk, Ops", CALC, Decimal("1.5")),
        (A2, "ETH", "Treasury Desk, Ops", "Default", Decimal(NEG)),
    ]
    json_rows = read_json_rows(store.get(keys["json"]))
    assert [
        (r["accountUUID"], r["Ccy"], r["User"], r["Account Group"], r["Total"]) for r in json_rows
    ] == sent
    parquet = read_parquet(store.get(keys["parquet"]))
    assert list(
        zip(
            *(parquet.column(c).to_pylist() for c in ("accountUUID", "Ccy", "User")),
            parquet.column("Account Group").to_pylist(),
            [v.normalize() for v in parquet.column("Total").to_pylist()],
            strict=True,
        )
    ) == [(*row[:4], row[4].normalize()) for row in sent]
    stored = warehouse(
        tmp_path,
        "select account_uuid, ccy, user_name, account_group, total"
        " from settlement_balance_report where report_date = :d order by account_uuid, ccy",
        PAST,
    )
    assert [
        (r["account_uuid"], r["ccy"], r["user_name"], r["account_group"], r["total"].normalize())
        for r in stored
    ] == [(*row[:4], row[4].normalize()) for row in sent]


def test_one_broken_line_is_quarantined_and_the_rest_published(
    simulator: Any, config: Path, tmp_path: Path
) -> None:
    lines = fixture_lines()
    broken = list(lines[1])
    broken[1] = "11111111-2222-4333-8444-555555555555"
    body = csv_file([*lines[:2], broken, *lines[2:]])
    body = body.replace(b"555555555555,29ffc2ce", b'555555555555,"29ffc2ce', 1)  # line 3
    simulator.serve_payload("settlement_report", body)

    summary = run_report(str(config), TODAY)
    assert summary.success, summary.failures

    store = open_store(str(tmp_path / "lake"))
    rows = read_csv_rows(store.get(report_keys(TODAY)["csv"]))
    assert [(r["accountUUID"], r["Ccy"], r["Total"]) for r in rows] == [
        (A1, "BTC", "5.77"),
        (A2, "BTC", "1.5"),
        (A2, "ETH", NEG),
    ]
    quarantine = json.loads(store.get(quarantine_key(TODAY)))
    reason = "line 3: unclosed quote (its quoted field does not end within the line)"
    assert [(q["source"], q["check"], q["reason"], q["record"]["line"]) for q in quarantine] == [
        ("settlement_platform", "csv_quote", reason, 3)
    ]
    assert quarantine[0]["record"]["text"].startswith(
        '29ffc2ce-9936-4f9b-9b56-c1e1d22906e1,11111111-2222-4333-8444-555555555555,"29ffc2ce'
    )
    stored = warehouse(
        tmp_path,
        "select source, check_name, reason from settlement_balance_quarantine"
        " where report_date = :d",
        TODAY,
    )
    assert stored == [
        {"source": "settlement_platform", "check_name": "csv_quote", "reason": reason}
    ]
