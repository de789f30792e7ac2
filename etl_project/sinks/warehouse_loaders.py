"""Bulk loaders of the warehouse sink: Arrow rows into one table, inside the caller's
transaction. DuckDB ingests the Arrow table directly; PostgreSQL (psycopg 3) takes
`COPY … FROM STDIN (FORMAT binary)` built column-wise from the Arrow buffers (`pg_binary_chunks`,
no Python per row or per value), or CSV text from pyarrow's writer for a column type the binary
encoder does not cover; anything else gets `executemany`.

The binary COPY format (PostgreSQL docs, "COPY … Binary Format"): a signature, then per row an
int16 field count and per field an int32 byte length (-1 for NULL) followed by the type's
`*_send` representation, big-endian; an int16 -1 ends the data. Here every batch of rows is
encoded with NumPy / Arrow compute: the fields of one width in every row (numeric, date,
timestamp, bool, ints, floats without nulls, and text whose values all have one byte length,
like UUIDs) are written column by column into one row-major block, and the other fields are
joined onto it row-wise by Arrow's `binary_join_element_wise`. NUMERIC's binary form is
base-10000 digits; a decimal128's 128-bit unscaled integer is split into those digits exactly
with uint64 arithmetic (`_numeric_field`), so amounts never pass through a float or a string.
The binary form of each type is the one PostgreSQL's `*_recv` reads; which one applies is
taken from the target table's real column types (pg_attribute), so a column that is not what
the Arrow type suggests falls back to CSV rather than to a wrong encoding.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import suppress
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import sqlalchemy as sa

from etl_project.sinks.warehouse_tables import csv_chunks

#: Loads `data` (SQL column names) into `table` on an open connection.
Loader = Callable[[sa.Connection, sa.Table, pa.Table], None]


def load_duckdb(conn: sa.Connection, table: sa.Table, data: pa.Table) -> None:
    """Register the Arrow table on the raw DuckDB connection and INSERT … SELECT from it.

    DuckDB scans the Arrow buffers itself (zero-copy, in its own threads): no Python object is
    made per row or per value, and decimal128(38,20) lands in DECIMAL(38,20) exactly."""
    import duckdb

    prep = conn.dialect.identifier_preparer
    raw: Any = conn.connection.driver_connection
    view = f"_arrow_{uuid.uuid4().hex}"
    cols = ", ".join(prep.quote(n) for n in data.column_names)
    raw.register(view, data)
    try:
        conn.exec_driver_sql(
            f"INSERT INTO {prep.format_table(table)} ({cols}) SELECT {cols} FROM {view}"
        )
    finally:
        with suppress(duckdb.Error):  # after a failed INSERT the rollback drops the view anyway
            raw.unregister(view)


def load_postgres_copy(conn: sa.Connection, table: sa.Table, data: pa.Table) -> None:
    """COPY `data` into `table` on the psycopg 3 connection of `conn` (its open transaction).

    Binary COPY (`pg_binary_chunks`) when every column's type has a binary encoder here and the
    client encoding is UTF-8; else CSV (`csv_chunks`). Either way a queued writer sends one
    chunk while the next one is encoded, and the server's errors surface as SQLAlchemy's."""
    from psycopg.copy import QueuedLibpqWriter

    prep = conn.dialect.identifier_preparer
    target = prep.format_table(table)
    raw: Any = conn.connection.driver_connection
    dbapi_error = conn.dialect.loaded_dbapi.Error
    sql = _TYPES_SQL
    try:
        plan = _binary_plan(raw, target, data) if data.num_columns else None
        if plan is not None:
            cols = ", ".join(prep.quote(data.column_names[i]) for i in plan.order)
            sql = f"COPY {target} ({cols}) FROM STDIN (FORMAT binary)"
            chunks: Iterator[Any] = pg_binary_chunks(data, plan)
        else:
            cols = ", ".join(prep.quote(n) for n in data.column_names)
            sql = f"COPY {target} ({cols}) FROM STDIN (FORMAT csv, ENCODING 'UTF8')"
            chunks = csv_chunks(data)
        with raw.cursor() as cur, cur.copy(sql, writer=QueuedLibpqWriter(cur)) as copy:
            for chunk in chunks:
                copy.write(chunk)
    except dbapi_error as exc:  # the same exception types as SQLAlchemy's own statements
        raise sa.exc.DBAPIError.instance(sql, None, exc, dbapi_error, dialect=conn.dialect) from exc


def load_executemany(conn: sa.Connection, table: sa.Table, data: pa.Table) -> None:
    """Portable fallback: batched executemany of Python values (Decimal amounts)."""
    for batch in data.to_batches(max_chunksize=10_000):
        conn.execute(table.insert(), batch.to_pylist())


# ------------------------------------------------------------------ PostgreSQL binary COPY

#: Type OIDs (pg_type.oid, fixed for built-in types) the binary encoder writes.
BOOL, BYTEA, INT8, INT2, INT4, TEXT = 16, 17, 20, 21, 23, 25
FLOAT4, FLOAT8, BPCHAR, VARCHAR, DATE, TIMESTAMP, TIMESTAMPTZ, NUMERIC = (
    700, 701, 1042, 1043, 1082, 1114, 1184, 1700,
)  # fmt: skip
_TEXT_OIDS = frozenset({TEXT, VARCHAR, BPCHAR})
#: The column types of a table (`%s`: its quoted, search-path-relative name; temp tables too).
_TYPES_SQL = (
    "SELECT attname, atttypid::int FROM pg_attribute "
    "WHERE attrelid = to_regclass(%s) AND attnum > 0 AND NOT attisdropped"
)
#: Upper bound of the Arrow bytes encoded at once (Arrow binary offsets are 32-bit).
_MAX_BATCH_BYTES = 1 << 26

_SIGNATURE = b"PGCOPY\n\xff\r\n\x00" + bytes(8)  # signature, flags, header extension length
_TRAILER = b"\xff\xff"
_PG_EPOCH_DAYS = 10_957  # 2000-01-01 in days since 1970-01-01
_PG_EPOCH_US = _PG_EPOCH_DAYS * 86_400_000_000
_NUMERIC_NEG = 0x4000
_E8 = np.uint64(10**8)
#: 2**64 in base 10**8, least significant first: 2**64 = 1844·10**16 + 67440737·10**8 + 9551616.
_TWO64 = tuple(np.uint64(d) for d in (9_551_616, 67_440_737, 1_844))
#: Big-endian NumPy type of the fixed-width kinds whose payload is one number.
_NUMBERS = {
    "date": ">i4",
    "timestamp": ">i8",
    "int16": ">i2",
    "int32": ">i4",
    "int64": ">i8",
    "float32": ">f4",
    "float64": ">f8",
}

#: (template, fill) of a fixed-width field in one batch: `template` is the field as it is in
#: every row (int32 length, then the payload with its constant parts set) and `fill` writes
#: the rest of the payload into a (rows, payload width) uint8 view.
_Fixed = tuple[bytes, Callable[[np.ndarray], None]]


@dataclass(frozen=True)
class _Field:
    """How one column travels: Arrow index, `kind` (see `_kind`), whether it goes into the
    row-major block of fixed-width fields, and for NUMERIC the Arrow decimal's scale."""

    index: int
    kind: str
    fixed: bool  # no nulls and one width in every row (text: every value as many bytes)
    scale: int = 0


