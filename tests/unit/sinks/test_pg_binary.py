"""PostgreSQL binary COPY encoder (`pg_binary.pg_binary_chunks`), without a database:
the stream is decoded by an independent reference decoder written from the PostgreSQL docs
(COPY binary format; `numeric_send`, `date_send`, `timestamp_send`, …) and compared with the
Arrow input value by value. The same encoder against a real server is in
tests/integration/test_warehouse_postgres.py."""

from __future__ import annotations

import random
import struct
from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal, localcontext
from typing import Any

import pyarrow as pa
import pytest

from etl_project.report.columns import AMOUNT_TYPE
from etl_project.sinks import pg_binary as wl
from etl_project.sinks.pg_binary import (
    BOOL,
    BYTEA,
    DATE,
    FLOAT4,
    FLOAT8,
    INT2,
    INT4,
    INT8,
    NUMERIC,
    TEXT,
    TIMESTAMP,
    TIMESTAMPTZ,
    VARCHAR,
    binary_plan,
    pg_binary_chunks,
)

PG_EPOCH = date(2000, 1, 1)
PG_EPOCH_TS = datetime(2000, 1, 1)
BRIEF = (  # the amounts the product issue names
    Decimal("-0.0009056832839642471"),
    Decimal("0.00000000346"),
    Decimal("12345678901234567.12345678901234567890"),
    Decimal(0),
)


# ------------------------------------------------------------------ reference decoder


def _numeric(payload: bytes) -> Decimal:
    ndigits, weight, sign, dscale = struct.unpack(">hhHH", payload[:8])
    digits = struct.unpack(f">{ndigits}h", payload[8:])
    assert len(payload) == 8 + 2 * ndigits
    assert all(0 <= d < 10_000 for d in digits), digits
    assert sign in (0x0000, 0x4000)
    assert dscale <= 0x3FFF
    with localcontext(prec=200):  # exact: no rounding anywhere
        value = sum(
            (Decimal(d) * Decimal(10_000) ** (weight - i) for i, d in enumerate(digits)),
            Decimal(0),
        )
        # numeric_recv truncates to dscale digits: nothing may hide behind them
        assert value == value.quantize(Decimal(1).scaleb(-dscale))
        return -value if sign == 0x4000 else +value


def _value(oid: int, payload: bytes) -> Any:
    if oid == NUMERIC:
        return _numeric(payload)
    if oid in (TEXT, VARCHAR):
        return payload.decode("utf-8")
    if oid == BYTEA:
        return payload
    if oid == BOOL:
        assert payload in (b"\x00", b"\x01")
        return payload == b"\x01"
    if oid == DATE:
        return PG_EPOCH + timedelta(days=struct.unpack(">i", payload)[0])
    if oid in (TIMESTAMP, TIMESTAMPTZ):
        moment = PG_EPOCH_TS + timedelta(microseconds=struct.unpack(">q", payload)[0])
        return moment.replace(tzinfo=UTC) if oid == TIMESTAMPTZ else moment
    if oid in (INT2, INT4, INT8):
        return int.from_bytes(payload, "big", signed=True)
    if oid == FLOAT8:
        return struct.unpack(">d", payload)[0]
    if oid == FLOAT4:
        return struct.unpack(">f", payload)[0]
    raise AssertionError(oid)


def decode(stream: bytes, oids: Sequence[int]) -> list[tuple[Any, ...]]:
    """Rows of a binary COPY stream whose columns have the types `oids`."""
    assert stream[:11] == b"PGCOPY\n\xff\r\n\x00"
    flags, extension = struct.unpack(">iI", stream[11:19])
    assert (flags, extension) == (0, 0)
    at, rows = 19, []
    while True:
        (count,) = struct.unpack(">h", stream[at : at + 2])
        at += 2
        if count == -1:
            assert at == len(stream), "data after the trailer"
            return rows
        assert count == len(oids)
        row = []
        for oid in oids:
            (size,) = struct.unpack(">i", stream[at : at + 4])
            at += 4
            if size == -1:
                row.append(None)
                continue
            row.append(_value(oid, stream[at : at + size]))
            at += size
        rows.append(tuple(row))


