"""Build one report date's report from the sources' canonical balances (spec §1).

concatenate per-source balances -> drop all-zero rows (unless the source keeps them) and sort
by (userUUID, accountUUID, Ccy) in one gather -> add lineage (report_date, snapshot_at per
source, run_id) -> validate with `ReportModel`, quarantining failing rows (order is kept).

Duplicates follow the one rule of both stages (`validate.split_valid`, spec §3 "Every venue"):
every row of a repeated (accountUUID, Ccy) goes to quarantine with `duplicate_reason`'s text
(here also across sources, which the reason names), never summed, never first-wins; the build
goes on with the other rows. Detection is the model's `pl.len().over(key)` window, the
reasons one polars group-by over the failing rows: no per-row Python on the valid rows.

Everything is columnar: Arrow compute for the masks and lineage, polars for the sort order.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from datetime import UTC, date, datetime
from decimal import Decimal
from functools import reduce
from typing import cast

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc

from etl_project.report.columns import (
    AMOUNT_COLUMNS,
    AMOUNT_TYPE,
    BALANCES_SCHEMA,
    REPORT_SCHEMA,
    SORT_KEY,
)
from etl_project.report.schema import ReportModel
from etl_project.report.validate import SchemaViolation, split_valid
from etl_project.venues.base import Rejected

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
    tables = [table for table in tables if table.num_rows]
    if not tables:
        return REPORT_SCHEMA.empty_table(), []
    combined = pa.concat_tables(tables)

    # One gather does both the zero-row drop and the sort (a random-access copy of the
    # whole table is the expensive step; validation keeps the row order it is given).
    kept = np.flatnonzero(
        _non_zero_or_kept(combined, keep_zero_sources).to_numpy(zero_copy_only=False)
    )
    staged = combined.take(pa.array(kept[_sort_order(combined, kept)]))
    staged = _with_lineage(staged, report_date, run_id, snapshot_at)
    valid, rejected = split_valid(staged, ReportModel)
    return valid if valid.schema.equals(REPORT_SCHEMA) else valid.cast(REPORT_SCHEMA), rejected


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


def _non_zero_or_kept(table: pa.Table, keep_zero_sources: Collection[str]) -> pa.Array:
    """Row mask: some amount is not 0, or the row's source keeps all-zero rows."""
    zero = pa.scalar(Decimal(0), AMOUNT_TYPE)
    non_zero = [pc.not_equal(table.column(name), zero) for name in AMOUNT_COLUMNS]
    mask = reduce(pc.or_kleene, non_zero)
    if keep_zero_sources:
        kept = pc.is_in(table.column("source"), value_set=pa.array(sorted(keep_zero_sources)))
        mask = pc.or_kleene(mask, kept)
    # A null amount is not "all zero": keep the row so validation quarantines it.
    return pc.fill_null(mask, True).combine_chunks()


def _with_lineage(
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


def _sort_order(table: pa.Table, rows: np.ndarray) -> np.ndarray:
    """Positions into `rows` that sort those rows of `table` by SORT_KEY (text byte order)."""
    keys = cast(pl.DataFrame, pl.from_arrow(table.select(list(SORT_KEY))))
    order = keys[rows].select(pl.arg_sort_by(list(SORT_KEY))).to_series()
    return order.to_numpy()