@dataclass(frozen=True)
class BinaryPlan:
    """The fields in COPY column order (the fixed-width ones first) and their encodings."""

    fields: tuple[_Field, ...]

    @property
    def order(self) -> list[int]:
        """Arrow column indexes in COPY column order."""
        return [f.index for f in self.fields]


def _binary_plan(raw: Any, target: str, data: pa.Table) -> BinaryPlan | None:
    """The binary plan for `data` into the table `target` (quoted name), from the column types
    the table really has; None when a type has no binary encoder here (then CSV is used)."""
    if str(getattr(raw.info, "encoding", "")).replace("-", "").lower() != "utf8":
        return None  # binary text fields are read in the client encoding
    with raw.cursor() as cur:
        cur.execute(_TYPES_SQL, (target,))
        oids: dict[str, int] = dict(cur.fetchall())
    return binary_plan(data, [oids.get(n, 0) for n in data.column_names])


def binary_plan(data: pa.Table, oids: Sequence[int]) -> BinaryPlan | None:
    """The binary plan for `data` into columns of types `oids` (pg_type OIDs, in `data`'s
    order), or None when some column has no exact binary encoding here."""
    fields = []
    for index, (field, oid) in enumerate(zip(data.schema, oids, strict=True)):
        values = data.column(index)
        kind = _kind(field.type, oid, values)
        if kind is None:
            return None
        fixed = values.null_count == 0
        if fixed and kind == "text" and len(values):
            lengths = pc.min_max(pc.binary_length(values)).as_py()
            fixed = lengths["min"] == lengths["max"]
        scale = field.type.scale if kind == "numeric" else 0
        fields.append(_Field(index, kind, fixed, scale))
    fields.sort(key=lambda f: not f.fixed)  # stable: table order otherwise
    return BinaryPlan(tuple(fields))


