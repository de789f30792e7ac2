"""Warehouse sink against a real PostgreSQL (COPY path, advisory locks, col_description),
with the core contract parametrized over DuckDB and PostgreSQL."""

from __future__ import annotations

import random
import threading
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pyarrow as pa
import pytest
import sqlalchemy as sa

from etl_project.report.columns import AMOUNT_TYPE, COLUMNS
from etl_project.sinks.warehouse import Warehouse
from etl_project.sinks.warehouse_loaders import BinaryPlan, load_postgres_copy
from etl_project.sinks.warehouse_tables import (
    METADATA,
    QUARANTINE_TABLE,
    REPORT_TABLE,
    arrow_schema,
)
from etl_project.venues.base import Rejected
from tests.python_work import calls_made
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


# --- binary COPY (warehouse_loaders.load_postgres_copy) -------------------------------------

BRIEF_AMOUNTS = (
    "-0.0009056832839642471",
    "0.00000000346",
    "12345678901234567.12345678901234567890",
    "0",
)


@pytest.fixture()
def plans(monkeypatch: pytest.MonkeyPatch) -> list[object]:
    """Every plan `load_postgres_copy` chose: a BinaryPlan for binary COPY, None for CSV."""
    from etl_project.sinks import warehouse_loaders

    chosen: list[object] = []
    real = warehouse_loaders._binary_plan

    def spy(*args: object) -> object:
        chosen.append(real(*args))  # type: ignore[arg-type]
        return chosen[-1]

    monkeypatch.setattr(warehouse_loaders, "_binary_plan", spy)
    return chosen


def amounts_report(values: list[Decimal]) -> pa.Table:
    """A sample report with `values` in every amount column, shifted by one per column."""
    report = sample_report(D, n=len(values))
    for k, name in enumerate(c.name for c in COLUMNS if c.kind == "amount"):
        shifted = values[k % len(values) :] + values[: k % len(values)]
        index = report.schema.get_field_index(name)
        report = report.set_column(index, name, pa.array(shifted, AMOUNT_TYPE))
    return report


@pytest.mark.postgres
def test_pg_binary_copy_keeps_amounts_exact(pg: Warehouse, plans: list[object]) -> None:
    rng = random.Random(5)
    values = [Decimal(v) for v in BRIEF_AMOUNTS]
    values += [Decimal(f"{rng.randrange(-(10**38) + 1, 10**38)}E-20") for _ in range(200)]
    values += [
        Decimal(f"{rng.randrange(-(10**12), 10**12)}E-{rng.randrange(21)}") for _ in range(200)
    ]
    values += [Decimal(0)] * 20
    report = amounts_report(values)
    assert pg.replace_report(report, D) == len(values)
    assert len(plans) == 1 and isinstance(plans[0], BinaryPlan)
    got = pg.read_report(D)
    assert got.equals(expected(report))
    for column in (c for c in COLUMNS if c.kind == "amount"):  # Decimal equality is exact
        assert sorted(got.column(column.sql).to_pylist()) == sorted(
            report.column(column.name).to_pylist()
        )
    with pg.engine.connect() as conn:
        text = dict(
            conn.execute(
                sa.text(
                    "SELECT total, total::text FROM settlement_balance_report "
                    "WHERE account_uuid = ANY(:a)"
                ),
                {"a": report.column("accountUUID").to_pylist()[:4]},
            ).all()
        )
    assert sorted(text.values()) == [  # NUMERIC(38,20) shows 20 decimals
        "-0.00090568328396424710",
        "0.00000000000000000000",
        "0.00000000346000000000",
        "12345678901234567.12345678901234567890",
    ]


MIXED_DDL = """
    CREATE TABLE {name} (
        amount numeric(38,20), maybe_amount numeric(38,20), odd_scale numeric(12,3),
        free numeric, uuid text, note varchar(40), flag boolean, maybe_flag boolean,
        day date, at timestamptz, naive timestamp, big bigint, small integer, tiny smallint,
        ratio double precision, single real, blob bytea, nothing date
    )
"""


