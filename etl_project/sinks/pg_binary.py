"""PostgreSQL binary COPY data built column-wise from Arrow record batches (`pg_binary_chunks`):
no Python per row or per value, whatever the number of rows.

The binary COPY format (PostgreSQL docs, "COPY … Binary Format"): a signature, then per row an
int16 field count and per field an int32 byte length (-1 for NULL) followed by the type's
`*_send` representation, big-endian; an int16 -1 ends the data. Here every batch of rows is
encoded with NumPy / Arrow compute: the fields of one width in every row (numeric, date,
timestamp, bool, ints, floats without nulls, and text whose values all have one byte length,
like UUIDs) are written column by column into one row-major block, and the other fields are
joined onto it row-wise by Arrow's `binary_join_element_wise`. NUMERIC's binary form is
base-10000 digits; a decimal128's 128-bit unscaled integer is split into those digits exactly
with uint64 arithmetic (`pg_numeric`), so amounts never pass through a float or a string.
The binary form of each type is the one PostgreSQL's `*_recv` reads; which one applies is
taken from the target table's real column types (pg_attribute), so a column that is not what
the Arrow type suggests falls back to CSV rather than to a wrong encoding.
A stream of record batches is encoded batch by batch, so memory is a batch, not the load.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from etl_project.sinks.pg_numeric import Fixed, numeric_field, raw_values, template

#: Type OIDs (pg_type.oid, fixed for built-in types) the binary encoder writes.
BOOL, BYTEA, INT8, INT2, INT4, TEXT = 16, 17, 20, 21, 23, 25
FLOAT4, FLOAT8, BPCHAR, VARCHAR, DATE, TIMESTAMP, TIMESTAMPTZ, NUMERIC = (
    700, 701, 1042, 1043, 1082, 1114, 1184, 1700,
)  # fmt: skip
_TEXT_OIDS = frozenset({TEXT, VARCHAR, BPCHAR})
#: Upper bound of the Arrow bytes encoded at once (Arrow binary offsets are 32-bit).
_MAX_BATCH_BYTES = 1 << 26

_SIGNATURE = b"PGCOPY\n\xff\r\n\x00" + bytes(8)  # signature, flags, header extension length
_TRAILER = b"\xff\xff"
_PG_EPOCH_DAYS = 10_957  # 2000-01-01 in days since 1970-01-01
_PG_EPOCH_US = _PG_EPOCH_DAYS * 86_400_000_000
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


def binary_plan(data: pa.Table | pa.RecordBatch, oids: Sequence[int]) -> BinaryPlan | None:
    """The binary plan for `data` into columns of types `oids` (pg_type OIDs, in `data`'s
    order), or None when some column has no exact binary encoding here. For a stream, `data`
    is its first batch: the kinds hold for every batch (integers are range-checked per
    batch), and which fields are fixed-width only orders the columns (see `_encode_batch`)."""
    fields = []
    for index, (field, oid) in enumerate(zip(data.schema, oids, strict=True)):
        values = data.column(index)
        kind = _kind(field.type, oid, values)
        if kind is None:
            return None
        fixed = _is_fixed(kind, values)
        scale = field.type.scale if kind == "numeric" else 0
        fields.append(_Field(index, kind, fixed, scale))
    fields.sort(key=lambda f: not f.fixed)  # stable: table order otherwise
    return BinaryPlan(tuple(fields))


def _kind(type_: pa.DataType, oid: int, values: pa.Array | pa.ChunkedArray) -> str | None:
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


def _is_fixed(kind: str, values: pa.Array | pa.ChunkedArray) -> bool:
    """No nulls and one width in every row (text: every value as many bytes)."""
    if values.null_count:
        return False
    if kind != "text" or not len(values):
        return True
    lengths = pc.min_max(pc.binary_length(values)).as_py()
    return bool(lengths["min"] == lengths["max"])


def pg_binary_chunks(
    data: pa.Table | Iterable[pa.RecordBatch], plan: BinaryPlan, rows_per_chunk: int = 8192
) -> Iterator[bytes | memoryview]:
    """`data` (a table, or a stream of record batches read once) as PostgreSQL binary COPY
    data, columns in `plan.order`: the signature, one chunk per `rows_per_chunk` rows, then
    the trailer. Concatenated, the chunks are the whole COPY stream."""
    yield _SIGNATURE
    if isinstance(data, pa.Table):
        batches: Iterable[pa.RecordBatch] = data.to_batches(max_chunksize=rows_per_chunk)
    else:
        batches = _sliced(data, rows_per_chunk)
    for batch in batches:
        for part in _bounded(batch):
            yield _encode_batch(part, plan)
    yield _TRAILER


def _sliced(batches: Iterable[pa.RecordBatch], rows: int) -> Iterator[pa.RecordBatch]:
    """Each batch in zero-copy slices of at most `rows` rows."""
    for batch in batches:
        for start in range(0, batch.num_rows, rows):
            yield batch.slice(start, rows)


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
    """One record batch as binary COPY tuples: the leading fields that are fixed-width in this
    batch, for every row, in one row-major NumPy block; the other fields joined onto it
    row-wise by Arrow. The column order is the plan's in every batch."""
    rows = batch.num_rows
    lead = 0
    while lead < len(plan.fields) and _is_fixed(
        plan.fields[lead].kind, batch.column(plan.fields[lead].index)
    ):
        lead += 1
    fixed = [_fixed_field(f, batch.column(f.index)) for f in plan.fields[:lead]]
    head = len(plan.fields).to_bytes(2, "big") + b"".join(t for t, _ in fixed)
    width = len(head)
    block = np.empty((rows, width), np.uint8)
    block.view(f"V{width}")[:, 0] = np.frombuffer(head, f"V{width}")[0]
    at = 2
    for field_template, fill in fixed:
        fill(block[:, at + 4 : at + len(field_template)])
        at += len(field_template)
    pieces: list[pa.Array] = []
    for f in plan.fields[lead:]:
        pieces += _variable_field(f, batch.column(f.index))
    if not pieces:
        return block.data.cast("B")
    joined = pc.binary_join_element_wise(
        _binary_rows(block, rows, width), *pieces, pa.scalar(b"", pa.binary())
    )
    offsets = np.frombuffer(joined.buffers()[1], np.int32, rows + 1, joined.offset * 4)
    return memoryview(joined.buffers()[2]).cast("B")[offsets[0] : offsets[-1]]


