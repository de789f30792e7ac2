"""How report values become text in the files: exact amounts and formula-safe CSV cells.

Amounts are `decimal128(38,20)` and are written in plain decimal notation without exponent or
padding zeros (`5.77`, `0`, `0.00000000346`, `-0.0009056832839642471`), never through a float.
The fast path lets polars' text writers format the decimals themselves, which they do in that
exact notation when the `trim_decimal_zeros` option is on (4-5x faster than casting 22 M
decimals to text first). The option is process-global, so it is only switched on under a lock,
and a one-off self-check (`_writer_trims_decimals`) proves on known values that this polars
version writes the expected text; if it ever does not, `decimal_writer` falls back to
`amount_text` columns, which give the same bytes more slowly.

Formula injection (docs/hostile-input.md): a spreadsheet that opens the CSV runs a text cell
that starts like a formula (`=HYPERLINK(…)`, `+cmd|…`, `@SUM(…)`, `-…`, a leading tab or CR).
The CSV therefore prefixes such text cells with `'` (OWASP's advice, `defuse_formulas`),
column-wise with Arrow compute. Amounts are numbers, not text, so `-0.5` stays `-0.5`; JSON and
Parquet (and the warehouse) keep every value exactly as the venue sent it.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from decimal import Decimal
from functools import cache
from typing import TypeVar, cast

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc

from etl_project.report.columns import AMOUNT_COLUMNS, AMOUNT_TYPE, TEXT_COLUMNS

_TRIM_LOCK = threading.Lock()
_Frame = TypeVar("_Frame", pl.DataFrame, pl.LazyFrame)

#: First characters that make a spreadsheet read a text cell as a formula: OWASP's `= + - @`,
#: tab and CR, plus LF and the full-width `＝ ＋ － ＠` some spreadsheet locales also accept.
FORMULA_LEADS = "=+-@\t\r\n\uff1d\uff0b\uff0d\uff20"
#: What `defuse_formulas` puts in front of such a cell: the spreadsheet then shows it as text.
FORMULA_GUARD = "'"
_LEADS = pa.array(list(FORMULA_LEADS), pa.string())


# --------------------------------------------------------------------------- amounts as text


def amount_text(values: pa.Array | pa.ChunkedArray) -> pa.Array:
    """Decimal values -> plain decimal text: no exponent, no padding zeros; nulls stay null.

    `5.77`, `0`, `0.00000000346`, `-0.0009056832839642471`, `100`, `-5`. Exact: the decimal's
    own digits are used, never a float.
    """
    if not pa.types.is_decimal(values.type):
        raise TypeError(f"amount_text expects decimal values, got {values.type}")
    scale = cast(pa.Decimal128Type, values.type).scale
    frame = pl.DataFrame({"v": pl.from_arrow(values)})
    text = frame.select(_plain_text(pl.col("v"), scale)).to_series()
    return text.to_arrow(compat_level=pl.CompatLevel.oldest()).cast(pa.string())


def _plain_text(expr: pl.Expr, scale: int) -> pl.Expr:
    """Expression: a decimal of `scale` as plain text (polars pads to `scale` digits)."""
    text = expr.cast(pl.String)
    if scale <= 0:
        return text
    return text.str.strip_chars_end("0").str.strip_chars_end(".")


@cache
def _writer_trims_decimals() -> bool:
    """Whether polars' CSV writer, under `trim_decimal_zeros`, writes exactly amount_text."""
    probe = pa.array(
        [
            Decimal("5.77"),
            Decimal(0),
            Decimal("3.46e-9"),
            Decimal("-0.0009056832839642471"),
            Decimal(100),
            Decimal(-5),
            Decimal("-123456789012345678.00000000000000000001"),
            None,
        ],
        AMOUNT_TYPE,
    )
    frame = pl.DataFrame({"a": pl.from_arrow(probe)})
    with _TRIM_LOCK, pl.Config(trim_decimal_zeros=True):
        written = frame.write_csv(include_header=False, null_value="")
    expected = "".join(f"{v or ''}\n" for v in amount_text(probe).to_pylist())
    return written == expected


@contextmanager
def decimal_writer(frame: _Frame) -> Iterator[_Frame]:
    """Yield `frame` (eager or lazy) ready for polars' text writers to print amounts as plain
    decimals."""
    if _writer_trims_decimals():
        with _TRIM_LOCK, pl.Config(trim_decimal_zeros=True):
            yield frame
    else:  # only on a polars that stops trimming in its writers (tested by monkeypatch)
        yield frame.with_columns(
            _plain_text(pl.col(name), AMOUNT_TYPE.scale).alias(name) for name in AMOUNT_COLUMNS
        )


def defuse_formulas(values: pa.Array | pa.ChunkedArray) -> pa.Array | pa.ChunkedArray:
    """Text values with `'` in front of each one that starts like a formula; nulls stay null.

    Column-wise (Arrow compute, no Python per row): the CSV is written for millions of rows.
    Only the cells that need the guard are rewritten; a clean column is returned as it is.
    """
    if not pa.types.is_string(values.type):
        raise TypeError(f"defuse_formulas expects text values, got {values.type}")
    if isinstance(values, pa.ChunkedArray):
        return pa.chunked_array([_defused(chunk) for chunk in values.chunks], values.type)
    return _defused(values)


def _defused(values: pa.Array) -> pa.Array:
    first = pc.utf8_slice_codeunits(values, 0, 1)
    leads = pc.fill_null(pc.is_in(first, value_set=_LEADS), False)
    if not pc.any(leads).as_py():
        return values
    guarded = pc.binary_join_element_wise(FORMULA_GUARD, values.filter(leads), "")
    return pc.replace_with_mask(values, leads, guarded)


def defused_text(report: pa.Table) -> pa.Table:
    """The report with every text column passed through `defuse_formulas` (CSV only)."""
    for name in TEXT_COLUMNS:
        index = report.schema.get_field_index(name)
        report = report.set_column(index, name, defuse_formulas(report.column(index)))
    return report


def constant_amount_text(values: pa.ChunkedArray) -> str | None:
    """The text of the one value of a decimal128 column without nulls that holds one value in
    every row, else None. Compares the raw 128-bit values (a sample first, so a varying
    column is turned down at once)."""
    if values.null_count or len(values) == 0:
        return None
    first: np.ndarray | None = None
    for chunk in values.chunks:
        if len(chunk) == 0:
            continue
        words = np.frombuffer(chunk.buffers()[1], np.uint64, 2 * len(chunk), chunk.offset * 16)
        pairs = words.reshape(-1, 2)
        if first is None:
            first = pairs[0].copy()
        if not (pairs[::1021] == first).all() or not (pairs == first).all():
            return None
    text: str = amount_text(values.slice(0, 1))[0].as_py()
    return text
