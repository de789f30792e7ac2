"""Report totals for people: row counts and exact sums of `Total` per group, as Markdown.

The sums are exact at any size: each group sums the whole part of `Total` as a 128-bit
integer and the fractional part (|x| < 1 per row) as a decimal, and the two are added as
Python `Decimal`s. (A plain decimal group-by sum in polars wraps silently past 10^18.)
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal, localcontext
from typing import cast

import polars as pl
import pyarrow as pa

#: Keys of each `totals_by` row besides the group keys.
ROWS = "rows"
TOTAL = "Total"


def totals_by(
    report: pa.Table | pa.RecordBatchReader, keys: Sequence[str]
) -> list[dict[str, object]]:
    """Per group of `keys` (e.g. ["Ccy"] or ["source", "Ccy"]), sorted by the keys:
    `{<key>: value, ..., "rows": count, "Total": exact Decimal sum of Total}`.

    With no keys, one row for the whole report. `report` is a table or a stream of record
    batches (read once): each batch is summed on its own and the per-group sums are added up,
    so memory is a batch plus one row per group and batch, never the whole report.
    """
    keys = list(keys)
    unknown = [k for k in keys if k not in report.schema.names]
    if unknown or TOTAL in keys or ROWS in keys:
        raise ValueError(f"cannot group the report by {keys}")
    if not pa.types.is_decimal(report.schema.field(TOTAL).type):
        raise TypeError(f"Total must be decimal, got {report.schema.field(TOTAL).type}")
    batches = [report] if isinstance(report, pa.Table) else report
    parts = [_sums(report.schema.empty_table(), keys)]
    parts += [_sums(batch, keys) for batch in batches]
    summed = [pl.col(ROWS).sum(), pl.col(_WHOLE).sum(), pl.col(_PART).sum()]
    every = pl.concat(parts)
    grouped = every.group_by(keys).agg(summed).sort(keys) if keys else every.select(summed)
    result = []
    with localcontext() as context:
        context.prec = 80  # > 38 digits + carries: no rounding anywhere below
        for row in grouped.iter_rows(named=True):  # one per group, not per report row
            whole_sum, part_sum = row.pop(_WHOLE), row.pop(_PART)
            total = Decimal(whole_sum or 0) + (part_sum or Decimal(0))
            row[TOTAL] = Decimal(format(total.normalize(), "f")) if total else Decimal(0)
            result.append(row)
    return result


_WHOLE, _PART = "\x00whole", "\x00part"


def _sums(report: pa.Table | pa.RecordBatch, keys: list[str]) -> pl.DataFrame:
    """Per group of `keys` in `report`: rows, the sum of Total's whole parts (Int128) and of
    its fractional parts (each |x| < 1, so a batch's sum stays far inside decimal(38,20))."""
    frame = cast(pl.DataFrame, pl.from_arrow(report.select([*keys, TOTAL])))
    amount = frame.schema[TOTAL]
    whole = pl.col(TOTAL).cast(pl.Int128)
    aggregates = [
        pl.len().cast(pl.Int64).alias(ROWS),
        whole.sum().alias(_WHOLE),
        (pl.col(TOTAL) - whole.cast(amount)).sum().alias(_PART),
    ]
    return frame.group_by(keys).agg(aggregates) if keys else frame.select(aggregates)


def markdown_table(rows: list[dict[str, object]]) -> str:
    """Rows (e.g. from `totals_by`) as a Markdown table; numbers right-aligned, amounts plain.

    Columns are the first row's keys. No rows -> `_no rows_`.
    """
    if not rows:
        return "_no rows_\n"
    columns = list(rows[0])
    numeric = {c: all(isinstance(r.get(c), int | Decimal) for r in rows) for c in columns}
    lines = [
        "| " + " | ".join(_cell(c) for c in columns) + " |",
        "|" + "|".join("---:" if numeric[c] else "---" for c in columns) + "|",
    ]
    lines += ["| " + " | ".join(_cell(r.get(c)) for c in columns) + " |" for r in rows]
    return "\n".join(lines) + "\n"


def _cell(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, Decimal):
        text = format(value, "f")
        if "." in text:
            text = text.rstrip("0").rstrip(".")
        return text
    return " ".join(str(value).split()).replace("|", "\\|")