def _binary_rows(data: np.ndarray, rows: int, width: int) -> pa.Array:
    """`rows` values of `width` bytes each, back to back in `data`, as an Arrow binary array
    (zero-copy)."""
    offsets = np.arange(0, (rows + 1) * width, width, dtype=np.int32)
    buffers = [None, pa.py_buffer(offsets), pa.py_buffer(data)]
    return pa.Array.from_buffers(pa.binary(), rows, buffers)


def _fixed_field(field: _Field, values: pa.Array) -> Fixed:
    """A fixed-width field of one batch as (template, fill), see `Fixed`. The payload of a
    null is arbitrary (`_variable_field` drops it)."""
    kind = field.kind
    if kind == "numeric":
        return numeric_field(values, field.scale)
    if kind == "text":
        values = _narrow(values)
        offsets = np.frombuffer(values.buffers()[1], np.int32, len(values) + 1, values.offset * 4)
        size = int(offsets[1] - offsets[0]) if len(values) else 0
        if size == 0:
            return bytes(4), lambda dest: None
        data = np.frombuffer(values.buffers()[2], f"V{size}", len(values), int(offsets[0]))

        def fill_text(dest: np.ndarray) -> None:
            dest.view(f"V{size}")[:, 0] = data

        return template(size), fill_text
    if kind == "bool":
        flags = pc.fill_null(values, False).to_numpy(zero_copy_only=False)

        def fill_bool(dest: np.ndarray) -> None:
            dest[:, 0] = flags

        return template(1), fill_bool
    numbers = _numbers(values, kind)
    dtype = np.dtype(_NUMBERS[kind])

    def fill_number(dest: np.ndarray) -> None:
        dest.view(dtype)[:, 0] = numbers

    return template(dtype.itemsize), fill_number


def _narrow(values: pa.Array) -> pa.Array:
    """Text or bytes with 32-bit offsets, as raw bytes (binary)."""
    if pa.types.is_large_string(values.type) or pa.types.is_large_binary(values.type):
        values = values.cast(pa.string() if pa.types.is_large_string(values.type) else pa.binary())
    return values.view(pa.binary()) if pa.types.is_string(values.type) else values


def _numbers(values: pa.Array, kind: str) -> np.ndarray:
    """The values of a date, timestamp, integer or float column as NumPy, PostgreSQL's way
    (days and microseconds since 2000-01-01); the slot of a null is arbitrary. Integers are
    cast to the column's width with Arrow's safe cast: a value out of its range raises
    `pa.ArrowInvalid` instead of wrapping (a stream's later batch may hold one)."""
    if kind == "date":
        return raw_values(values, np.dtype(np.int32)) - np.int32(_PG_EPOCH_DAYS)
    if kind == "timestamp":
        return raw_values(values, np.dtype(np.int64)) - np.int64(_PG_EPOCH_US)
    if kind.startswith("int"):
        bits = int(kind[3:])
        exact = values.cast({16: pa.int16(), 32: pa.int32(), 64: pa.int64()}[bits])
        return raw_values(exact, np.dtype(f"int{bits}"))
    target = pa.float32() if kind == "float32" else pa.float64()
    return raw_values(values.cast(target, safe=False), np.dtype(target.to_pandas_dtype()))


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