def _kind(type_: pa.DataType, oid: int, values: pa.ChunkedArray) -> str | None:
    """The encoder of Arrow `type_` into PostgreSQL type `oid`, None if there is none."""
    t = pa.types
    if oid in _TEXT_OIDS and (t.is_string(type_) or t.is_large_string(type_)):
        return "text"
    if oid == BYTEA and (t.is_binary(type_) or t.is_large_binary(type_)):
        return "text"  # the same bytes on the wire
    if oid == NUMERIC and t.is_decimal128(type_):
        return "numeric" if type_.scale >= 0 else None
    if oid == BOOL and t.is_boolean(type_):
        return "bool"
    if oid == DATE and t.is_date32(type_):
        return "date"
    if t.is_timestamp(type_) and type_.unit == "us":
        zoned = type_.tz is not None
        return "timestamp" if oid == (TIMESTAMPTZ if zoned else TIMESTAMP) else None
    if oid in (INT2, INT4, INT8) and t.is_integer(type_):
        bits = {INT2: 16, INT4: 32, INT8: 64}[oid]
        if type_.bit_width < bits or (type_.bit_width == bits and t.is_signed_integer(type_)):
            return f"int{bits}"
        low, high = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
        bounds = pc.min_max(values).as_py()
        inside = bounds["min"] is None or (low <= bounds["min"] and bounds["max"] <= high)
        return f"int{bits}" if inside else None  # out of range: let the server say so
    if oid == FLOAT8 and t.is_floating(type_) and type_.bit_width >= 32:
        return "float64"
    if oid == FLOAT4 and t.is_float32(type_):
        return "float32"
    return None


def pg_binary_chunks(
    data: pa.Table, plan: BinaryPlan, rows_per_chunk: int = 8192
) -> Iterator[bytes | memoryview]:
    """`data` as PostgreSQL binary COPY data, columns in `plan.order`: the signature, one
    chunk per `rows_per_chunk` rows, then the trailer. Concatenated, the chunks are the
    whole COPY stream."""
    yield _SIGNATURE
    for batch in data.to_batches(max_chunksize=rows_per_chunk):
        for part in _bounded(batch):
            yield _encode_batch(part, plan)
    yield _TRAILER


def _bounded(batch: pa.RecordBatch) -> Iterator[pa.RecordBatch]:
    """`batch` in row slices of at most `_MAX_BATCH_BYTES` of Arrow data (one row may be more:
    PostgreSQL caps a field at 1 GB anyway); none empty."""
    if batch.num_rows > 1 and batch.nbytes > _MAX_BATCH_BYTES:
        half = batch.num_rows // 2
        yield from _bounded(batch.slice(0, half))
        yield from _bounded(batch.slice(half))
    elif batch.num_rows:
        yield batch


def _encode_batch(batch: pa.RecordBatch, plan: BinaryPlan) -> memoryview:
    """One record batch as binary COPY tuples: the fixed-width fields of every row in one
    row-major NumPy block, the other fields joined onto it row-wise by Arrow."""
    rows = batch.num_rows
    fixed = [_fixed_field(f, batch.column(f.index)) for f in plan.fields if f.fixed]
    template = len(plan.fields).to_bytes(2, "big") + b"".join(t for t, _ in fixed)
    width = len(template)
    block = np.empty((rows, width), np.uint8)
    block.view(f"V{width}")[:, 0] = np.frombuffer(template, f"V{width}")[0]
    at = 2
    for field_template, fill in fixed:
        fill(block[:, at + 4 : at + len(field_template)])
        at += len(field_template)
    pieces: list[pa.Array] = []
    for f in plan.fields:
        if not f.fixed:
            pieces += _variable_field(f, batch.column(f.index))
    if not pieces:
        return block.data.cast("B")
    head = _binary_rows(block, rows, width)
    joined = pc.binary_join_element_wise(head, *pieces, pa.scalar(b"", pa.binary()))
    offsets = np.frombuffer(joined.buffers()[1], np.int32, rows + 1, joined.offset * 4)
    return memoryview(joined.buffers()[2]).cast("B")[offsets[0] : offsets[-1]]


