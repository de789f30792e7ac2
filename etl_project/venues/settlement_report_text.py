"""The report file as text columns (CSV or JSON) plus header and row-shape checks, before typing."""

from __future__ import annotations

import csv
import io
import json
from collections import defaultdict
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import pyarrow as pa
import pyarrow.csv as pcsv

from etl_project.errors import MalformedResponse
from etl_project.http import json_kind
from etl_project.report.columns import AMOUNT_COLUMNS, BOOL_COLUMNS, REPORT_COLUMNS
from etl_project.venues.base import Rejected

__all__ = [
    "CHECK_COLUMNS",
    "CHECK_FIELD_COUNT",
    "CHECK_JSON_TYPE",
    "TextRows",
    "check_header",
    "csv_header",
    "csv_rows",
    "json_rows",
    "load_json",
    "short",
]

#: Check names of rows rejected while reading the file (they appear in quarantine entries).
CHECK_JSON_TYPE = "json_type"
CHECK_COLUMNS = "report_columns"
CHECK_FIELD_COUNT = "csv_field_count"

_MAX_SHOWN = 60


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
    #: rejected before they became a row (CSV rows with the wrong number of fields)
    rejected: list[Rejected]


def csv_header(body: bytes, source: str, where: str = "report") -> list[str]:
    """The column names of the CSV's first line (UTF-8, BOM allowed)."""
    first = body.split(b"\n", 1)[0]
    try:
        text = first.decode("utf-8-sig").rstrip("\r")
    except UnicodeDecodeError:
        raise MalformedResponse(source, f"{where}: the CSV header is not UTF-8") from None
    return next(csv.reader([text]), [])


def check_header(names: list[str], source: str, where: str = "report") -> None:
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
    raise MalformedResponse(
        source, f"{where}: header is not the report's 33 columns: " + "; ".join(problems)
    )


def csv_rows(body: bytes, source: str) -> TextRows:
    invalid: list[tuple[int, int, str]] = []

    def on_invalid_row(row: Any) -> str:
        invalid.append((row.expected_columns, row.actual_columns, row.text))
        return "skip"

    check_header(csv_header(body, source), source)
    data = body if body.endswith(b"\n") else body + b"\n"  # a header-only file without EOL
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
    except (pa.ArrowInvalid, UnicodeDecodeError) as exc:
        reason = " ".join(str(exc).split())[:200]
        raise MalformedResponse(source, f"not a readable CSV report ({reason})") from None
    if table.column_names != list(REPORT_COLUMNS):  # e.g. a quoted header name
        check_header(table.column_names, source)
    rejected = [
        Rejected(
            source,
            CHECK_FIELD_COUNT,
            f"row has {actual} fields, expected {expected}",
            {"source": source, "text": text},
        )
        for expected, actual, text in invalid
    ]
    return TextRows(table, {}, set(), {}, rejected)


def load_json(body: bytes, source: str, where: str = "report") -> Any:
    try:
        return json.loads(body, parse_float=Decimal, parse_int=Decimal, parse_constant=Decimal)
    except (ValueError, UnicodeDecodeError) as exc:
        reason = " ".join(str(exc).split())[:200]
        raise MalformedResponse(source, f"{where}: not a valid JSON report ({reason})") from None


def json_rows(body: bytes, source: str) -> TextRows:
    doc = load_json(body, source)
    if not isinstance(doc, list):
        raise MalformedResponse(
            source, f"JSON report must be an array of rows, got {json_kind(doc)}"
        )
    expected = set(REPORT_COLUMNS)
    columns: dict[str, list[str | None]] = {name: [] for name in REPORT_COLUMNS}
    problems: dict[int, list[tuple[str, str]]] = defaultdict(list)
    flagged: set[tuple[int, str]] = set()
    originals: dict[tuple[int, str], str] = {}
    rejected: list[Rejected] = []
    first_mismatch: str | None = None
    for position, item in enumerate(doc):
        if not isinstance(item, dict) or set(item) != expected:
            if isinstance(item, dict):
                missing = [c for c in REPORT_COLUMNS if c not in item]
                unexpected = sorted(str(k) for k in item if k not in expected)
                parts = []
                if missing:
                    parts.append("missing column(s) " + ", ".join(map(repr, missing)))
                if unexpected:
                    parts.append("unexpected column(s) " + ", ".join(map(repr, unexpected[:10])))
                reason = f"element {position}: " + "; ".join(parts)
                record: dict[str, Any] = {
                    "source": source,
                    **{str(k): _json_text(v) for k, v in item.items()},
                }
            else:
                reason = f"element {position}: a row must be an object, got {json_kind(item)}"
                record = {"source": source, "text": _json_text(item)}
            first_mismatch = first_mismatch or reason
            rejected.append(Rejected(source, CHECK_COLUMNS, reason, record))
            continue
        row = len(columns["userUUID"])
        for name in REPORT_COLUMNS:
            text, problem = _json_value(name, item[name])
            columns[name].append(text)
            if problem is not None:
                problems[row].append((CHECK_JSON_TYPE, problem))
                flagged.add((row, name))
                originals[(row, name)] = _json_text(item[name])
    if doc and not columns["userUUID"]:
        raise MalformedResponse(
            source, f"no element of the JSON report has the report's 33 columns ({first_mismatch})"
        )
    table = pa.table({name: pa.array(values, pa.string()) for name, values in columns.items()})
    return TextRows(table, dict(problems), flagged, originals, rejected)


def _json_value(name: str, value: Any) -> tuple[str | None, str | None]:
    """The text of a JSON value for `name`, or (None, problem) when its JSON type is wrong."""
    if name in AMOUNT_COLUMNS:
        if isinstance(value, Decimal):
            return str(value), None
        if isinstance(value, str):
            return value, None
        return None, f"{name}: expected a number, got {short(_json_text(value))}"
    if name in BOOL_COLUMNS:
        if isinstance(value, bool):
            return ("TRUE" if value else "FALSE"), None
        if isinstance(value, str):
            return value, None
        return None, f"{name}: expected a boolean, got {short(_json_text(value))}"
    if value is None or isinstance(value, str):
        return value, None  # null: the schema's not-null rule decides (Email may be null)
    return None, f"{name}: expected a string, got {short(_json_text(value))}"


def short(text: str) -> str:
    return text if len(text) <= _MAX_SHOWN else text[: _MAX_SHOWN - 1] + "…"


def _json_text(value: Any) -> str:
    """Compact JSON text of a decoded value (Decimals exactly)."""
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, list):
        return "[" + ",".join(_json_text(v) for v in value) + "]"
    if isinstance(value, dict):
        items = (f"{json.dumps(str(k))}:{_json_text(v)}" for k, v in value.items())
        return "{" + ",".join(items) + "}"
    return json.dumps(value, ensure_ascii=False)
