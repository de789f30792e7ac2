"""The report's three files (spec §1): CSV, JSON and Parquet, plus readers for tests and the CLI.

The writers take the report batch by batch (`write_report` reads the batches once and feeds
all three), so a report of millions of rows is never one table nor one `bytes` in memory:
memory is a batch, whatever the report's size. Every rule is per row, so the bytes do not
depend on how the rows are split into batches; `to_csv`/`to_json`/`to_parquet` give the same
bytes for a small in-memory report.

All writers are columnar (polars / pyarrow); no row is visited in Python. How values become
text (exact plain-decimal amounts, formula-safe CSV cells) is `report.text_rules`.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Mapping, Sequence
from decimal import Decimal
from typing import Any, BinaryIO, cast

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

from etl_project.report.batches import BATCH_ROWS
from etl_project.report.columns import (
    AMOUNT_COLUMNS,
    AMOUNT_TYPE,
    BOOL_COLUMNS,
    LINEAGE_COLUMNS,
    REPORT_COLUMNS,
)
from etl_project.report.text_rules import (
    FORMULA_GUARD,
    FORMULA_LEADS,
    amount_text,
    constant_amount_text,
    decimal_writer,
    defuse_formulas,
    defused_text,
)

__all__ = [
    "BATCH_ROWS",
    "FORMULA_GUARD",
    "FORMULA_LEADS",
    "CsvWriter",
    "JsonWriter",
    "ParquetWriter",
    "amount_text",
    "defuse_formulas",
    "read_csv_rows",
    "read_json_rows",
    "read_parquet",
    "to_csv",
    "to_json",
    "to_parquet",
    "write_report",
]

#: CSV line ending: LF (RFC 4180 names CRLF; LF is what every CSV reader accepts and what
#: the settlement platform's own export uses). Fields are quoted only when needed.
CSV_LINE_TERMINATOR = "\n"
#: Columns of the Parquet file: the 33 report columns, then the lineage columns.
PARQUET_COLUMNS: tuple[str, ...] = (*REPORT_COLUMNS, *LINEAGE_COLUMNS)

#: The non-amount columns lead the report; the JSON writer relies on that split.
_HEAD_COLUMNS: tuple[str, ...] = REPORT_COLUMNS[: len(REPORT_COLUMNS) - len(AMOUNT_COLUMNS)]
assert REPORT_COLUMNS[len(_HEAD_COLUMNS) :] == AMOUNT_COLUMNS


def _check_schema(schema: pa.Schema, columns: Sequence[str] = REPORT_COLUMNS) -> None:
    """`columns` are present, and the report columns have the types the files depend on."""
    missing = [name for name in columns if name not in schema.names]
    if missing:
        raise ValueError(f"report table lacks columns {missing}")
    for name in AMOUNT_COLUMNS:
        if schema.field(name).type != AMOUNT_TYPE:
            raise TypeError(f"{name}: expected {AMOUNT_TYPE}, got {schema.field(name).type}")
    for name in BOOL_COLUMNS:
        if schema.field(name).type != pa.bool_():
            raise TypeError(f"{name}: expected bool, got {schema.field(name).type}")


def _report_frame(report: pa.Table) -> pl.DataFrame:
    """The 33 report columns as polars."""
    return cast(pl.DataFrame, pl.from_arrow(report.select(list(REPORT_COLUMNS))))


# --------------------------------------------------------------------------------- writers
# Each takes the report batch by batch (`write`); `close` ends the file.


class CsvWriter:
    """The report as CSV: UTF-8, comma, LF line ends, RFC 4180 quoting only where needed.

    Header = the 33 column names in order; booleans `TRUE`/`FALSE`; a null (Email) is an
    empty field; amounts in plain decimal notation. Only the 33 report columns are written.
    A text cell that starts like a spreadsheet formula gets a leading `'` (`defuse_formulas`).
    """

    def __init__(self, sink: BinaryIO, schema: pa.Schema) -> None:
        _check_schema(schema)
        self._sink, self._schema, self._header = sink, schema, True

    def write(self, batch: pa.RecordBatch | pa.Table) -> None:
        table = defused_text(_table(batch).select(list(REPORT_COLUMNS)))
        frame = _report_frame(table).with_columns(
            pl.col(name).cast(pl.String).str.to_uppercase() for name in BOOL_COLUMNS
        )
        with decimal_writer(frame) as ready:
            ready.write_csv(
                self._sink,
                include_header=self._header,
                separator=",",
                line_terminator=CSV_LINE_TERMINATOR,
                quote_char='"',
                quote_style="necessary",
                null_value="",
            )
        self._header = False

    def close(self) -> None:
        if self._header:  # no batch at all: the header alone
            self.write(self._schema.empty_table())


class JsonWriter:
    """The report as a JSON array of objects keyed by the 33 names, one object per line.

    Text is JSON strings, booleans `true`/`false`, a null Email `null`; amounts are JSON
    numbers with exactly the CSV's text. Each object is
    `{"userUUID":"…",…,"System Account":false ,"Total": 5.77 ,"Total Prefunding": 0 ,… }`:
    the spaces around amounts are insignificant JSON whitespace (RFC 8259 §2) that let
    polars' own writer print the decimals, instead of 22 M decimal-to-text casts first.

    Per batch one lazy polars query, written by the streaming engine while it computes the
    next rows: the 11 leading fields JSON-encoded as one piece, then per amount its key and
    the decimal. The text between two
    decimals is the same on every line, so it is one one-value Categorical cell (the writer
    prints those faster than repeated strings); an amount column with one value in every row
    of the batch (the retired columns, always 0) is folded into that text, and the closing
    ` },` rides on the line terminator. The last object's `,` is taken back in `close`, so
    the sink must be seekable.
    """

    def __init__(self, sink: BinaryIO, schema: pa.Schema) -> None:
        _check_schema(schema)
        self._sink, self._rows = sink, 0

    def write(self, batch: pa.RecordBatch | pa.Table) -> None:
        report = _table(batch)
        if report.num_rows == 0:
            return
        head = pl.struct(list(_HEAD_COLUMNS)).struct.json_encode().str.strip_suffix("}")
        fields: list[pl.Expr] = [head.alias("\x00head")]
        literal: list[str] = []  # constant text since the last cell, joined by the separator

        def flush() -> None:
            if literal:
                text = pl.lit(" ".join(literal)).cast(pl.Categorical)
                fields.append(text.alias(f"\x00text{len(fields)}"))
                literal.clear()

        for name in AMOUNT_COLUMNS:
            literal.append(f",{json.dumps(name)}:")
            constant = constant_amount_text(report.column(name))
            if constant is None:
                flush()
                fields.append(pl.col(name))
            else:
                literal.append(constant)
        flush()
        if not self._rows:
            self._sink.write(b"[\n")
        # Small morsels: the JSON-encoded pieces of one morsel reuse the memory of the last one.
        with (
            decimal_writer(_report_frame(report).lazy()) as ready,
            pl.Config(streaming_chunk_size=4096),
        ):
            ready.select(fields).sink_csv(
                self._sink,
                include_header=False,
                separator=" ",
                line_terminator=" },\n",
                quote_style="never",
                null_value="null",
            )
        self._rows += report.num_rows

    def close(self) -> None:
        if self._rows:
            self._sink.seek(-2, io.SEEK_END)  # the last object's ",\n"
            self._sink.truncate()
            self._sink.write(b"\n]\n")
        else:
            self._sink.write(b"[]\n")


class ParquetWriter:
    """The report as Parquet: the 33 typed columns (decimal128(38,20) amounts, boolean flags)
    followed by the lineage columns `report_date, source, snapshot_at, run_id`; zstd, one row
    group per batch."""

    def __init__(self, sink: BinaryIO, schema: pa.Schema) -> None:
        _check_schema(schema, PARQUET_COLUMNS)
        self._schema = pa.schema([schema.field(name) for name in PARQUET_COLUMNS])
        self._writer = pq.ParquetWriter(sink, self._schema, compression="zstd")

    def write(self, batch: pa.RecordBatch | pa.Table) -> None:
        self._writer.write_table(_table(batch).select(list(PARQUET_COLUMNS)).cast(self._schema))

    def close(self) -> None:
        self._writer.close()


#: The writer of each file format.
WRITERS: dict[str, type[CsvWriter | JsonWriter | ParquetWriter]] = {
    "csv": CsvWriter,
    "json": JsonWriter,
    "parquet": ParquetWriter,
}


def write_report(
    batches: Iterable[pa.RecordBatch], schema: pa.Schema, sinks: Mapping[str, BinaryIO]
) -> int:
    """Write the report into one sink per format ("csv", "json", "parquet"), reading
    `batches` (of `schema`) once; returns the rows written. Memory: a batch, not the report."""
    writers = [WRITERS[fmt](sink, schema) for fmt, sink in sinks.items()]
    rows = 0
    for batch in batches:
        for writer in writers:
            writer.write(batch)
        rows += batch.num_rows
    for writer in writers:
        writer.close()
    return rows


def _to_bytes(fmt: str, report: pa.Table) -> bytes:
    buffer = io.BytesIO()
    write_report(report.to_batches(max_chunksize=BATCH_ROWS), report.schema, {fmt: buffer})
    return buffer.getvalue()


def to_csv(report: pa.Table) -> bytes:
    """The report as CSV bytes (`CsvWriter`): for small reports and tests."""
    return _to_bytes("csv", report)


def to_json(report: pa.Table) -> bytes:
    """The report as JSON bytes (`JsonWriter`): for small reports and tests."""
    return _to_bytes("json", report)


def to_parquet(report: pa.Table) -> bytes:
    """The report as Parquet bytes (`ParquetWriter`): for small reports and tests."""
    return _to_bytes("parquet", report)


def _table(batch: pa.RecordBatch | pa.Table) -> pa.Table:
    return batch if isinstance(batch, pa.Table) else pa.Table.from_batches([batch])


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
