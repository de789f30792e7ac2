"""The report's three files (spec §1): CSV, JSON and Parquet, plus readers for tests and the CLI.

All writers are columnar (polars / pyarrow); no row is visited in Python. Amounts are
`decimal128(38,20)` and are written in plain decimal notation without exponent or padding
zeros (`5.77`, `0`, `0.00000000346`, `-0.0009056832839642471`), never through a float.

The fast path lets polars' CSV writer format the decimals itself, which it does in that exact
notation when its `trim_decimal_zeros` option is on (4-5x faster than casting 22 M decimals to
text first). The option is process-global, so it is only switched on under a lock, and a
one-off self-check (`_writer_trims_decimals`) proves on known values that this polars version
writes the expected text; if it ever does not, the writers fall back to `amount_text` columns,
which give the same bytes more slowly.

Formula injection (docs/hostile-input.md): a spreadsheet that opens the CSV runs a text cell
that starts like a formula (`=HYPERLINK(…)`, `+cmd|…`, `@SUM(…)`, `-…`, a leading tab or CR).
`to_csv` therefore prefixes such text cells with `'` (OWASP's advice), column-wise with Arrow
compute. Amounts are numbers, not text, so `-0.5` stays `-0.5`; JSON and Parquet (and the
warehouse) keep every value exactly as the venue sent it.
"""

from __future__ import annotations

import csv
import io
import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from decimal import Decimal
from functools import cache
from typing import Any, TypeVar, cast

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from etl_project.report.columns import (
    AMOUNT_COLUMNS,
    AMOUNT_TYPE,
    BOOL_COLUMNS,
    LINEAGE_COLUMNS,
    REPORT_COLUMNS,
    TEXT_COLUMNS,
)

#: CSV line ending: LF (RFC 4180 names CRLF; LF is what every CSV reader accepts and what
#: the settlement platform's own export uses). Fields are quoted only when needed.
CSV_LINE_TERMINATOR = "\n"
#: Columns of the Parquet file: the 33 report columns, then the lineage columns.
PARQUET_COLUMNS: tuple[str, ...] = (*REPORT_COLUMNS, *LINEAGE_COLUMNS)

#: The non-amount columns lead the report; the JSON writer relies on that split.
_HEAD_COLUMNS: tuple[str, ...] = REPORT_COLUMNS[: len(REPORT_COLUMNS) - len(AMOUNT_COLUMNS)]
assert REPORT_COLUMNS[len(_HEAD_COLUMNS) :] == AMOUNT_COLUMNS

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
def _decimal_writer(frame: _Frame) -> Iterator[_Frame]:
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


def _defused_text(report: pa.Table) -> pa.Table:
    """The report with every text column passed through `defuse_formulas` (CSV only)."""
    for name in TEXT_COLUMNS:
        index = report.schema.get_field_index(name)
        report = report.set_column(index, name, defuse_formulas(report.column(index)))
    return report


def _check_report(report: pa.Table) -> None:
    """The report columns are present with the types the files depend on."""
    missing = [name for name in REPORT_COLUMNS if name not in report.column_names]
    if missing:
        raise ValueError(f"report table lacks columns {missing}")
    for name in AMOUNT_COLUMNS:
        if report.schema.field(name).type != AMOUNT_TYPE:
            raise TypeError(f"{name}: expected {AMOUNT_TYPE}, got {report.schema.field(name).type}")
    for name in BOOL_COLUMNS:
        if report.schema.field(name).type != pa.bool_():
            raise TypeError(f"{name}: expected bool, got {report.schema.field(name).type}")


def _report_frame(report: pa.Table) -> pl.DataFrame:
    """The 33 report columns as polars, after `_check_report`."""
    _check_report(report)
    return cast(pl.DataFrame, pl.from_arrow(report.select(list(REPORT_COLUMNS))))


# --------------------------------------------------------------------------------- writers