def encode(data: pa.Table, oids: Sequence[int], rows_per_chunk: int = 8192) -> bytes:
    plan = binary_plan(data, oids)
    assert plan is not None
    return b"".join(bytes(c) for c in pg_binary_chunks(data, plan, rows_per_chunk))


def assert_round_trip(data: pa.Table, oids: Sequence[int], rows_per_chunk: int = 8192) -> None:
    plan = binary_plan(data, oids)
    assert plan is not None
    stream = encode(data, oids, rows_per_chunk)
    got = decode(stream, [oids[i] for i in plan.order])
    columns = data.to_pydict().values()
    want = [tuple(row[i] for i in plan.order) for row in zip(*columns, strict=True)]
    assert len(got) == len(want)
    for n, (g, w) in enumerate(zip(got, want, strict=True)):
        assert g == w, f"row {n}: {g} != {w}"


# ------------------------------------------------------------------ numeric


def exact(unscaled: int, scale: int) -> Decimal:
    """unscaled · 10**-scale, exactly (Decimal.scaleb would round to the context's 28 digits)."""
    return Decimal(f"{unscaled}E{-scale}")


def random_decimals(rng: random.Random, count: int, precision: int, scale: int) -> list[Decimal]:
    values = []
    for _ in range(count):
        digits = rng.randint(0, precision)
        unscaled = rng.randrange(10**digits) * rng.choice((1, -1))
        values.append(exact(unscaled, scale))
    return values


def edge_decimals(precision: int, scale: int) -> list[Decimal]:
    unscaled = [0, 1, -1, 10**precision - 1, 1 - 10**precision, 2**64, -(2**64), 2**64 - 1]
    return [exact(u, scale) for u in unscaled if abs(u) < 10**precision]


def test_brief_amounts_exactly() -> None:
    data = pa.table({"amount": pa.array(BRIEF, AMOUNT_TYPE)})
    assert_round_trip(data, [NUMERIC])
    rows = decode(encode(data, [NUMERIC]), [NUMERIC])
    assert [r[0] for r in rows] == list(BRIEF)
    assert [format(r[0], "f") for r in rows] == [  # dscale 20: as PostgreSQL shows them
        "-0.00090568328396424710",
        "0.00000000346000000000",
        "12345678901234567.12345678901234567890",
        "0.00000000000000000000",
    ]


@pytest.mark.parametrize(
    ("precision", "scale"),
    [(38, 20), (38, 0), (38, 38), (38, 37), (38, 19), (38, 21), (18, 6), (10, 3), (5, 1), (1, 0)],
)
def test_numeric_is_exact_at_every_scale(precision: int, scale: int) -> None:
    rng = random.Random(precision * 100 + scale)
    values = edge_decimals(precision, scale) + random_decimals(rng, 3000, precision, scale)
    data = pa.table({"n": pa.array(values, pa.decimal128(precision, scale))})
    for rows_per_chunk in (1, 7, 8192):  # one row per batch: every digit-count path
        assert_round_trip(
            data.slice(0, 300) if rows_per_chunk == 1 else data, [NUMERIC], rows_per_chunk
        )


@pytest.mark.parametrize(
    "values",
    [
        [Decimal(0)] * 5,  # no digit at all
        [Decimal("5.77"), Decimal("-100"), Decimal("0.01")],  # hi word 0, low digits all zero
        [Decimal("184467440.73709551616"), Decimal("-3")],  # hi word 1
        [Decimal("99999999999999999.99999999999999999999"), Decimal("1E-20")],  # every chunk
        [Decimal("-99999999999999999.99999999999999999999")],
        [Decimal("12345678"), Decimal("-87654321.00000001")],
    ],
    ids=["zeros", "small", "hi-one", "widest", "most-negative", "mixed"],
)
def test_numeric_batches_of_one_magnitude(values: list[Decimal]) -> None:
    assert_round_trip(pa.table({"n": pa.array(values, AMOUNT_TYPE)}), [NUMERIC])


