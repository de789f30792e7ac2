"""Parsing the settlement platform's Client Balance Report (seed 000): CSV or JSON text ->
canonical balances, column by column. Rows are taken as they are; a bad value rejects only its
row, a bad header or shape fails the file (see `settlement_report` for fetching)."""

from __future__ import annotations

import csv
import io
import json
from collections import defaultdict
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pcsv

from etl_project.errors import (
    MalformedResponse,
)
from etl_project.http import json_kind
from etl_project.report.columns import (
    AMOUNT_COLUMNS,
    AMOUNT_TYPE,
    BALANCES_SCHEMA,
    BOOL_COLUMNS,
    REPORT_COLUMNS,
)
from etl_project.venues.base import AccountStatus, ParsedSnapshot, Rejected

KIND = "settlement_report"
#: Report file formats, by config value and file extension.
FORMATS = ("csv", "json")

#: Check names of rows this connector rejects (they appear in quarantine entries).
CHECK_EXACT_DECIMAL = "exact_decimal"
CHECK_BOOLEAN = "boolean_text"
CHECK_JSON_TYPE = "json_type"
CHECK_COLUMNS = "report_columns"
CHECK_FIELD_COUNT = "csv_field_count"

_UUID_COLUMNS = ("userUUID", "accountUUID", "Account Group UUID")
#: Rows per slice when locating the bad values of an amount column that failed to cast.
_SLICE = 512
_MAX_SHOWN = 60


def parse_report(body: bytes, fmt: str, source: str) -> ParsedSnapshot:
    """A report file (CSV or JSON bytes) -> balances (`BALANCES_SCHEMA`), rejects, accounts."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown report format {fmt!r}")
    if not body.strip():
        raise MalformedResponse(source, "the report file is empty")
    rows = _csv_rows(body, source) if fmt == "csv" else _json_rows(body, source)
    return _typed(rows, source)


@dataclass
class _TextRows:
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


def _csv_rows(body: bytes, source: str) -> _TextRows:
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
    return _TextRows(table, {}, set(), {}, rejected)


def load_json(body: bytes, source: str, where: str = "report") -> Any:
    try:
        return json.loads(body, parse_float=Decimal, parse_int=Decimal, parse_constant=Decimal)
    except (ValueError, UnicodeDecodeError) as exc:
        reason = " ".join(str(exc).split())[:200]
        raise MalformedResponse(source, f"{where}: not a valid JSON report ({reason})") from None


def _json_rows(body: bytes, source: str) -> _TextRows:
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
    return _TextRows(table, dict(problems), flagged, originals, rejected)


def _json_value(name: str, value: Any) -> tuple[str | None, str | None]:
    """The text of a JSON value for `name`, or (None, problem) when its JSON type is wrong."""
    if name in AMOUNT_COLUMNS:
        if isinstance(value, Decimal):
            return str(value), None
        if isinstance(value, str):
            return value, None
        return None, f"{name}: expected a number, got {_short(_json_text(value))}"
    if name in BOOL_COLUMNS:
        if isinstance(value, bool):
            return ("TRUE" if value else "FALSE"), None
        if isinstance(value, str):
            return value, None
        return None, f"{name}: expected a boolean, got {_short(_json_text(value))}"
    if value is None or isinstance(value, str):
        return value, None  # null: the schema's not-null rule decides (Email may be null)
    return None, f"{name}: expected a string, got {_short(_json_text(value))}"


def _typed(rows: _TextRows, source: str) -> ParsedSnapshot:
    """Text columns -> `BALANCES_SCHEMA`; a bad amount/boolean rejects its row, named."""
    text = rows.table
    problems: dict[int, list[tuple[str, str]]] = defaultdict(list)
    for row, found in rows.problems.items():
        problems[row].extend(found)

    for name in AMOUNT_COLUMNS:
        for row, reason in _amount_failures(_array(text, name)):
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
            rejected.append(
                Rejected(
                    source,
                    ", ".join(checks),
                    "; ".join(reason for _, reason in found),
                    {"source": source, **record},
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
        elif name in AMOUNT_COLUMNS:
            arrays.append(pc.cast(_array(kept, name), AMOUNT_TYPE, safe=True))
        elif name in BOOL_COLUMNS:
            arrays.append(pc.equal(pc.utf8_lower(_array(kept, name)), "true"))
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


def _array(table: pa.Table, name: str) -> pa.Array:
    return table.column(name).combine_chunks()


def _amount_failures(values: pa.Array) -> list[tuple[int, str]]:
    """(row, reason) of every value that is not an exact NUMERIC(38,20) decimal text.

    The whole column is cast at once; only when that fails are slices, then single values of
    the failing slices, cast again — so "valid" means exactly what Arrow's safe cast accepts.
    """
    failures = [
        (row, "missing value") for row in pc.indices_nonzero(pc.is_null(values)).to_pylist()
    ]
    try:
        pc.cast(values, AMOUNT_TYPE, safe=True)
        return failures
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
    return sorted(failures)


def _amount_reason(value: str, arrow_message: str) -> str:
    shown = _shown(value)
    if "data loss" in arrow_message:
        return f"{shown} has more than {AMOUNT_TYPE.scale} fractional digits"
    if "precision" in arrow_message:
        return f"{shown} has more than {AMOUNT_TYPE.precision - AMOUNT_TYPE.scale} integer digits"
    return f"{shown} is not a decimal number"


def _short(text: str) -> str:
    return text if len(text) <= _MAX_SHOWN else text[: _MAX_SHOWN - 1] + "…"


def _shown(value: str) -> str:
    """A file value in a reason: JSON-quoted (whitespace visible), shortened."""
    return json.dumps(_short(value), ensure_ascii=False)


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