def _binary_rows(data: np.ndarray, rows: int, width: int) -> pa.Array:
    """`rows` values of `width` bytes each, back to back in `data`, as an Arrow binary array
    (zero-copy)."""
    offsets = np.arange(0, (rows + 1) * width, width, dtype=np.int32)
    buffers = [None, pa.py_buffer(offsets), pa.py_buffer(data)]
    return pa.Array.from_buffers(pa.binary(), rows, buffers)


def _fixed_field(field: _Field, values: pa.Array) -> _Fixed:
    """A fixed-width field of one batch as (template, fill), see `_Fixed`. The payload of a
    null is arbitrary (`_variable_field` drops it)."""
    kind = field.kind
    if kind == "numeric":
        return _numeric_field(values, field.scale)
    if kind == "text":
        values = _narrow(values)
        offsets = np.frombuffer(values.buffers()[1], np.int32, len(values) + 1, values.offset * 4)
        size = int(offsets[1] - offsets[0]) if len(values) else 0
        if size == 0:
            return bytes(4), lambda dest: None
        data = np.frombuffer(values.buffers()[2], f"V{size}", len(values), int(offsets[0]))

        def fill_text(dest: np.ndarray) -> None:
            dest.view(f"V{size}")[:, 0] = data

        return _template(size), fill_text
    if kind == "bool":
        flags = pc.fill_null(values, False).to_numpy(zero_copy_only=False)

        def fill_bool(dest: np.ndarray) -> None:
            dest[:, 0] = flags

        return _template(1), fill_bool
    numbers = _numbers(values, kind)
    dtype = np.dtype(_NUMBERS[kind])

    def fill_number(dest: np.ndarray) -> None:
        dest.view(dtype)[:, 0] = numbers

    return _template(dtype.itemsize), fill_number


def _template(size: int, payload: bytes = b"") -> bytes:
    """A field's int32 length and its payload (zero bytes after `payload`)."""
    return size.to_bytes(4, "big") + payload.ljust(size, b"\x00")


def _narrow(values: pa.Array) -> pa.Array:
    """Text or bytes with 32-bit offsets, as raw bytes (binary)."""
    if pa.types.is_large_string(values.type) or pa.types.is_large_binary(values.type):
        values = values.cast(pa.string() if pa.types.is_large_string(values.type) else pa.binary())
    return values.view(pa.binary()) if pa.types.is_string(values.type) else values


def _numbers(values: pa.Array, kind: str) -> np.ndarray:
    """The values of a date, timestamp, integer or float column as NumPy, PostgreSQL's way
    (days and microseconds since 2000-01-01); the slot of a null is arbitrary."""
    if kind == "date":
        return _raw(values, np.dtype(np.int32)) - np.int32(_PG_EPOCH_DAYS)
    if kind == "timestamp":
        return _raw(values, np.dtype(np.int64)) - np.int64(_PG_EPOCH_US)
    target = pa.float32() if kind == "float32" else pa.float64() if kind == "float64" else None
    values = values.cast(target or pa.int64(), safe=False)  # ints: range checked in `_kind`
    return _raw(values, np.dtype(target.to_pandas_dtype() if target else np.int64))


def _raw(values: pa.Array, dtype: np.dtype[Any], per_value: int = 1) -> np.ndarray:
    """The data buffer of a fixed-width Arrow array as `per_value` NumPy values per value
    (zeros where Arrow has no buffer, as it may for an all-null array)."""
    count = per_value * len(values)
    buffer = values.buffers()[1]
    if buffer is None:
        return np.zeros(count, dtype)
    return np.frombuffer(buffer, dtype, count, values.offset * per_value * dtype.itemsize)


