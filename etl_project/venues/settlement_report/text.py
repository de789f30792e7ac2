"""The report file as text columns, before typing: the header check and the CSV reader (the
JSON reader is `settlement_report_json`). A broken line is rejected alone, with its number."""

from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.csv as pcsv

from etl_project.errors import FinalVenueError, MalformedResponse
from etl_project.report.columns import REPORT_COLUMNS
from etl_project.venues.base import Rejected
from etl_project.venues.settlement_report.lines import line_text, split_lines

__all__ = [
    "CHECK_FIELD_COUNT",
    "ReportFormatError",
    "TextRows",
    "check_header",
    "csv_header",
    "csv_rows",
    "short",
]

#: Check name of a CSV line with the wrong number of fields (it appears in quarantine entries).
CHECK_FIELD_COUNT = "csv_field_count"

_MAX_SHOWN = 60
_FIRST_LINE = re.compile(rb"\r\n|\r|\n")


class ReportFormatError(MalformedResponse, FinalVenueError):
    """The file is not a report at all: a CSV whose header is not the 33 columns, JSON that is
    not an array of rows. Permanent — the same file fails the same way on every retry — so
    it is raised by `fetch` and the orchestrator should not fetch (and land) it again.
    (A `MalformedResponse` until `errors.py` has a non-retryable base class.)"""


@dataclass
class TextRows:
    """The report as text columns (CSV or JSON alike) plus what is already known to be bad."""

    table: pa.Table  # the 33 report columns, all string, in order
    #: row index -> (check, reason) problems found while reading
    problems: dict[int, list[tuple[str, str]]]
    #: (row index, column) whose value was unusable while reading (not re-checked later)
    flagged: set[tuple[int, str]]
    #: (row index, column) -> the value as it was in the file, for the quarantine record
    originals: dict[tuple[int, str], str]
    #: rejected before they became a row (broken CSV lines, JSON elements that are not rows)
    rejected: list[Rejected]
    #: where each row is in the file: its line (CSV) or array element (JSON), for quarantine;
    #: None when unknown
    positions: np.ndarray | None
    #: the name of that position in a quarantine record: `line` or `element`
    position_key: str
    #: lines read (CSV, the header included; 0 for JSON)
    lines: int = 0


def csv_header(body: bytes, source: str, where: str = "report") -> list[str]:
    """The column names of the CSV's first line (UTF-8, BOM allowed)."""
    first = _FIRST_LINE.split(body, maxsplit=1)[0]
    try:
        text = first.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise ReportFormatError(source, f"{where}: the CSV header is not UTF-8") from None
    return next(csv.reader([text]), [])


def check_header(names: list[str], source: str, where: str = "report") -> None:
    """Nothing when `names` are the 33 report columns in order, else `ReportFormatError`."""
    expected = list(REPORT_COLUMNS)
    if names == expected:
        return
    problems: list[str] = []
    missing = [c for c in expected if c not in names]
    unexpected = [n for n in names if n not in REPORT_COLUMNS]
    repeated = sorted({n for n in names if names.count(n) > 1})
    if missing:
        problems.append("missing column(s) " + ", ".join(map(repr, missing)))
    if unexpected:
        problems.append("unexpected column(s) " + ", ".join(map(repr, unexpected[:10])))
    if repeated:
        problems.append("repeated column(s) " + ", ".join(map(repr, repeated)))
    if not problems:
        position = next(i for i, (a, b) in enumerate(zip(names, expected, strict=True)) if a != b)
        problems.append(
            f"columns out of order: column {position + 1} is {names[position]!r},"
            f" expected {expected[position]!r}"
        )
    raise ReportFormatError(
        source, f"{where}: header is not the report's 33 columns: " + "; ".join(problems)
    )


def csv_rows(body: bytes, source: str, line_offset: int = 0) -> TextRows:
    """The CSV's rows as text columns; a line that cannot be a row is rejected with its number.

    `split_lines` cuts out overlong, non-UTF-8 and unclosed-quote lines first; Arrow then
    reads the rest and reports rows with the wrong number of fields, which are rejected too.
    """
    check_header(csv_header(body, source), source)
    lines = split_lines(body, line_offset)
    invalid: list[tuple[int | None, int, int, str]] = []

    def on_invalid_row(row: Any) -> str:
        invalid.append((row.number, row.expected_columns, row.actual_columns, row.text))
        return "skip"

    data = lines.body if lines.body.endswith((b"\n", b"\r")) else lines.body + b"\n"
    try:
        table = pcsv.read_csv(
            io.BytesIO(data),
            read_options=pcsv.ReadOptions(use_threads=False),
            parse_options=pcsv.ParseOptions(
                newlines_in_values=True, invalid_row_handler=on_invalid_row
            ),
            convert_options=pcsv.ConvertOptions(
                column_types={name: pa.string() for name in REPORT_COLUMNS},
                strings_can_be_null=False,
                quoted_strings_can_be_null=False,
            ),
        )
    except (pa.ArrowInvalid, UnicodeDecodeError) as exc:  # framing should have prevented it
        reason = " ".join(str(exc).split())[:200]
        raise MalformedResponse(source, f"not a readable CSV report ({reason})") from None
    if table.column_names != list(REPORT_COLUMNS):  # e.g. a quoted header name
        check_header(table.column_names, source)
    rejected = [
        Rejected(source, r.check, r.reason, {"source": source, "line": r.line, "text": r.text})
        for r in lines.rejected
    ]
    records = lines.record_lines
    skipped: list[int] = []
    for number, expected, actual, text in invalid:
        # Arrow numbers records from 1 (the header), skipping empty lines, as `record_lines`
        index = None if number is None else number - 2
        line = int(records[index]) if index is not None and 0 <= index < len(records) else None
        if index is not None:
            skipped.append(index)
        where = f"line {line}: " if line is not None else ""
        rejected.append(
            Rejected(
                source,
                CHECK_FIELD_COUNT,
                f"{where}row has {actual} fields, expected {expected}",
                {"source": source, "line": line, "text": line_text(text.encode("utf-8"))},
            )
        )
    rejected.sort(key=lambda r: r.record["line"] or 0)
    positions: np.ndarray | None = np.delete(records, skipped) if skipped else records
    if positions is not None and len(positions) != table.num_rows:  # not expected: then none
        positions = None
    return TextRows(table, {}, set(), {}, rejected, positions, "line", lines.lines)


def short(text: str) -> str:
    """A value for a reason text: at most 60 characters."""
    return text if len(text) <= _MAX_SHOWN else text[: _MAX_SHOWN - 1] + "…"
