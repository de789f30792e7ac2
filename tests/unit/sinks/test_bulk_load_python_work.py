"""The DuckDB bulk load does no Python work per row: from the Arrow table to the database it
is column-wise all the way (`load_duckdb` registers the Arrow table and INSERT … SELECTs from
it). Checked by counting the Python and C function calls the load makes in this thread: a
load of 4000 rows makes no more calls than one of 8. (The PostgreSQL twin of this test is in
tests/integration/test_warehouse_postgres.py.)"""

from __future__ import annotations

from pathlib import Path

import pytest

from etl_project.sinks import warehouse_loaders
from etl_project.sinks.warehouse import Warehouse
from tests.python_work import calls_made
from tests.warehouse_sample import D2, D, sample_report


def test_duckdb_load_does_no_python_work_per_row(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def refuse(*args: object) -> None:
        raise AssertionError("the row-by-row fallback ran")

    monkeypatch.setattr(warehouse_loaders, "load_executemany", refuse)
    wh = Warehouse(f"duckdb:///{tmp_path / 'wh.duckdb'}")
    try:
        wh.ensure_schema()
        small, large = sample_report(D, n=8), sample_report(D2, n=4000)
        wh.replace_report(sample_report(D, n=8, run="warm-up"), D)  # caches, imports
        few = calls_made(lambda: wh.replace_report(small, D))
        many = calls_made(lambda: wh.replace_report(large, D2))
        assert wh.read_report(D2).num_rows == 4000
    finally:
        wh.dispose()
    assert many <= few + 50, (few, many)
