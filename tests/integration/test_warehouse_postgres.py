"""Warehouse sink against a real PostgreSQL (COPY path, advisory locks, col_description),
with the core contract parametrized over DuckDB and PostgreSQL."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest
import sqlalchemy as sa

from etl_project.sinks.warehouse import Warehouse
from etl_project.sinks.warehouse_tables import (
    METADATA,
    QUARANTINE_TABLE,
    REPORT_TABLE,
    arrow_schema,
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

BACKENDS = ["duckdb", pytest.param("postgres", marks=pytest.mark.postgres)]


@pytest.fixture(params=BACKENDS)
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "postgres":
        return str(request.getfixturevalue("pg_schema"))
    return f"duckdb:///{tmp_path / 'warehouse.duckdb'}"


@pytest.fixture()
def wh(url: str) -> Iterator[Warehouse]:
    warehouse = Warehouse(url)
    warehouse.ensure_schema()
    yield warehouse
    warehouse.dispose()


def run_concurrently(*jobs: object) -> list[BaseException]:
    barrier = threading.Barrier(len(jobs))
    errors: list[BaseException] = []

    def run(job: object) -> None:
        try:
            barrier.wait()
            job()  # type: ignore[operator]
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(job,)) for job in jobs]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return errors


# --- the core contract, on both databases ---------------------------------------------------


@pytest.mark.parametrize("bulk", [True, False], ids=["bulk", "executemany"])
def test_round_trip_is_exact_in_every_column(url: str, bulk: bool) -> None:
    wh = Warehouse(url, bulk=bulk)
    wh.ensure_schema()
    report = sample_report(D, n=8)
    assert wh.replace_report(report, D) == 8
    assert_report(wh, D, report)
    rows = wh.read_table(REPORT_TABLE.name, D)
    assert sorted((r["email"] for r in rows), key=repr).count(None) == 2
    assert [r["email"] for r in rows].count("") == 2
    assert {r["total"] for r in rows} == set(TRICKY)
    empty = wh.read_report(D2)
    assert empty.num_rows == 0 and empty.schema == arrow_schema(REPORT_TABLE)
    wh.dispose()


def test_replace_again_keeps_only_new_rows_and_other_dates(wh: Warehouse) -> None:
    wh.replace_report(sample_report(D, run="run-a"), D)
    other = sample_report(D2, n=3, run="run-other")
    wh.replace_report(other, D2)
    second = sample_report(D, n=5, run="run-b")
    assert wh.replace_report(second, D) == 5
    assert wh.replace_report(second, D) == 5
    assert_report(wh, D, second)
    assert_report(wh, D2, other)
    assert len(wh.read_table(REPORT_TABLE.name)) == 8


@pytest.mark.parametrize("breakage", ["duplicate key", "null in not-null column"])
def test_failed_load_rolls_back_and_keeps_previous_rows(wh: Warehouse, breakage: str) -> None:
    assert_failed_load_rolls_back(wh, breakage)


def test_quarantine_replace(wh: Warehouse) -> None:
    rejected = [
        Rejected(
            "saxo_main",
            "calculation_reliability",
            "Approximate",
            {"AccountKey": "k1", "TotalValue": Decimal("0.00000000346"), "ü": None},
        ),
        Rejected("kraken_main", "ccy_format", 'bad "ccy", really', {"ccy": "x y"}),
    ]
    assert wh.replace_quarantine(rejected, D, "run-1") == 2
    wh.replace_quarantine(rejected[:1], D2, "run-0")
    assert wh.replace_quarantine(rejected, D, "run-2") == 2
    rows = wh.read_table(QUARANTINE_TABLE.name, D)
    assert [(r["source"], r["check_name"], r["reason"], r["run_id"]) for r in rows] == [
        ("kraken_main", "ccy_format", 'bad "ccy", really', "run-2"),
        ("saxo_main", "calculation_reliability", "Approximate", "run-2"),
    ]
    assert rows[1]["record"] == '{"AccountKey": "k1", "TotalValue": "0.00000000346", "ü": null}'
    assert len(wh.read_table(QUARANTINE_TABLE.name, D2)) == 1


def test_concurrent_replaces_of_one_date_end_with_one_runs_rows(wh: Warehouse) -> None:
    for _ in range(2):
        runs = {f"run-{k}": sample_report(D, n=1000, run=f"run-{k}") for k in "abc"}
        errors = run_concurrently(*(lambda t=t: wh.replace_report(t, D) for t in runs.values()))
        assert errors == []
        got = wh.read_report(D)
        assert got.num_rows == 1000  # no mix, no duplicates
        (winner,) = set(got.column("run_id").to_pylist())
        assert got.equals(expected(runs[winner]))


def test_ensure_schema_concurrently_on_a_fresh_database(url: str) -> None:
    warehouses = [Warehouse(url) for _ in range(4)]
    assert run_concurrently(*(w.ensure_schema for w in warehouses)) == []
    warehouses[0].replace_report(sample_report(D), D)
    assert len(warehouses[1].read_table(REPORT_TABLE.name)) == 4
    for w in warehouses:
        w.dispose()


# --- PostgreSQL specifics ------------------------------------------------------------------


@pytest.fixture()
def pg(pg_schema: str) -> Iterator[Warehouse]:
    warehouse = Warehouse(pg_schema)
    warehouse.ensure_schema()
    yield warehouse
    warehouse.dispose()


def pg_comments(wh: Warehouse) -> dict[tuple[str, str], str | None]:
    sql = """
        SELECT c.relname, a.attname, col_description(c.oid, a.attnum)
        FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
        WHERE n.nspname = current_schema() AND c.relkind = 'r'
        UNION ALL
        SELECT c.relname, '', obj_description(c.oid, 'pg_class')
        FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE n.nspname = current_schema() AND c.relkind = 'r'
    """
    with wh.engine.connect() as conn:
        return {(t, c): comment for t, c, comment in conn.execute(sa.text(sql))}


@pytest.mark.postgres
def test_pg_comments_types_and_primary_key(pg: Warehouse) -> None:
    have = pg_comments(pg)
    for table in METADATA.sorted_tables:
        assert have[(table.name, "")], table.name
        for column in table.columns:
            assert have[(table.name, column.name)], (table.name, column.name)
    with pg.engine.connect() as conn:
        cols = conn.execute(
            sa.text(
                "SELECT column_name, data_type, numeric_precision, numeric_scale, is_nullable "
                "FROM information_schema.columns WHERE table_schema = current_schema() "
                "AND table_name = 'settlement_balance_report' ORDER BY ordinal_position"
            )
        ).all()
        pk = conn.execute(
            sa.text(
                "SELECT k.column_name FROM information_schema.table_constraints t "
                "JOIN information_schema.key_column_usage k "
                "USING (constraint_schema, constraint_name) "
                "WHERE t.table_schema = current_schema() AND t.constraint_type = 'PRIMARY KEY' "
                "AND t.table_name = 'settlement_balance_report' ORDER BY k.ordinal_position"
            )
        ).scalars()
        assert list(pk) == ["report_date", "account_uuid", "ccy"]
    assert [c[0] for c in cols] == list(REPORT_TABLE.columns.keys())
    amounts = {c[0]: c[1:4] for c in cols if c[1] == "numeric"}
    assert len(amounts) == 22 and set(amounts.values()) == {("numeric", 38, 20)}
    assert {c[0] for c in cols if c[4] == "YES"} == {"email"}
    assert dict((c[0], c[1]) for c in cols)["snapshot_at"] == "timestamp with time zone"


@pytest.mark.postgres
def test_pg_lost_comments_come_back(pg: Warehouse) -> None:
    before = pg_comments(pg)
    with pg.engine.begin() as conn:
        conn.execute(sa.text("COMMENT ON COLUMN settlement_balance_report.custody IS NULL"))
        conn.execute(sa.text("COMMENT ON TABLE settlement_balance_quarantine IS NULL"))
    assert pg_comments(pg) != before
    pg.ensure_schema()
    assert pg_comments(pg) == before


@pytest.mark.postgres
def test_pg_replace_waits_for_a_running_replace_of_the_same_date(pg: Warehouse) -> None:
    """The advisory lock: a replace blocked by an open transaction on D starts after it."""
    from etl_project.sinks.warehouse import date_lock_key

    pg.replace_report(sample_report(D, run="run-a"), D)
    done = threading.Event()
    with pg.engine.begin() as conn:
        conn.execute(
            sa.text("SELECT pg_advisory_xact_lock(:k)"),
            {"k": date_lock_key(D)},
        )
        worker = threading.Thread(
            target=lambda: (pg.replace_report(sample_report(D, run="run-b"), D), done.set())
        )
        worker.start()
        assert not done.wait(0.5)
        pg.replace_report(sample_report(D2, run="run-c"), D2)  # other dates are not blocked
    worker.join(10)
    assert done.is_set()
    assert set(pg.read_report(D).column("run_id").to_pylist()) == {"run-b"}