def test_numeric_field_is_compact_for_small_and_zero_values() -> None:
    """Leading and trailing digit groups zero in the whole batch are not sent."""
    zeros = encode(pa.table({"n": pa.array([Decimal(0)] * 3, AMOUNT_TYPE)}), [NUMERIC])
    cents = encode(pa.table({"n": pa.array([Decimal("5.77")] * 3, AMOUNT_TYPE)}), [NUMERIC])
    widest = encode(pa.table({"n": pa.array([Decimal("-1E17")] * 3, AMOUNT_TYPE)}), [NUMERIC])
    per_row = [(len(s) - 21) // 3 for s in (zeros, cents, widest)]
    assert per_row == [2 + 4 + 8, 2 + 4 + 8 + 2 * 2, 2 + 4 + 8 + 2 * 2]
    assert decode(widest, [NUMERIC])[0] == (Decimal("-1E17"),)


# ------------------------------------------------------------------ every type, nulls, layout


def mixed_table(rows: int = 500) -> pa.Table:
    rng = random.Random(3)
    start = datetime(1960, 1, 1, tzinfo=UTC)
    return pa.table(
        {
            "amount": pa.array(random_decimals(rng, rows, 38, 20), AMOUNT_TYPE),
            "maybe_amount": pa.array(
                [
                    None if i % 3 == 0 else v
                    for i, v in enumerate(random_decimals(rng, rows, 38, 20))
                ],
                AMOUNT_TYPE,
            ),
            "uuid": pa.array([f"{i:08x}-0000-0000-0000-000000000000" for i in range(rows)]),
            "text": pa.array(
                [
                    None if i % 7 == 0 else "" if i % 5 == 0 else f'x,"y"\n\\. ü{i}'
                    for i in range(rows)
                ]
            ),
            "flag": pa.array([i % 2 == 0 for i in range(rows)]),
            "maybe_flag": pa.array([None if i % 11 == 0 else i % 3 == 0 for i in range(rows)]),
            "day": pa.array([date(1900, 1, 1) + timedelta(days=37 * i) for i in range(rows)]),
            "maybe_day": pa.array([None if i % 4 else date(2024, 3, 31) for i in range(rows)]),
            "at": pa.array(
                [start + timedelta(seconds=12345.678901 * i) for i in range(rows)],
                pa.timestamp("us", tz="UTC"),
            ),
            "naive": pa.array(
                [
                    None if i % 2 else datetime(2024, 1, 1) + timedelta(microseconds=i)
                    for i in range(rows)
                ],
                pa.timestamp("us"),
            ),
            "big": pa.array([(i - rows // 2) * 10**12 for i in range(rows)], pa.int64()),
            "small": pa.array([i - rows // 2 for i in range(rows)], pa.int64()),
            "tiny": pa.array([None if i % 9 == 0 else i % 100 for i in range(rows)], pa.int16()),
            "ratio": pa.array([i / 7 - 3.5 for i in range(rows)], pa.float64()),
            "single": pa.array([i / 4 for i in range(rows)], pa.float32()),
            "wide_text": pa.array([f"v{i}" for i in range(rows)], pa.large_string()),
            "blob": pa.array([bytes([i % 256]) * (i % 3) for i in range(rows)], pa.binary()),
            "nothing": pa.nulls(rows, pa.date32()),
        }
    )


MIXED_OIDS = [NUMERIC, NUMERIC, TEXT, VARCHAR, BOOL, BOOL, DATE, DATE, TIMESTAMPTZ, TIMESTAMP,
              INT8, INT4, INT2, FLOAT8, FLOAT4, TEXT, BYTEA, DATE]  # fmt: skip


def test_every_type_with_nulls_round_trips() -> None:
    data = mixed_table()
    for rows_per_chunk in (1, 64, 8192):
        assert_round_trip(
            data.slice(0, 100) if rows_per_chunk == 1 else data, MIXED_OIDS, rows_per_chunk
        )


def test_sliced_and_chunked_input() -> None:
    data = mixed_table()
    pieces = pa.concat_tables([data.slice(3, 100), data.slice(250, 77), data.slice(499)])
    assert pieces.column("amount").num_chunks == 3
    assert_round_trip(pieces, MIXED_OIDS, rows_per_chunk=40)


def test_stream_of_batches_round_trips_with_the_first_batchs_column_order() -> None:
    """A stream is planned from its first batch; a later batch where a leading column is not
    fixed-width (nulls, other lengths) is encoded with the same column order."""
    data = mixed_table(300)
    first = data.slice(0, 50).combine_chunks()
    # in the first 50 rows a column fixed nowhere else: one length, no nulls
    first = first.set_column(3, "text", pa.array(["abc"] * 50))
    table = pa.concat_tables([first, data.slice(50)])
    plan = binary_plan(first, MIXED_OIDS)
    assert plan is not None
    assert 3 in [f.index for f in plan.fields if f.fixed]
    batches = [b for b in table.to_batches(max_chunksize=37) if b.num_rows]
    stream = b"".join(bytes(c) for c in pg_binary_chunks(iter(batches), plan, rows_per_chunk=16))
    got = decode(stream, [MIXED_OIDS[i] for i in plan.order])
    columns = table.to_pydict().values()
    want = [tuple(row[i] for i in plan.order) for row in zip(*columns, strict=True)]
    assert got == want


def test_stream_integer_out_of_range_in_a_later_batch_raises() -> None:
    fits = pa.table({"n": pa.array([1, 2], pa.int64())})
    plan = binary_plan(fits, [INT4])
    assert plan is not None
    late = pa.record_batch({"n": pa.array([3, 2**40], pa.int64())})
    with pytest.raises(pa.ArrowInvalid):
        list(pg_binary_chunks(iter([*fits.to_batches(), late]), plan))


def test_fixed_width_fields_lead_the_row() -> None:
    plan = binary_plan(mixed_table(), MIXED_OIDS)
    assert plan is not None
    fixed = [mixed_table().column_names[f.index] for f in plan.fields if f.fixed]
    assert fixed == ["amount", "uuid", "flag", "day", "at", "big", "small", "ratio", "single"]
    assert not any(f.fixed for f in plan.fields[len(fixed) :])


def test_only_fixed_width_fields_and_empty_strings() -> None:
    data = pa.table(
        {"n": pa.array(BRIEF, AMOUNT_TYPE), "empty": pa.array([""] * 4), "code": ["BTC"] * 4}
    )
    assert_round_trip(data, [NUMERIC, TEXT, TEXT])
    assert_round_trip(data.select(["n"]), [NUMERIC])


def test_no_rows_is_signature_and_trailer() -> None:
    data = pa.table({"n": pa.array([], AMOUNT_TYPE)})
    assert encode(data, [NUMERIC]) == b"PGCOPY\n\xff\r\n\x00" + bytes(8) + b"\xff\xff"


def test_large_batches_are_split_by_bytes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(wl, "_MAX_BATCH_BYTES", 2_000)
    data = mixed_table(300)
    plan = binary_plan(data, MIXED_OIDS)
    assert plan is not None
    assert len(list(pg_binary_chunks(data, plan))) > 2 + 10
    assert_round_trip(data, MIXED_OIDS)


# ------------------------------------------------------------------ what falls back to CSV


@pytest.mark.parametrize(
    ("array", "oid"),
    [
        (pa.array(["1.5"]), NUMERIC),  # text into numeric: the server parses it
        (pa.array([Decimal("1.5")], pa.decimal128(5, 1)), TEXT),
        (pa.array([1], pa.int64()), 2950),  # uuid: no encoder here
        (pa.array([datetime(2024, 1, 1)], pa.timestamp("ns")), TIMESTAMP),
        (pa.array([datetime(2024, 1, 1)], pa.timestamp("us")), TIMESTAMPTZ),  # naive vs zoned
        (pa.array([datetime(2024, 1, 1, tzinfo=UTC)], pa.timestamp("us", tz="UTC")), TIMESTAMP),
        (pa.array([2**40], pa.int64()), INT4),  # out of range: the server's error, not ours
        (pa.array([1.5], pa.float64()), FLOAT4),
        (pa.array(["a"]).dictionary_encode(), TEXT),
        (pa.array([1], pa.int64()), 0),  # the table has no such column
    ],
)
def test_no_binary_plan_for_types_without_an_exact_encoding(array: pa.Array, oid: int) -> None:
    assert binary_plan(pa.table({"c": array}), [oid]) is None


def test_narrower_and_in_range_integers_are_encoded() -> None:
    data = pa.table(
        {"a": pa.array([1, -(2**31)], pa.int64()), "b": pa.array([7, 65_535], pa.uint16())}
    )
    assert_round_trip(data, [INT4, INT4])
    assert_round_trip(pa.table({"c": pa.array([-5, 2**62], pa.int64())}), [INT8])
