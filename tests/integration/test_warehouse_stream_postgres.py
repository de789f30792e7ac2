"""The warehouse loads a stream of record batches (the staged report read batch by batch) as
exactly as a table: PostgreSQL's binary COPY per batch, DuckDB's scan of the Arrow stream;
Python work grows with batches, not rows; a DuckDB warehouse runs under its memory limit."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pytest
import sqlalchemy as sa

from etl_project.sinks import warehouse_loaders
from etl_project.sinks.warehouse import Warehouse
from etl_project.sinks.warehouse_duckdb import DUCKDB_MEMORY_LIMIT
from tests.python_work import calls_made
from tests.warehouse_sample import D2, D, assert_report, sample_report


def stream(table: pa.Table, rows: int) -> pa.RecordBatchReader:
    return pa.RecordBatchReader.from_batches(table.schema, table.to_batches(max_chunksize=rows))


@pytest.fixture(params=["postgresql", "duckdb"])
def wh(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Warehouse]:
    if request.param == "duckdb":
        url = f"duckdb:///{tmp_path / 'wh.duckdb'}"
    else:
        url = request.getfixturevalue("pg_schema")
    warehouse = Warehouse(url)
    warehouse.ensure_schema()
    yield warehouse
    warehouse.dispose()


@pytest.mark.parametrize("rows", [1, 7, 1000])
def test_a_stream_loads_exactly_like_a_table(wh: Warehouse, rows: int) -> None:
    report = sample_report(D, n=23)
    assert wh.replace_report(stream(report, rows), D) == 23
    assert_report(wh, D, report)
    assert wh.replace_report(stream(report.slice(0, 5), rows), D) == 5  # replaced, not added
    assert_report(wh, D, report.slice(0, 5))


def test_an_empty_stream_empties_the_date(wh: Warehouse) -> None:
    wh.replace_report(sample_report(D, n=3), D)
    assert wh.replace_report(stream(sample_report(D, n=0), 10), D) == 0
    assert wh.read_report(D).num_rows == 0


def test_a_failing_stream_leaves_the_previous_rows(wh: Warehouse) -> None:
    """An error in the middle of the stream (after rows were sent) rolls the date back."""
    before = sample_report(D, n=4)
    wh.replace_report(before, D)
    good = sample_report(D, n=6, run="run-b")

    def batches() -> Iterator[pa.RecordBatch]:
        yield from good.to_batches(max_chunksize=3)[:1]
        raise RuntimeError("the staged file went away")

    with pytest.raises(Exception, match="the staged file went away"):
        wh.replace_report(pa.RecordBatchReader.from_batches(good.schema, batches()), D)
    assert_report(wh, D, before)


@pytest.mark.postgres
def test_pg_stream_uses_binary_copy_without_python_work_per_row(
    pg_schema: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    plans: list[object] = []
    real = warehouse_loaders._binary_plan
    monkeypatch.setattr(
        warehouse_loaders, "_binary_plan", lambda *a: plans.append(real(*a)) or plans[-1]
    )
    wh = Warehouse(pg_schema)
    try:
        wh.ensure_schema()
        wh.replace_report(stream(sample_report(D, n=8, run="warm-up"), 8192), D)
        few = calls_made(lambda: wh.replace_report(stream(sample_report(D, n=8), 8192), D))
        large = sample_report(D2, n=3 * 8192)
        many = calls_made(lambda: wh.replace_report(stream(large, 8192), D2))
        assert wh.read_report(D2).num_rows == 3 * 8192
    finally:
        wh.dispose()
    assert all(isinstance(p, warehouse_loaders.BinaryPlan) for p in plans) and len(plans) == 3
    assert many - few < large.num_rows // 2, (few, many)


def test_duckdb_warehouse_runs_under_its_memory_limit(tmp_path: Path) -> None:
    limits = {}
    for name, limit in (("default", DUCKDB_MEMORY_LIMIT), ("small", "300MB"), ("off", None)):
        wh = Warehouse(f"duckdb:///{tmp_path / f'{name}.duckdb'}", duckdb_memory_limit=limit)
        try:
            with wh.transaction() as conn:
                limits[name] = conn.execute(
                    sa.text("SELECT current_setting('memory_limit')")
                ).scalar()
        finally:
            wh.dispose()
    assert limits["default"] in ("953.6 MiB", "1.0 GiB", "1000.0 MiB")
    assert limits["small"] in ("286.1 MiB", "300.0 MiB")
    assert limits["off"] not in (limits["default"], limits["small"])
