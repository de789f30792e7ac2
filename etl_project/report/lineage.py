"""Lineage columns of the report: report_date, snapshot_at (per source) and run_id."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, date, datetime

import pyarrow as pa
import pyarrow.compute as pc

from etl_project.report.columns import REPORT_SCHEMA


def with_lineage(
    table: pa.Table, report_date: date, run_id: str, snapshot_at: Mapping[str, datetime]
) -> pa.Table:
    """Append report_date, snapshot_at (per source) and run_id as in REPORT_SCHEMA."""
    n = table.num_rows
    # A null source gets a null snapshot_at: validation then quarantines the row.
    sources = [s for s in pc.unique(table.column("source")).to_pylist() if s is not None]
    unknown = sorted(s for s in sources if s not in snapshot_at)
    if unknown:
        raise ValueError(f"snapshot_at has no time for source(s) {unknown}")
    naive = sorted(s for s in sources if snapshot_at[s].utcoffset() is None)
    if naive:
        raise ValueError(f"snapshot_at of source(s) {naive} is not timezone-aware")
    snapshot_type = REPORT_SCHEMA.field("snapshot_at").type
    times = pa.array([snapshot_at[s].astimezone(UTC) for s in sources], snapshot_type)
    positions = pc.index_in(table.column("source"), value_set=pa.array(sources, pa.string()))
    lineage = {
        "report_date": pa.repeat(pa.scalar(report_date, pa.date32()), n),
        "snapshot_at": times.take(positions),
        "run_id": pa.repeat(pa.scalar(run_id, pa.string()), n),
    }
    for name, values in lineage.items():
        table = table.append_column(REPORT_SCHEMA.field(name), values)
    return table
