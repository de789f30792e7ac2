"""Publishing reads the staged report batch by batch: with batches of a few rows, the version's
files are byte for byte what the whole-table writers give, and the warehouse holds exactly the
report (DuckDB here; PostgreSQL in tests/integration/test_warehouse_stream_postgres.py)."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from etl_project import staging
from etl_project.report import batches
from etl_project.report.columns import SQL_NAMES
from etl_project.report.serialise import read_parquet, to_csv, to_json
from etl_project.sinks.object_store import LocalObjectStore
from etl_project.sinks.warehouse import Warehouse
from etl_project.stages.completeness import COMPLETENESS_SCHEMA
from etl_project.stages.outcome import StageOutcome, manifest
from etl_project.stages.publish import publish_report, version_prefix
from tests.report_rows import report, row

D = date(2024, 5, 1)


def staged(tmp_path: Path, table: pa.Table) -> LocalObjectStore:
    """`table` staged as D's audited report, as `stages.report` leaves it."""
    store = LocalObjectStore(tmp_path / "lake")
    manifest_key, table_key = staging.report_keys(D)
    staging.put_table(store, table_key, table)
    completeness = pa.Table.from_pylist(
        [
            {
                "source": "kraken",
                "venue": "kraken_futures",
                "account_id": "acct-1",
                "account_name": "desk",
                "expected": True,
                "received": True,
                "failed": False,
                "listed": True,
                "reason": None,
            }
        ],
        schema=COMPLETENESS_SCHEMA,
    )
    staging.put_table(store, staging.completeness_key(D), completeness)
    details = {
        "run_id": "run-1",
        "rows": table.num_rows,
        "completeness": "complete",
        "gaps": [],
        "sources": {},
        "rejected": [],
        "extra_tables": {},
    }
    staging.put_json(store, manifest_key, manifest(StageOutcome("report", "ok", None, details)))
    return store


def sample(rows: int) -> pa.Table:
    hostile = {"User": '=HYPERLINK("x")', "Account Group": 'Desk, "A"\nB'}
    return report(
        *(
            row(
                n,
                Total=Decimal(n).scaleb(-(n % 21)) - 7,
                Hold=Decimal("-0.0009056832839642471") if n % 2 else Decimal(0),
                **(hostile if n % 3 == 0 else {}),
            )
            for n in range(1, rows + 1)
        )
    )


@pytest.mark.parametrize("batch_rows", [1, 4, 1000])
def test_publish_by_batches_writes_the_whole_table_bytes_and_rows(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, batch_rows: int
) -> None:
    monkeypatch.setattr(batches, "BATCH_ROWS", batch_rows)
    table = sample(11)
    store = staged(tmp_path, table)
    wh = Warehouse(f"duckdb:///{tmp_path / 'wh.duckdb'}")
    try:
        published = publish_report(store, wh, D)
        stored = wh.read_report(D)
    finally:
        wh.dispose()
    assert published.rows == 11
    folder = tmp_path / "lake" / version_prefix(D, "run-1")
    assert (folder / f"settlement_balance_{D}.csv").read_bytes() == to_csv(table)
    assert (folder / f"settlement_balance_{D}.json").read_bytes() == to_json(table)
    back = read_parquet((folder / f"settlement_balance_{D}.parquet").read_bytes())
    assert back.equals(table.select(back.column_names))
    row_groups = pq.ParquetFile(folder / f"settlement_balance_{D}.parquet").num_row_groups
    assert row_groups == -(-11 // batch_rows)  # one per batch: never the whole report at once
    want = table.rename_columns([SQL_NAMES.get(n, n) for n in table.column_names])
    assert sorted(stored.column("total").to_pylist()) == sorted(want.column("total").to_pylist())
    assert sorted(stored.column("account_uuid").to_pylist()) == sorted(
        want.column("account_uuid").to_pylist()
    )


def test_publish_of_an_empty_report(tmp_path: Path) -> None:
    table = sample(0)
    store = staged(tmp_path, table)
    wh = Warehouse(f"duckdb:///{tmp_path / 'wh.duckdb'}")
    try:
        published = publish_report(store, wh, D)
        assert wh.read_report(D).num_rows == 0
    finally:
        wh.dispose()
    assert published.rows == 0
    folder = tmp_path / "lake" / version_prefix(D, "run-1")
    assert (folder / f"settlement_balance_{D}.json").read_bytes() == b"[]\n"
    assert (folder / f"settlement_balance_{D}.csv").read_bytes() == to_csv(table)