def _variable_field(field: _Field, values: pa.Array) -> list[pa.Array]:
    """A field outside the fixed-width block as Arrow binary arrays to be joined row-wise:
    [int32 lengths, payloads], or one array of whole fields; a null is length -1 alone."""
    valid = None if values.null_count == 0 else values.is_valid().to_numpy(zero_copy_only=False)
    rows = len(values)
    if field.kind == "text":
        values = _narrow(values)
        offsets = np.frombuffer(values.buffers()[1], np.int32, rows + 1, values.offset * 4)
        lengths = np.diff(offsets)
        if valid is not None:
            lengths = np.where(valid, lengths, -1)
            values = pc.fill_null(values, pa.scalar(b"", pa.binary()))
        return [_binary_rows(lengths.astype(">i4"), rows, 4), values]
    template, fill = _fixed_field(field, values)  # a fixed-width type with nulls
    whole = np.empty((rows, len(template)), np.uint8)
    whole.view(f"V{len(template)}")[:, 0] = np.frombuffer(template, f"V{len(template)}")[0]
    fill(whole[:, 4:])
    if valid is None:
        return [_binary_rows(whole, rows, len(template))]
    whole[~valid, :4] = 0xFF  # length -1
    keep = np.ones(whole.shape, bool)
    keep[~valid, 4:] = False
    sizes = np.where(valid, len(template), 4).astype(np.int32)
    offsets = np.concatenate([np.zeros(1, np.int32), np.cumsum(sizes, dtype=np.int32)])
    return [
        pa.Array.from_buffers(
            pa.binary(), rows, [None, pa.py_buffer(offsets), pa.py_buffer(whole[keep])]
        )
    ]


def _numeric_field(values: pa.Array, scale: int) -> _Fixed:
    """decimal128(_, scale) values as NUMERIC `numeric_send` fields, exactly.

    A payload is int16 ndigits, weight, sign, dscale, then `ndigits` base-10000 digits, most
    significant first. Within a batch every value gets the same digit positions (leading and
    trailing zero digits included, which `numeric_recv` strips), so the field has one width:
    ndigits covers the batch's largest value, less the low digits that are zero in all rows.
    The 128-bit magnitude hi·2**64 + lo goes to base 10**8 by splitting hi and lo into base
    10**8 and multiplying hi by 2**64 written in base 10**8 (every partial sum < 2**63)."""
    rows = len(values)
    words = _raw(values, np.dtype(np.uint64), per_value=2)  # little-endian 128-bit integers
    lo, hi = words[0::2], words[1::2]
    negative = hi.view(np.int64) < 0
    signed = bool(negative.any())
    if signed:  # two's complement -> magnitude
        lo = np.where(negative, ~lo + np.uint64(1), lo)
        hi = np.where(negative, ~hi + (lo == 0), hi)
    chunks = _base_e8(lo)  # base 10**8, least significant first
    top = int(hi.max()) if rows else 0
    if top:
        highs = [hi] if top < _E8 else _base_e8(hi)
        while len(chunks) < len(highs) + 3:
            chunks.append(np.zeros(rows, np.uint64))
        for i, h in enumerate(highs):  # += hi * 2**64
            for j, two64 in enumerate(_TWO64):
                chunks[i + j] += h * two64
    pad = -scale % 4  # align the digits on the decimal point: shift left by `pad` digits
    if pad:
        chunks = [chunk * np.uint64(10**pad) for chunk in chunks]
        chunks.append(np.zeros(rows, np.uint64))
    for i in range(len(chunks) - 1):  # carry
        carry = chunks[i] // _E8
        chunks[i] -= carry * _E8
        chunks[i + 1] += carry
    while chunks and not chunks[-1].any():  # zero in every row: leading zero digits
        chunks.pop()
    weight = 2 * len(chunks) - 1 - (scale + pad) // 4 if chunks else 0
    low = 0
    while low < len(chunks) and not chunks[low].any():  # trailing zero digits
        low += 1
    chunks = chunks[low:]
    ndigits = 2 * len(chunks)
    header = b"".join(n.to_bytes(2, "big", signed=True) for n in (ndigits, weight, 0, scale))

    def fill(dest: np.ndarray) -> None:
        if signed:
            dest[:, 4:6].view(">u2")[:, 0] = np.where(negative, _NUMERIC_NEG, 0)
        if chunks:
            digits = dest[:, 8:].view(">u4")  # two base-10000 digits per base-10**8 chunk
            for column, chunk in enumerate(reversed(chunks)):
                pair = chunk.astype(np.uint32)  # < 10**8
                high = pair // np.uint32(10_000)
                pair -= high * np.uint32(10_000)
                pair |= high << np.uint32(16)
                digits[:, column] = pair

    return _template(8 + 2 * ndigits, header), fill


def _base_e8(words: np.ndarray) -> list[np.ndarray]:
    """uint64 values as three base-10**8 digits, least significant first."""
    q1 = words // _E8
    q2 = q1 // _E8
    return [words - q1 * _E8, q1 - q2 * _E8, q2]
