"""Warehouse sink on a real DuckDB file: exact round trips, idempotent per-date replaces,
rollback on failure, comments on every column, quarantine, concurrency."""

from __future__ import annotations

import subprocess
import sys
import threading
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path

import duckdb
import pyarrow as pa
import pytest
import sqlalchemy as sa

from etl_project.report.columns import COLUMNS
from etl_project.sinks.warehouse import Warehouse
from etl_project.sinks.warehouse_tables import (
    METADATA,
    QUARANTINE_TABLE,
    REPORT_TABLE,
)
from etl_project.venues.base import Rejected
from tests.warehouse_sample import (
    D2,
    TRICKY,
    D,
    assert_failed_load_rolls_back,
    assert_report,
    expected,
    sample_report,
)


@pytest.fixture()
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "wh" / "warehouse.duckdb"


@pytest.fixture()
def wh(db_path: Path) -> Warehouse:
    warehouse = Warehouse(f"duckdb:///{db_path}")
    warehouse.ensure_schema()
    yield warehouse
    warehouse.dispose()


def count(path: Path, table: str, report_date: date | None = None) -> int:
    with duckdb.connect(str(path)) as con:
        sql = f"select count(*) from {table}"
        if report_date is not None:
            sql += f" where report_date = DATE '{report_date}'"
        return int(con.execute(sql).fetchone()[0])


def test_round_trip_is_exact_in_every_column(wh: Warehouse) -> None:
    report = sample_report(D)
    assert wh.replace_report(report, D) == 4
    assert_report(wh, D, report)
    email = {r["account_uuid"]: r["email"] for r in wh.read_table(REPORT_TABLE.name, D)}
    assert sorted(email.values(), key=str) == sorted(
        [None, "", "a@b.example", "d@e.example"], key=str
    )


def test_read_table_gives_exact_decimals_and_utc(wh: Warehouse) -> None:
    report = sample_report(D, n=len(TRICKY))
    wh.replace_report(report, D)
    rows = wh.read_table(REPORT_TABLE.name, D)
    sent = {r["accountUUID"]: r for r in report.to_pylist()}
    for row in rows:
        for c in COLUMNS:
            assert row[c.sql] == sent[row["account_uuid"]][c.name], c.sql
    assert {r["total"] for r in rows} == set(TRICKY)  # Decimal equality is exact
    assert "-0.0009056832839642471" in {format(r["total"].normalize(), "f") for r in rows}
    row = rows[0]
    assert row["snapshot_at"] == datetime(2024, 3, 31, 23, 59, 59, 123456, tzinfo=UTC)
    assert row["snapshot_at"].utcoffset().total_seconds() == 0
    with pytest.raises(ValueError, match="unknown warehouse table"):
        wh.read_table("nope")


def test_replace_again_keeps_only_new_rows_and_other_dates(wh: Warehouse, db_path: Path) -> None:
    wh.replace_report(sample_report(D, run="run-a"), D)
    other = sample_report(D2, n=2, run="run-other")
    wh.replace_report(other, D2)
    second = sample_report(D, n=3, run="run-b")
    assert wh.replace_report(second, D) == 3
    assert wh.replace_report(second, D) == 3  # a rerun never duplicates
    assert_report(wh, D, second)
    assert_report(wh, D2, other)
    assert count(db_path, REPORT_TABLE.name) == 5


@pytest.mark.parametrize("breakage", ["duplicate key", "null in not-null column"])
def test_failed_load_rolls_back_and_keeps_previous_rows(wh: Warehouse, breakage: str) -> None:
    assert_failed_load_rolls_back(wh, breakage)


def test_rows_that_do_not_fit_are_refused_before_touching_the_table(wh: Warehouse) -> None:
    before = sample_report(D)
    wh.replace_report(before, D)
    with pytest.raises(ValueError, match="report_date"):
        wh.replace_report(sample_report(D2), D)
    with pytest.raises(ValueError, match="not in settlement_balance_report"):
        wh.replace_report(sample_report(D).append_column("extra", pa.array(["x"] * 4)), D)
    too_fine = pa.table(
        {"total": pa.array([Decimal("1.0000000000000000000001")], pa.decimal128(38, 22))}
    )
    with pytest.raises(pa.ArrowInvalid):
        wh.replace(REPORT_TABLE, too_fine, D)
    assert_report(wh, D, before)


def test_empty_rows_clear_the_date(wh: Warehouse, db_path: Path) -> None:
    wh.replace_report(sample_report(D), D)
    assert wh.replace_report(sample_report(D, n=0), D) == 0
    assert count(db_path, REPORT_TABLE.name, D) == 0


def test_comments_on_every_column_and_table(wh: Warehouse, db_path: Path) -> None:
    def comments() -> dict[tuple[str, str], str | None]:
        with duckdb.connect(str(db_path)) as con:
            cols = con.execute(
                "select table_name, column_name, comment from duckdb_columns() "
                "where schema_name = 'main'"
            ).fetchall()
            tabs = con.execute(
                "select table_name, '', comment from duckdb_tables() where schema_name = 'main'"
            ).fetchall()
        return {(t, c): comment for t, c, comment in cols + tabs}

    have = comments()
    for table in (REPORT_TABLE, QUARANTINE_TABLE):
        assert have[(table.name, "")]
        for column in table.columns:
            assert have[(table.name, column.name)], (table.name, column.name)
    assert len([k for k in have if k[0] == REPORT_TABLE.name and k[1]]) == 33 + 4 + 3
    assert have[(REPORT_TABLE.name, "order_balance")].startswith("Order: Retired")

    with duckdb.connect(str(db_path)) as con:  # a comment lost (e.g. an old table) comes back
        con.execute("comment on column settlement_balance_report.total is null")
        con.execute("comment on table settlement_balance_quarantine is ''")
    wh.ensure_schema()
    assert comments() == have