def mixed_rows(rows: int) -> pa.Table:
    rng = random.Random(11)
    start = datetime(1960, 1, 1, tzinfo=UTC)
    amounts = [
        Decimal(f"{rng.randrange(-(10**18), 10**18)}E-{rng.randrange(21)}") for _ in range(rows)
    ]
    return pa.table(
        {
            "amount": pa.array(amounts, AMOUNT_TYPE),
            "maybe_amount": pa.array(
                [None if i % 3 else v for i, v in enumerate(amounts)], AMOUNT_TYPE
            ),
            "odd_scale": pa.array(
                [Decimal(f"{i * 7 - 5000}E-3") for i in range(rows)], pa.decimal128(12, 3)
            ),
            "free": pa.array(amounts, AMOUNT_TYPE),
            "uuid": pa.array([f"{i:08x}-0000-0000-0000-000000000000" for i in range(rows)]),
            "note": pa.array(
                [
                    None if i % 7 == 0 else "" if i % 5 == 0 else f'x,"y"\n\\. ü{i}'
                    for i in range(rows)
                ]
            ),
            "flag": pa.array([i % 2 == 0 for i in range(rows)]),
            "maybe_flag": pa.array([None if i % 11 == 0 else i % 3 == 0 for i in range(rows)]),
            "day": pa.array([date(1900, 1, 1) + timedelta(days=37 * i) for i in range(rows)]),
            "at": pa.array(
                [start + timedelta(seconds=12345.678901 * i) for i in range(rows)],
                pa.timestamp("us", tz="UTC"),
            ),
            "naive": pa.array(
                [
                    None if i % 2 else datetime(2024, 1, 1) + timedelta(microseconds=i)
                    for i in range(rows)
                ],
                pa.timestamp("us"),
            ),
            "big": pa.array([(i - rows // 2) * 10**12 for i in range(rows)], pa.int64()),
            "small": pa.array([i - rows // 2 for i in range(rows)], pa.int64()),
            "tiny": pa.array([None if i % 9 == 0 else i % 100 for i in range(rows)], pa.int16()),
            "ratio": pa.array([i / 7 - 3.5 for i in range(rows)], pa.float64()),
            "single": pa.array([i / 4 for i in range(rows)], pa.float32()),
            "blob": pa.array([bytes([65 + i % 26]) * (i % 3) for i in range(rows)], pa.binary()),
            "nothing": pa.nulls(rows, pa.date32()),
        }
    )


def load_and_read(
    conn: sa.Connection, name: str, data: pa.Table, monkeypatch: pytest.MonkeyPatch, binary: bool
) -> list[str]:
    from etl_project.sinks import warehouse_loaders

    conn.exec_driver_sql(MIXED_DDL.format(name=name))
    table = sa.Table(name, sa.MetaData(), *(sa.Column(n) for n in data.column_names))
    with monkeypatch.context() as patch:
        if not binary:
            patch.setattr(warehouse_loaders, "_binary_plan", lambda *args: None)
        # two loads: sliced Arrow input (non-zero offsets)
        load_postgres_copy(conn, table, data.slice(0, 777))
        load_postgres_copy(conn, table, data.slice(777))
    conn.exec_driver_sql("SET LOCAL TimeZone = 'UTC'")
    return [r[0] for r in conn.exec_driver_sql(f"SELECT {name}::text FROM {name}").all()]


@pytest.mark.postgres
def test_pg_binary_and_csv_copy_store_the_same_values(
    pg: Warehouse, plans: list[object], monkeypatch: pytest.MonkeyPatch
) -> None:
    data = mixed_rows(2000)
    with pg.engine.begin() as conn:
        binary = load_and_read(conn, "mixed_binary", data, monkeypatch, binary=True)
        text = load_and_read(conn, "mixed_csv", data, monkeypatch, binary=False)
    assert [type(p).__name__ for p in plans] == ["BinaryPlan", "BinaryPlan"]
    assert binary == text and len(binary) == 2000
    assert binary[0].startswith("(")


@pytest.mark.postgres
def test_pg_binary_copy_into_a_temporary_table_in_the_transaction(
    pg: Warehouse, plans: list[object]
) -> None:
    """As the account registry stages a listing: a TEMPORARY table, same transaction."""
    staged = sa.Table(
        "_staged_listing",
        sa.MetaData(),
        sa.Column("account_id", sa.Text()),
        sa.Column("first_seen", sa.Date()),
        sa.Column("retired_on", sa.Date()),
        prefixes=["TEMPORARY"],
    )
    data = pa.table(
        {
            "account_id": ["a", "b", "c"],
            "first_seen": pa.array([D, D, D2]),
            "retired_on": pa.nulls(3, pa.date32()),
        }
    )
    with pg.engine.begin() as conn:
        staged.create(conn)
        load_postgres_copy(conn, staged, data)
        rows = conn.execute(sa.select(staged).order_by(staged.c.account_id)).all()
    assert isinstance(plans[0], BinaryPlan)
    assert [tuple(r) for r in rows] == [("a", D, None), ("b", D, None), ("c", D2, None)]


@pytest.mark.postgres
def test_pg_binary_copy_errors_are_sqlalchemy_errors_and_roll_back(
    pg: Warehouse, plans: list[object]
) -> None:
    narrow = sa.Table("narrow", sa.MetaData(), sa.Column("n", sa.Numeric(10, 2)))
    with pg.engine.begin() as conn:
        narrow.create(conn)
        load_postgres_copy(conn, narrow, pa.table({"n": pa.array([Decimal("1.25")], AMOUNT_TYPE)}))
    too_wide = pa.table({"n": pa.array([Decimal("1.5"), Decimal("123456789.5")], AMOUNT_TYPE)})
    with pytest.raises(sa.exc.DataError, match="numeric field overflow"), pg.engine.begin() as conn:
        load_postgres_copy(conn, narrow, too_wide)
    assert all(isinstance(p, BinaryPlan) for p in plans) and len(plans) == 2
    with pg.engine.connect() as conn:
        assert conn.execute(sa.select(narrow.c.n)).scalars().all() == [Decimal("1.25")]


@pytest.mark.postgres
def test_pg_other_column_types_fall_back_to_csv_copy(pg: Warehouse, plans: list[object]) -> None:
    ids = sa.Table("ids", sa.MetaData(), sa.Column("id", sa.Uuid()), sa.Column("n", sa.Numeric()))
    value = "83cdf801-2fb2-5c54-a351-239c47006e82"
    with pg.engine.begin() as conn:
        ids.create(conn)
        load_postgres_copy(
            conn, ids, pa.table({"id": [value], "n": pa.array([Decimal(1)], AMOUNT_TYPE)})
        )
        assert [str(v) for v in conn.execute(sa.select(ids.c.id)).scalars()] == [value]
    assert plans == [None]


@pytest.mark.postgres
def test_pg_binary_copy_does_no_python_work_per_row(pg: Warehouse, plans: list[object]) -> None:
    """Python calls grow with the number of 8192-row batches, not with rows or values."""
    small, large = sample_report(D, n=8), sample_report(D2, n=3 * 8192)
    pg.replace_report(sample_report(D, n=8, run="warm-up"), D)  # caches, imports
    few = calls_made(lambda: pg.replace_report(small, D))
    many = calls_made(lambda: pg.replace_report(large, D2))
    assert all(isinstance(p, BinaryPlan) for p in plans)
    assert pg.read_report(D2).num_rows == 3 * 8192
    # ~3000 calls a batch (NumPy/Arrow calls per column): under half a call a row, where
    # anything per row would be one or more a row and anything per value 40 a row
    assert many - few < large.num_rows // 2, (few, many)
