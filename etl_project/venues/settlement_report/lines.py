"""A CSV report cut into records before Arrow reads it, so one broken line costs one row.

Arrow's reader fails (or swallows the rest of the file) on a line it cannot frame: an unclosed
quote runs on into the next lines, a line longer than its block fails the file, a stray
non-UTF-8 byte fails the file. This pass finds those lines and cuts them out, each becoming a
`LineReject` with its 1-based line number, so the other rows are read as usual:

- `csv_line_length`: a line longer than `MAX_LINE_BYTES` (64 KiB; a report row is ~400 bytes);
- `csv_encoding`: a line that is not UTF-8;
- `csv_quote`: a line whose quotes do not balance and that does not close into exactly one
  33-field row with the next unbalanced line within `MAX_LINE_BYTES` (a quoted value holding a
  line break is legal RFC 4180 and kept).

Framing is columnar: numpy finds line ends and quotes, Arrow validates UTF-8; Python only
visits unbalanced lines (none in a clean file). Lines end at LF, CRLF or a bare CR, as for
Arrow, and empty lines are skipped, as Arrow skips them.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from etl_project.report.columns import REPORT_COLUMNS

__all__ = [
    "CHECK_ENCODING",
    "CHECK_LINE_LENGTH",
    "CHECK_QUOTE",
    "MAX_LINE_BYTES",
    "CsvLines",
    "LineReject",
    "line_text",
    "split_lines",
]

#: The longest line (bytes, without its line end) a report row may have.
MAX_LINE_BYTES = 64 * 1024
#: Check names of lines cut out here (they appear in quarantine entries).
CHECK_LINE_LENGTH = "csv_line_length"
CHECK_ENCODING = "csv_encoding"
CHECK_QUOTE = "csv_quote"

_LF, _CR, _QUOTE = 10, 13, 34
_CHUNK = 1 << 26  # bytes compared at once while searching (bounds the temporary arrays)
_SHOWN_BYTES = 1024  # of a rejected line kept in its quarantine record


@dataclass(frozen=True)
class LineReject:
    """One line cut out of the file, with why."""

    line: int  # 1-based, the header is line 1
    check: str
    reason: str
    text: str  # the line, shortened to ~1 KiB, bad bytes as \\xNN


@dataclass(frozen=True)
class CsvLines:
    """The file with its broken lines cut out, and where each remaining record starts."""

    body: bytes  # the header line and every record Arrow may read
    record_lines: np.ndarray  # 1-based first line of each data record of `body`, in order
    rejected: list[LineReject]
    lines: int  # lines in the input, the header included


def line_text(data: bytes) -> str:
    """A line for a quarantine record: UTF-8 (bad bytes as `\\xNN`), at most ~1 KiB."""
    text = data[:_SHOWN_BYTES].decode("utf-8", errors="backslashreplace")
    return text + "…" if len(data) > _SHOWN_BYTES else text


def _positions(data: np.ndarray, byte: int) -> np.ndarray:
    """Offsets of every `byte` in `data`, searched chunk by chunk."""
    found = [
        np.flatnonzero(data[at : at + _CHUNK] == byte) + at for at in range(0, len(data), _CHUNK)
    ]
    return np.concatenate(found) if found else np.zeros(0, np.int64)


def _bad_utf8(body: bytes, starts: np.ndarray) -> list[int]:
    """Indices of the lines (`starts`, each up to the next) that are not UTF-8.

    Arrow validates the whole file at once; only when that fails are halves validated
    again, down to the single lines at fault.
    """
    offsets = np.append(starts, len(body)).astype(np.int64)
    lines = pa.Array.from_buffers(
        pa.large_binary(), len(starts), [None, pa.py_buffer(offsets), pa.py_buffer(body)]
    )
    bad: list[int] = []
    pending = [(0, len(starts))]
    while pending:
        lo, hi = pending.pop()
        try:
            lines.slice(lo, hi - lo).cast(pa.large_string())
            continue
        except pa.ArrowInvalid:
            pass
        if hi - lo == 1:
            bad.append(lo)
        else:
            middle = (lo + hi) // 2
            pending += [(middle, hi), (lo, middle)]
    return sorted(bad)


def _one_row(text: bytes) -> bool:
    """Whether `text` (lines joined by a quoted line break) is exactly one 33-field row whose
    quotes are all well placed (strict RFC 4180: a closing quote ends its field). Two broken
    lines that merely pair up their stray quotes fail this, instead of merging into one row."""
    reader = csv.reader(io.StringIO(text.decode("utf-8", "replace"), newline=""), strict=True)
    try:
        rows = list(reader)
    except csv.Error:
        return False
    return len(rows) == 1 and len(rows[0]) == len(REPORT_COLUMNS)


def split_lines(body: bytes, line_offset: int = 0) -> CsvLines:
    """Frame `body` (header first) into records; cut out and name the lines that cannot be.

    `line_offset`: lines of the file between the header and `body`'s first data line (a
    block of a file read in blocks, with the header put in front), so numbers are the file's."""
    data = np.frombuffer(body, np.uint8)
    size = len(data)
    carriage = _positions(data, _CR)
    following = np.minimum(carriage + 1, max(size - 1, 0))
    bare = carriage[(carriage + 1 >= size) | (data[following] != _LF)] if size else carriage
    ends = _positions(data, _LF).astype(np.int64)
    if len(bare):  # old Mac line ends, or a CR inside a value: rare
        ends = np.sort(np.concatenate([ends, bare]))
    if not len(ends) or ends[-1] != size - 1:
        ends = np.append(ends, size)  # a last line without a line end
    starts = np.concatenate(([0], ends[:-1] + 1)).astype(np.int64)
    crlf = np.zeros(len(ends), bool)
    real = ends < size
    crlf[real] = (data[ends[real]] == _LF) & (ends[real] > starts[real])
    crlf[crlf] = data[ends[crlf] - 1] == _CR
    content_ends = ends - crlf
    following_starts = np.minimum(ends + 1, size)
    quotes = _positions(data, _QUOTE)
    counts = np.diff(np.searchsorted(quotes, ends), prepend=0)
    lengths = content_ends - starts

    def reject(index: int, check: str, why: str) -> LineReject:
        text = line_text(body[starts[index] : content_ends[index]])
        line = int(index) + 1 + (line_offset if index else 0)
        return LineReject(line, check, f"line {line}: {why}", text)

    rejected: dict[int, LineReject] = {}
    for index in map(int, np.flatnonzero(lengths > MAX_LINE_BYTES)):
        if not index:
            continue  # the header: judged by the header check
        why = f"line is {lengths[index]} bytes, longer than the {MAX_LINE_BYTES}-byte limit"
        rejected[index] = reject(index, CHECK_LINE_LENGTH, why)
    for bad in _bad_utf8(body, starts):
        if bad and bad not in rejected:
            rejected[bad] = reject(bad, CHECK_ENCODING, "not valid UTF-8")

    joined = np.zeros(len(starts), bool)  # lines continuing the record of an earlier line
    odd = [int(i) for i in np.flatnonzero(counts % 2) if i and int(i) not in rejected]
    k = 0
    while k < len(odd):
        opener = odd[k]
        closer = odd[k + 1] if k + 1 < len(odd) else None
        if (
            closer is not None
            and content_ends[closer] - starts[opener] <= MAX_LINE_BYTES
            and not any(i in rejected for i in range(opener + 1, closer))
            and _one_row(body[starts[opener] : content_ends[closer]])
        ):
            joined[opener + 1 : closer + 1] = True
            k += 2
            continue
        why = "unclosed quote (its quoted field does not end within the line)"
        rejected[opener] = reject(opener, CHECK_QUOTE, why)
        k += 1

    cut = sorted(rejected)
    if cut:
        pieces, at = [], 0
        for line in cut:
            pieces.append(body[at : starts[line]])
            at = int(following_starts[line])
        pieces.append(body[at:])
        body = b"".join(pieces)
    keep = (lengths > 0) & ~joined
    keep[0] = False  # the header
    keep[cut] = False
    record_lines = np.flatnonzero(keep) + 1 + line_offset
    return CsvLines(body, record_lines, [rejected[i] for i in cut], len(starts))