def test_ensure_schema_is_repeatable_and_safe_concurrently(db_path: Path) -> None:
    errors: list[BaseException] = []
    barrier = threading.Barrier(4)

    def run() -> None:
        try:
            warehouse = Warehouse(f"duckdb:///{db_path}")
            barrier.wait()
            warehouse.ensure_schema()
            warehouse.ensure_schema()
            warehouse.dispose()
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    with duckdb.connect(str(db_path)) as con:
        names = {r[0] for r in con.execute("select table_name from duckdb_tables()").fetchall()}
    assert set(METADATA.tables) <= names


def test_concurrent_replaces_of_one_date_end_with_one_runs_rows(wh: Warehouse) -> None:
    runs = {f"run-{k}": sample_report(D, n=4, run=f"run-{k}") for k in "abcd"}
    barrier = threading.Barrier(len(runs))
    errors: list[BaseException] = []

    def run(table: pa.Table) -> None:
        try:
            barrier.wait()
            wh.replace_report(table, D)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(t,)) for t in runs.values()]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    got = wh.read_report(D)
    (winner,) = set(got.column("run_id").to_pylist())
    assert got.equals(expected(runs[winner]))


def test_quarantine_replace(wh: Warehouse) -> None:
    first = [
        Rejected(
            "saxo_main",
            "calculation_reliability",
            "CalculationReliability=Approximate",
            {"AccountKey": "k1", "TotalValue": Decimal("0.00000000346")},
        ),
        Rejected("kraken_main", "ccy_format", "bad currency", {"ccy": "x y", "n": 1}),
    ]
    assert wh.replace_quarantine(first, D, "run-1") == 2
    wh.replace_quarantine(first[:1], D2, "run-0")
    assert wh.replace_quarantine(first[1:], D, "run-2") == 1
    (row,) = wh.read_table(QUARANTINE_TABLE.name, D)
    assert row["source"] == "kraken_main" and row["run_id"] == "run-2"
    assert row["check_name"] == "ccy_format" and row["reason"] == "bad currency"
    assert row["record"] == '{"ccy": "x y", "n": 1}'
    assert row["quarantined_at"].tzinfo is not None
    (old,) = wh.read_table(QUARANTINE_TABLE.name, D2)
    assert old["record"] == '{"AccountKey": "k1", "TotalValue": "0.00000000346"}'
    assert wh.replace_quarantine([], D, "run-3") == 0
    assert wh.read_table(QUARANTINE_TABLE.name, D) == []


def test_scope_replaces_only_that_source(wh: Warehouse) -> None:
    def rejects(source: str, n: int) -> pa.Table:
        return pa.table(
            {
                "run_id": ["r"] * n,
                "check_name": ["c"] * n,
                "reason": [source] * n,
                "record": ["{}"] * n,
                "quarantined_at": pa.array([datetime(2024, 1, 1, tzinfo=UTC)] * n),
            }
        )

    wh.replace(QUARANTINE_TABLE, rejects("a", 2), D, {"source": "a"})
    wh.replace(QUARANTINE_TABLE, rejects("b", 3), D, {"source": "b"})
    wh.replace(QUARANTINE_TABLE, rejects("a", 1), D, {"source": "a"})
    rows = wh.read_table(QUARANTINE_TABLE.name, D)
    assert sorted(r["source"] for r in rows) == ["a", "b", "b", "b"]
    assert all(r["reason"] == r["source"] for r in rows)
    with pytest.raises(ValueError, match="source"):
        wh.replace(
            QUARANTINE_TABLE,
            rejects("a", 1).append_column("source", pa.array(["b"])),
            D,
            {"source": "a"},
        )


def test_executemany_fallback_is_exact_too(db_path: Path) -> None:
    wh = Warehouse(f"duckdb:///{db_path}", bulk=False)
    wh.ensure_schema()
    report = sample_report(D)
    assert wh.replace_report(report, D) == 4
    assert_report(wh, D, report)
    wh.dispose()


def test_relative_url_creates_the_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    wh = Warehouse("duckdb:///./data/deeper/warehouse.duckdb")
    wh.ensure_schema()
    wh.replace_report(sample_report(D, n=1), D)
    wh.dispose()
    assert (tmp_path / "data" / "deeper" / "warehouse.duckdb").is_file()


def test_waits_for_another_process_holding_the_file(wh: Warehouse, db_path: Path) -> None:
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import duckdb, sys, time; c = duckdb.connect(sys.argv[1]); print('held', flush=True);"
            " time.sleep(1.0); c.close()",
            str(db_path),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        impatient = Warehouse(f"duckdb:///{db_path}", lock_timeout=0.0)
        with pytest.raises(sa.exc.DBAPIError, match="lock"):
            impatient.replace_report(sample_report(D), D)
        assert wh.replace_report(sample_report(D), D) == 4  # waits for the holder to let go
    finally:
        holder.wait(timeout=10)
