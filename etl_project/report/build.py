"""Build one report date's report from the sources' canonical balances (spec §1), in memory.

The work is `build_stream.build_report_stream`'s (drop all-zero rows unless the source keeps
them, sort by (userUUID, accountUUID, Ccy), add lineage, validate with `ReportModel` and
quarantine failing rows, order kept); this is its front for tables already in memory (tests,
small callers): each table is checked against `BALANCES_SCHEMA` and handed over as a file.

Duplicates follow the one rule of both stages (`validate.split_valid`, spec §3 "Every venue"):
every row of a repeated (accountUUID, Ccy) goes to quarantine with `duplicate_reason`'s text
(here also across sources, which the reason names), never summed, never first-wins.
"""

from __future__ import annotations

import tempfile
from collections.abc import Collection, Mapping, Sequence
from datetime import date, datetime
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from etl_project.model import Rejected
from etl_project.report.build_stream import build_report_stream
from etl_project.report.columns import BALANCES_SCHEMA, REPORT_SCHEMA
from etl_project.report.validate import SchemaViolation

_STRING_TYPES = (pa.string(), pa.large_string(), pa.string_view())


def build_report(
    balances: Sequence[pa.Table],
    *,
    report_date: date,
    run_id: str,
    snapshot_at: Mapping[str, datetime],
    keep_zero_sources: Collection[str] = (),
) -> tuple[pa.Table, list[Rejected]]:
    """The report of `report_date` (exactly `REPORT_SCHEMA`, sorted) and the rejected rows.

    `balances`: one table per source, each `BALANCES_SCHEMA`. `snapshot_at`: source name ->
    time its venue snapshot was taken (timezone-aware); every source present needs one.
    Rows whose 22 amounts are all 0 are dropped unless their source is in `keep_zero_sources`.
    Raises `SchemaViolation` when a balances table does not have the balances columns/types.
    """
    if isinstance(report_date, datetime) or not isinstance(report_date, date):
        raise TypeError(f"report_date must be a date, got {report_date!r}")
    tables = [_conform(table, number) for number, table in enumerate(balances)]
    written: list[pa.Table] = []
    with tempfile.TemporaryDirectory(prefix="etl-build-") as work:
        inputs = []
        for number, table in enumerate(tables):
            inputs.append(Path(work) / f"{number}.parquet")
            pq.write_table(table, inputs[-1])
        built = build_report_stream(
            inputs,
            written.append,
            report_date=report_date,
            run_id=run_id,
            snapshot_at=snapshot_at,
            keep_zero_sources=keep_zero_sources,
        )
    report = pa.concat_tables(written) if written else REPORT_SCHEMA.empty_table()
    return report, built.rejected


def _conform(table: pa.Table, number: int) -> pa.Table:
    """`table` as exactly BALANCES_SCHEMA; string flavours (large/view) are cast, nothing else."""
    if table.schema.equals(BALANCES_SCHEMA):
        return table
    problems = []
    names = table.column_names
    missing = [n for n in BALANCES_SCHEMA.names if n not in names]
    extra = [n for n in names if n not in BALANCES_SCHEMA.names]
    problems += [f"{n}: column missing" for n in missing]
    problems += [f"{n}: column not in the schema" for n in extra]
    if not problems and names != BALANCES_SCHEMA.names:
        problems.append(f"columns out of order: {names}")
    for field in BALANCES_SCHEMA:
        if field.name in names:
            actual = table.schema.field(field.name).type
            same = actual == field.type or (field.type == pa.string() and actual in _STRING_TYPES)
            if not same:
                problems.append(f"{field.name}: wrong dtype {actual}, expected {field.type}")
    if problems:
        raise SchemaViolation(f"balances table {number}", problems)
    return table.cast(BALANCES_SCHEMA)
