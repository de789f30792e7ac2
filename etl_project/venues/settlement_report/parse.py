"""Parsing the settlement platform's Client Balance Report (seed 000): CSV or JSON text ->
canonical balances, column by column. Rows are taken as they are; a bad value or a broken line
rejects only its row, a bad header or shape fails the file (see `settlement_report` for
fetching). Reading the file into text columns is `settlement_report_text` (CSV, framed by
`settlement_report_lines`) and `settlement_report_json`; typing those columns is here.

`Ccy` is normalised like every source's (`identity.normalise_ccy`: upper-cased, `XBT`->`BTC`,
`XDG`->`DOGE`), once per distinct code, not per row. Rows that share an `(accountUUID, Ccy)`
are all passed on (never summed, never dropped): the report's validation quarantines them."""

from __future__ import annotations

import json
import re
from collections import defaultdict
from collections.abc import Iterable, Iterator

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from etl_project.errors import MalformedResponse
from etl_project.identity import normalise_ccy
from etl_project.report.columns import (
    AMOUNT_COLUMNS,
    AMOUNT_TYPE,
    BALANCES_SCHEMA,
    BOOL_COLUMNS,
    REPORT_COLUMNS,
)
from etl_project.venues.base import AccountStatus, ParsedSnapshot, Rejected
from etl_project.venues.settlement_report.json_rows import json_rows
from etl_project.venues.settlement_report.lines import MAX_LINE_BYTES
from etl_project.venues.settlement_report.text import TextRows, csv_rows, short

KIND = "settlement_report"
#: Report file formats, by config value and file extension.
FORMATS = ("csv", "json")

#: Check names of rows this connector rejects (they appear in quarantine entries).
CHECK_EXACT_DECIMAL = "exact_decimal"
CHECK_BOOLEAN = "boolean_text"

_UUID_COLUMNS = ("userUUID", "accountUUID", "Account Group UUID")
#: Rows per slice when locating the bad values of an amount column that failed to cast.
_SLICE = 512


def parse_report(body: bytes, fmt: str, source: str) -> ParsedSnapshot:
    """A report file (CSV or JSON bytes) -> balances (`BALANCES_SCHEMA`), rejects, accounts."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown report format {fmt!r}")
    if not body.strip():
        raise MalformedResponse(source, "the report file is empty")
    rows = csv_rows(body, source) if fmt == "csv" else json_rows(body, source)
    return _typed(rows, source)


def parse_csv_blocks(chunks: Iterable[bytes], source: str) -> Iterator[ParsedSnapshot]:
    """A CSV report arriving in chunks -> its balances block by block (each ~`BLOCK_BYTES`),
    with the file's line numbers: memory is a block, not the file. Same rows, rejects and
    reasons as `parse_report` on the whole file; a duplicate key across blocks is caught by
    the report's validation (same reason text)."""
    blocks = csv_blocks(chunks, BLOCK_BYTES)
    first = next(blocks, b"")
    if not first.strip():
        raise MalformedResponse(source, "the report file is empty")
    header_end = _FIRST_LINE_END.search(first)
    header = first if header_end is None else first[: header_end.end()]
    offset = 0
    block: bytes | None = first
    while block is not None:
        body = block if block is first else header + block
        rows = csv_rows(body, source, offset)
        offset += rows.lines - 1
        yield _typed(rows, source)
        block = next(blocks, None)


#: Size of a block of a CSV report parsed at once (its text columns take ~3x this).
BLOCK_BYTES = 32 << 20
_FIRST_LINE_END = re.compile(rb"\r\n|\r|\n")


def csv_blocks(chunks: Iterable[bytes], size: int = BLOCK_BYTES) -> Iterator[bytes]:
    """`chunks` re-cut into blocks of about `size` bytes that end at a line end outside any
    quoted value, so no record is split (see `_block_end`)."""
    pending = b""
    for chunk in chunks:
        pending += chunk
        while len(pending) >= size:
            cut = _block_end(pending, size)
            if cut is None:
                break
            yield pending[:cut]
            pending = pending[cut:]
    if pending:
        yield pending


