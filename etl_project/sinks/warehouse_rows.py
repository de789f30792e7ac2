"""Arrow rows as the warehouse tables take them: conformed to a table (also a stream of
record batches, batch by batch as it is read), the report under its SQL names, the quarantine.
No database here."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import pyarrow as pa
import sqlalchemy as sa

from etl_project.model import Rejected
from etl_project.report.columns import SQL_NAMES
from etl_project.sinks.warehouse_loaders import Rows
from etl_project.sinks.warehouse_tables import conform, record_json


def quarantine_rows(rejected: Sequence[Rejected], run_id: str) -> pa.Table:
    """Rejected records as rows of `settlement_balance_quarantine` (record as JSON text)."""
    now = datetime.now(UTC)
    return pa.table(
        {
            "source": pa.array([r.source for r in rejected], pa.string()),
            "run_id": pa.array([run_id] * len(rejected), pa.string()),
            "check_name": pa.array([r.check for r in rejected], pa.string()),
            "reason": pa.array([r.reason for r in rejected], pa.string()),
            "record": pa.array([record_json(r.record) for r in rejected], pa.string()),
            "quarantined_at": pa.array([now] * len(rejected), pa.timestamp("us", tz="UTC")),
        }
    )


def sql_named(report: Rows) -> Rows:
    """Report rows (a table or a stream) with the warehouse's column names."""
    names = [SQL_NAMES.get(n, n) for n in report.schema.names]
    if isinstance(report, pa.Table):
        return report.rename_columns(names)
    schema = pa.schema([f.with_name(n) for f, n in zip(report.schema, names, strict=True)])
    return pa.RecordBatchReader.from_batches(schema, (b.rename_columns(names) for b in report))


def conformed(table: sa.Table, rows: Rows, fixed: Mapping[str, Any]) -> Rows:
    """`conform` a table now; a stream's schema now (an error before the transaction, as
    for a table) and each of its batches as it is read."""
    if isinstance(rows, pa.Table):
        return conform(table, rows, fixed)
    schema = conform(table, rows.schema.empty_table(), fixed).schema

    def batches() -> Iterator[pa.RecordBatch]:
        for batch in rows:
            yield from conform(table, pa.Table.from_batches([batch]), fixed).to_batches()

    return pa.RecordBatchReader.from_batches(schema, batches())
