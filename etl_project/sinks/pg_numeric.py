"""PostgreSQL NUMERIC in binary COPY form (`numeric_send`), computed column-wise from the
128-bit integers of an Arrow decimal128 array: exact, no float, no text, no Python per value.

A payload is int16 ndigits, weight, sign, dscale, then `ndigits` base-10000 digits, most
significant first (PostgreSQL's src/backend/utils/adt/numeric.c). Used by `pg_binary`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pyarrow as pa

_NUMERIC_NEG = 0x4000
_E8 = np.uint64(10**8)
#: 2**64 in base 10**8, least significant first: 2**64 = 1844·10**16 + 67440737·10**8 + 9551616.
_TWO64 = tuple(np.uint64(d) for d in (9_551_616, 67_440_737, 1_844))

#: (template, fill) of a fixed-width field in one batch: `template` is the field as it is in
#: every row (int32 length, then the payload with its constant parts set) and `fill` writes
#: the rest of the payload into a (rows, payload width) uint8 view.
Fixed = tuple[bytes, Callable[[np.ndarray], None]]


def template(size: int, payload: bytes = b"") -> bytes:
    """A field's int32 length and its payload (zero bytes after `payload`)."""
    return size.to_bytes(4, "big") + payload.ljust(size, b"\x00")


def raw_values(values: pa.Array, dtype: np.dtype[Any], per_value: int = 1) -> np.ndarray:
    """The data buffer of a fixed-width Arrow array as `per_value` NumPy values per value
    (zeros where Arrow has no buffer, as it may for an all-null array)."""
    count = per_value * len(values)
    buffer = values.buffers()[1]
    if buffer is None:
        return np.zeros(count, dtype)
    return np.frombuffer(buffer, dtype, count, values.offset * per_value * dtype.itemsize)


def numeric_field(values: pa.Array, scale: int) -> Fixed:
    """decimal128(_, scale) values as NUMERIC `numeric_send` fields, exactly.

    A payload is int16 ndigits, weight, sign, dscale, then `ndigits` base-10000 digits, most
    significant first. Within a batch every value gets the same digit positions (leading and
    trailing zero digits included, which `numeric_recv` strips), so the field has one width:
    ndigits covers the batch's largest value, less the low digits that are zero in all rows.
    The 128-bit magnitude hi·2**64 + lo goes to base 10**8 by splitting hi and lo into base
    10**8 and multiplying hi by 2**64 written in base 10**8 (every partial sum < 2**63)."""
    rows = len(values)
    words = raw_values(values, np.dtype(np.uint64), per_value=2)  # little-endian 128-bit integers
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

    return template(8 + 2 * ndigits, header), fill


def _base_e8(words: np.ndarray) -> list[np.ndarray]:
    """uint64 values as three base-10**8 digits, least significant first."""
    q1 = words // _E8
    q2 = q1 // _E8
    return [words - q1 * _E8, q1 - q2 * _E8, q2]