def _block_end(data: bytes, size: int) -> int | None:
    """Just past the last safe line end before `size` (a line longer than `size`: the first
    safe one after it); None: wait for more data.

    A line end is safe when no line with an odd number of quotes starts in the
    `MAX_LINE_BYTES` before it: the framing joins such a line only with a later one within
    that distance (a quoted line break), so nothing can be joined across a safe cut, and a
    stray quote costs at most `MAX_LINE_BYTES` of block, never the rest of the file."""
    view = np.frombuffer(data, np.uint8)
    ends = np.flatnonzero(view == 10)
    if not len(ends):
        return None
    starts = np.concatenate(([0], ends[:-1] + 1))
    quotes = np.flatnonzero(view == 34)
    odd = starts[np.diff(np.searchsorted(quotes, ends), prepend=0) % 2 == 1]
    if len(odd):
        before = np.searchsorted(odd, ends, side="right")
        last_odd = np.where(before > 0, odd[np.maximum(before - 1, 0)], -MAX_LINE_BYTES - 1)
        safe = ends[ends - last_odd > MAX_LINE_BYTES]
    else:  # the common case: no quote opens a line break anywhere
        safe = ends
    if not len(safe):
        return None
    within = safe[safe < size]
    return int(within[-1] if len(within) else safe[0]) + 1


def _typed(rows: TextRows, source: str) -> ParsedSnapshot:
    """Text columns -> `BALANCES_SCHEMA`; a bad amount/boolean rejects its row, named."""
    text = rows.table
    problems: dict[int, list[tuple[str, str]]] = defaultdict(list)
    for row, found in rows.problems.items():
        problems[row].extend(found)

    casts: dict[str, pa.Array] = {}  # each amount column is cast once when it is all valid
    for name in AMOUNT_COLUMNS:
        failures, cast = _amount_failures(_array(text, name))
        if cast is not None:
            casts[name] = cast
        for row, reason in failures:
            if (row, name) not in rows.flagged:
                problems[row].append((CHECK_EXACT_DECIMAL, f"{name}: {reason}"))
    for name in BOOL_COLUMNS:
        values = _array(text, name)
        ok = pc.fill_null(pc.is_in(pc.utf8_lower(values), pa.array(["true", "false"])), False)
        for row in pc.indices_nonzero(pc.invert(ok)).to_pylist():
            if (row, name) not in rows.flagged:
                shown = (
                    "missing value"
                    if values[row].as_py() is None
                    else (f"{_shown(values[row].as_py())} is not TRUE or FALSE")
                )
                problems[row].append((CHECK_BOOLEAN, f"{name}: {shown}"))

    lowered = {name: pc.utf8_lower(_array(text, name)) for name in _UUID_COLUMNS}
    rejected = list(rows.rejected)
    bad = sorted(problems)
    if bad:
        records = text.take(pa.array(bad, pa.int64())).to_pylist()
        for row, record in zip(bad, records, strict=True):
            for (at, name), original in rows.originals.items():
                if at == row:
                    record[name] = original
            found = problems[row]
            checks = list(dict.fromkeys(check for check, _ in found))
            where = {} if rows.positions is None else {rows.position_key: _position(rows, row)}
            rejected.append(
                Rejected(
                    source,
                    ", ".join(checks),
                    "; ".join(reason for _, reason in found),
                    {"source": source, **where, **record},
                )
            )

    accounts = [
        AccountStatus(account_id=a, status="received")
        for a in dict.fromkeys(lowered["accountUUID"].to_pylist())
        if a
    ]

    mask = [True] * text.num_rows
    for row in bad:
        mask[row] = False
    keep = pa.array(mask, pa.bool_())
    kept = text.filter(keep)
    count = kept.num_rows
    account_ids = lowered["accountUUID"].filter(keep)
    arrays: list[pa.Array] = []
    for field in BALANCES_SCHEMA:
        name = field.name
        if name in _UUID_COLUMNS:
            arrays.append(lowered[name].filter(keep))
        elif name in AMOUNT_COLUMNS and name in casts:
            arrays.append(casts[name] if not bad else casts[name].filter(keep))
        elif name in AMOUNT_COLUMNS:
            arrays.append(pc.cast(_array(kept, name), AMOUNT_TYPE, safe=True))
        elif name in BOOL_COLUMNS:
            arrays.append(pc.equal(pc.utf8_lower(_array(kept, name)), "true"))
        elif name == "Ccy":
            arrays.append(normalised_ccy(_array(kept, name)))
        elif name == "Email":
            email = _array(kept, name)
            arrays.append(pc.if_else(pc.equal(email, ""), pa.scalar(None, pa.string()), email))
        elif name in REPORT_COLUMNS:
            arrays.append(_array(kept, name))
        elif name == "source":
            arrays.append(pa.array([source] * count, pa.string()))
        elif name == "venue":
            arrays.append(pa.array([KIND] * count, pa.string()))
        elif name == "venue_account_id":
            arrays.append(account_ids)
        elif name == "wallet":
            arrays.append(_array(kept, "subMainType"))
        else:  # pragma: no cover - BALANCES_SCHEMA gained a column this connector does not fill
            raise AssertionError(f"no value for balances column {name!r}")
    table = pa.Table.from_arrays(arrays, schema=BALANCES_SCHEMA)
    return ParsedSnapshot(balances=table, rejected=rejected, accounts=accounts)