def to_csv(report: pa.Table) -> bytes:
    """The report as CSV: UTF-8, comma, LF line ends, RFC 4180 quoting only where needed.

    Header = the 33 column names in order; booleans `TRUE`/`FALSE`; a null (Email) is an
    empty field; amounts in plain decimal notation. Only the 33 report columns are written.
    A text cell that starts like a spreadsheet formula gets a leading `'` (`defuse_formulas`).
    """
    _check_report(report)
    frame = _report_frame(_defused_text(report.select(list(REPORT_COLUMNS)))).with_columns(
        pl.col(name).cast(pl.String).str.to_uppercase() for name in BOOL_COLUMNS
    )
    buffer = io.BytesIO()
    with _decimal_writer(frame) as ready:
        ready.write_csv(
            buffer,
            include_header=True,
            separator=",",
            line_terminator=CSV_LINE_TERMINATOR,
            quote_char='"',
            quote_style="necessary",
            null_value="",
        )
    return buffer.getvalue()


def to_json(report: pa.Table) -> bytes:
    """The report as a JSON array of objects keyed by the 33 names, one object per line.

    Text is JSON strings, booleans `true`/`false`, a null Email `null`; amounts are JSON
    numbers with exactly the CSV's text. Each object is
    `{"userUUID":"…",…,"System Account":false ,"Total": 5.77 ,"Total Prefunding": 0 ,… }`:
    the spaces around amounts are insignificant JSON whitespace (RFC 8259 §2) that let
    polars' own writer print the decimals, instead of 22 M decimal-to-text casts first.

    One lazy polars query, written by the streaming engine while it computes the next rows:
    the 11 leading fields JSON-encoded as one piece, then per amount its key and the decimal.
    The text between two decimals is the same on every line, so it is one one-value
    Categorical cell (the writer prints those faster than repeated strings); an amount column
    with one value in every row (the retired columns, always 0) is folded into that text, and
    the closing ` }` rides on the line terminator.
    """
    frame = _report_frame(report)
    if frame.height == 0:
        return b"[]\n"
    fields: list[pl.Expr] = [
        pl.struct(list(_HEAD_COLUMNS)).struct.json_encode().str.head(-1).alias("\x00head")
    ]
    literal: list[str] = []  # constant text since the last cell, joined by the separator

    def flush() -> None:
        if literal:
            text = pl.lit(" ".join(literal)).cast(pl.Categorical)
            fields.append(text.alias(f"\x00text{len(fields)}"))
            literal.clear()

    for name in AMOUNT_COLUMNS:
        literal.append(f",{json.dumps(name)}:")
        constant = _constant_amount(report.column(name))
        if constant is None:
            flush()
            fields.append(pl.col(name))
        else:
            literal.append(constant)
    flush()
    buffer = io.BytesIO()
    buffer.write(b"[\n")
    # Small morsels: the JSON-encoded pieces of one morsel reuse the memory of the last one.
    with _decimal_writer(frame.lazy()) as ready, pl.Config(streaming_chunk_size=4096):
        ready.select(fields).sink_csv(
            buffer,
            include_header=False,
            separator=" ",
            line_terminator=" },\n",
            quote_style="never",
            null_value="null",
        )
    buffer.seek(-2, io.SEEK_END)  # the last object's ",\n"
    buffer.truncate()
    buffer.write(b"\n]\n")
    return buffer.getvalue()


def _constant_amount(values: pa.ChunkedArray) -> str | None:
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


def to_parquet(report: pa.Table) -> bytes:
    """The report as Parquet: the 33 typed columns (decimal128(38,20) amounts, boolean flags)
    followed by the lineage columns `report_date, source, snapshot_at, run_id`."""
    _check_report(report)
    missing = [name for name in LINEAGE_COLUMNS if name not in report.column_names]
    if missing:
        raise ValueError(f"report table lacks lineage columns {missing}")
    buffer = io.BytesIO()
    pq.write_table(report.select(list(PARQUET_COLUMNS)), buffer, compression="zstd")
    return buffer.getvalue()


# --------------------------------------------------------------------------------- readers


def read_csv_rows(data: bytes) -> list[dict[str, str]]:
    """CSV bytes -> one dict per row, every value as the text in the file ('' for empty)."""
    return list(csv.DictReader(io.StringIO(data.decode("utf-8"), newline="")))


def read_json_rows(data: bytes) -> list[dict[str, Any]]:
    """JSON bytes -> one dict per row; amounts as exact `Decimal`."""
    rows: list[dict[str, Any]] = json.loads(data, parse_float=Decimal, parse_int=Decimal)
    return rows


def read_parquet(data: bytes) -> pa.Table:
    """Parquet bytes -> the Arrow table with its stored types."""
    return pq.read_table(pa.BufferReader(data))