def normalised_ccy(values: pa.Array) -> pa.Array:
    """`normalise_ccy` of every value, computed once per distinct code (a report has a few
    dozen currencies and millions of rows); nulls stay null."""
    codes = pc.unique(values)
    mapped = pa.array(
        [None if c is None else normalise_ccy(c) for c in codes.to_pylist()], pa.string()
    )
    return pc.take(mapped, pc.index_in(values, codes))


def _position(rows: TextRows, row: int) -> int:
    assert rows.positions is not None
    return int(rows.positions[row])


def _array(table: pa.Table, name: str) -> pa.Array:
    return table.column(name).combine_chunks()


def _amount_failures(values: pa.Array) -> tuple[list[tuple[int, str]], pa.Array | None]:
    """(row, reason) of every value that is not an exact NUMERIC(38,20) decimal text, and the
    cast column when the whole column casts (so it is not cast twice).

    The whole column is cast at once; only when that fails are slices, then single values of
    the failing slices, cast again — so "valid" means exactly what Arrow's safe cast accepts.
    """
    failures = [
        (row, "missing value") for row in pc.indices_nonzero(pc.is_null(values)).to_pylist()
    ]
    try:
        return failures, pc.cast(values, AMOUNT_TYPE, safe=True)
    except pa.ArrowInvalid:
        pass
    for start in range(0, len(values), _SLICE):
        part = values.slice(start, _SLICE)
        try:
            pc.cast(part, AMOUNT_TYPE, safe=True)
            continue
        except pa.ArrowInvalid:
            pass
        for offset, value in enumerate(part.to_pylist()):
            if value is None:
                continue
            try:
                pc.cast(pa.array([value], pa.string()), AMOUNT_TYPE, safe=True)
            except pa.ArrowInvalid as exc:
                failures.append((start + offset, _amount_reason(value, str(exc))))
    return sorted(failures), None


def _amount_reason(value: str, arrow_message: str) -> str:
    shown = _shown(value)
    if "data loss" in arrow_message:
        return f"{shown} has more than {AMOUNT_TYPE.scale} fractional digits"
    if "precision" in arrow_message:
        return f"{shown} has more than {AMOUNT_TYPE.precision - AMOUNT_TYPE.scale} integer digits"
    return f"{shown} is not a decimal number"


def _shown(value: str) -> str:
    """A file value in a reason: JSON-quoted (whitespace visible), shortened."""
    return json.dumps(short(value), ensure_ascii=False)
