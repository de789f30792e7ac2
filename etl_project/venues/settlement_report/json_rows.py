"""The JSON flavour of the report as text columns: an array of objects keyed by the 33 names.

One bad element rejects that element, not the file: one that is not an object, has other keys,
holds a value of the wrong JSON type, is larger than `MAX_ELEMENT_CHARS`, or is not even valid
JSON (then the array is read element by element and resynchronised on the next element that
parses). File-level failures stay: not an array at all (`ReportFormatError`, permanent), a
truncated array (no closing `]`: the file may still be being written, so a retry may help),
and an array in which no element has the 33 keys.
"""

from __future__ import annotations

import json
import re
from collections import defaultdict
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import numpy as np
import pyarrow as pa

from etl_project.errors import MalformedResponse
from etl_project.http import json_kind
from etl_project.report.columns import AMOUNT_COLUMNS, BOOL_COLUMNS, REPORT_COLUMNS
from etl_project.venues.base import Rejected
from etl_project.venues.settlement_report.lines import MAX_LINE_BYTES
from etl_project.venues.settlement_report.text import ReportFormatError, TextRows, short

__all__ = [
    "CHECK_COLUMNS",
    "CHECK_JSON_SIZE",
    "CHECK_JSON_SYNTAX",
    "CHECK_JSON_TYPE",
    "MAX_ELEMENT_CHARS",
    "check_json",
    "json_rows",
    "load_json",
]

#: Check names of elements rejected while reading (they appear in quarantine entries).
CHECK_JSON_TYPE = "json_type"
CHECK_COLUMNS = "report_columns"
CHECK_JSON_SYNTAX = "json_syntax"
CHECK_JSON_SIZE = "json_element_size"

#: The most text (characters of its string values) one row may hold, as for a CSV line.
MAX_ELEMENT_CHARS = MAX_LINE_BYTES
_SHOWN_CHARS = 1024
_DECODER = json.JSONDecoder(parse_float=Decimal, parse_int=Decimal, parse_constant=Decimal)
_SPACE = re.compile(r"[ \t\n\r]*")
_BYTES_SPACE = re.compile(rb"(?:\xef\xbb\xbf)?[ \t\n\r]*")
_NEXT_OBJECT = re.compile(r",[ \t\n\r]*(?=\{)")
_SURROGATE = re.compile("[\udc80-\udcff]")  # an undecodable byte, kept by surrogateescape
_LONE_SURROGATE = re.compile("[\ud800-\udfff]")  # from a JSON escape such as "\\ud800"

#: (element index, the decoded element) or (element index, why it is not one), in file order
Element = tuple[int, Any, Rejected | None]


def load_json(body: bytes, source: str, where: str = "report") -> Any:
    """The whole document with exact decimals; not JSON is a `MalformedResponse`."""
    try:
        return json.loads(body, parse_float=Decimal, parse_int=Decimal, parse_constant=Decimal)
    except (ValueError, UnicodeDecodeError) as exc:
        reason = " ".join(str(exc).split())[:200]
        raise MalformedResponse(source, f"{where}: not a valid JSON report ({reason})") from None


def check_json(body: bytes, source: str, where: str = "report") -> None:
    """The file-level checks `fetch` makes: an array (`ReportFormatError` if not), complete
    (ends with `]`), and, when it parses, with an element that has the 33 keys."""
    start = _BYTES_SPACE.match(body).end()  # type: ignore[union-attr]
    end = len(body)
    while end > start and body[end - 1] in b" \t\n\r":
        end -= 1
    if body[start : start + 1] != b"[":
        doc = load_json(body, source, where)  # not JSON: that message; else its kind
        raise ReportFormatError(
            source, f"{where}: JSON report must be an array of rows, got {json_kind(doc)}"
        )
    if body[end - 1 : end] != b"]":
        raise MalformedResponse(source, f"{where}: the JSON report is truncated (no closing ])")
    try:
        doc = load_json(body, source, where)
    except MalformedResponse:
        return  # broken elements are rejected one by one when parsed
    if doc and not any(isinstance(e, dict) and set(e) == set(REPORT_COLUMNS) for e in doc):
        raise ReportFormatError(source, f"{where}: no element of the JSON report has the 33 keys")


def json_rows(body: bytes, source: str) -> TextRows:
    """The array's elements as text columns; a bad element is rejected alone."""
    try:
        doc = json.loads(body, parse_float=Decimal, parse_int=Decimal, parse_constant=Decimal)
    except (ValueError, UnicodeDecodeError) as exc:
        elements: Iterator[Element] = _tolerant(body, source, exc)
    else:
        if not isinstance(doc, list):
            raise ReportFormatError(
                source, f"JSON report must be an array of rows, got {json_kind(doc)}"
            )
        elements = ((i, item, None) for i, item in enumerate(doc))
    return _columns(elements, source)


def _columns(elements: Iterator[Element], source: str) -> TextRows:
    columns: dict[str, list[str | None]] = {name: [] for name in REPORT_COLUMNS}
    problems: dict[int, list[tuple[str, str]]] = defaultdict(list)
    flagged: set[tuple[int, str]] = set()
    originals: dict[tuple[int, str], str] = {}
    rejected: list[Rejected] = []
    positions: list[int] = []
    first_mismatch: str | None = None
    seen = False
    for position, item, broken in elements:
        seen = True
        if broken is not None:
            rejected.append(broken)
            first_mismatch = first_mismatch or broken.reason
            continue
        shape = _shape_problem(position, item)
        if shape is not None:
            check, reason = shape
            if isinstance(item, dict):
                record: dict[str, Any] = {
                    "source": source,
                    "element": position,
                    **{_cut(str(k)): _shown_json(v) for k, v in item.items()},
                }
            else:
                record = {"source": source, "element": position, "text": _shown_json(item)}
            first_mismatch = first_mismatch or reason
            rejected.append(Rejected(source, check, reason, record))
            continue
        row = len(positions)
        positions.append(position)
        for name in REPORT_COLUMNS:
            text, problem = _json_value(name, item[name])
            columns[name].append(text)
            if problem is not None:
                problems[row].append((CHECK_JSON_TYPE, problem))
                flagged.add((row, name))
                originals[(row, name)] = _shown_json(item[name])
    if seen and not positions:
        raise ReportFormatError(
            source, f"no element of the JSON report has the report's 33 columns ({first_mismatch})"
        )
    table = pa.table({name: pa.array(values, pa.string()) for name, values in columns.items()})
    where = np.array(positions, np.int64)
    return TextRows(table, dict(problems), flagged, originals, rejected, where, "element")


def _shape_problem(position: int, item: Any) -> tuple[str, str] | None:
    """(check, reason) when an element is not a row of the 33 keys or is too large."""
    if not isinstance(item, dict):
        return CHECK_COLUMNS, f"element {position}: a row must be an object, got {json_kind(item)}"
    if set(item) != set(REPORT_COLUMNS):
        missing = [c for c in REPORT_COLUMNS if c not in item]
        unexpected = sorted(_cut(str(k)) for k in item if k not in REPORT_COLUMNS)
        parts = []
        if missing:
            parts.append("missing column(s) " + ", ".join(map(repr, missing)))
        if unexpected:
            parts.append("unexpected column(s) " + ", ".join(map(repr, unexpected[:10])))
        return CHECK_COLUMNS, f"element {position}: " + "; ".join(parts)
    size = sum(len(v) for v in item.values() if isinstance(v, str))
    if size > MAX_ELEMENT_CHARS:
        return CHECK_JSON_SIZE, (
            f"element {position}: its text is {size} characters,"
            f" longer than the {MAX_ELEMENT_CHARS}-character limit"
        )
    return None


def _tolerant(body: bytes, source: str, error: Exception) -> Iterator[Element]:
    """The elements of an array that is not valid JSON as a whole, one by one.

    A bad element runs up to the next `, {` after which an object parses and is followed by
    `,` or `]`; it is rejected with its index and line. Raises when the text is not an array
    or the array never closes."""
    text = body.decode("utf-8", "surrogateescape").lstrip("\ufeff")
    pos = _SPACE.match(text, 0).end()  # type: ignore[union-attr]
    if not text.startswith("[", pos):
        reason = " ".join(str(error).split())[:200]
        raise MalformedResponse(source, f"not a valid JSON report ({reason})")
    pos, index, line, counted = pos + 1, 0, 1, 0
    while True:
        pos = _SPACE.match(text, pos).end()  # type: ignore[union-attr]
        if text.startswith("]", pos):  # the end (also after a trailing comma)
            break
        line += text.count("\n", counted, pos)
        counted = pos
        end, problem = _element_at(text, pos)
        if problem is None:
            item, _ = _DECODER.raw_decode(text, pos)
            yield index, item, None
        else:
            found = _resync(text, pos + 1)
            if found is None:
                raise MalformedResponse(
                    source, "the JSON report is truncated (no closing ] after its last element)"
                )
            end = found
            reason = f"element {index} (line {line}): {problem}"
            snippet = text[pos:end].rstrip(" \t\n\r")
            record = {"source": source, "element": index, "line": line, "text": _cut(snippet)}
            check = CHECK_JSON_SIZE if problem.startswith("element is") else CHECK_JSON_SYNTAX
            yield index, None, Rejected(source, check, reason, record)
        index += 1
        pos = _SPACE.match(text, end).end()  # type: ignore[union-attr]
        if text.startswith("]", pos):
            break
        pos += 1  # the comma
    if text[pos + 1 :].strip(" \t\n\r"):
        raise MalformedResponse(source, "the JSON report has text after its closing ]")


def _element_at(text: str, pos: int) -> tuple[int, str | None]:
    """(end, None) for a good element at `pos` followed by `,` or `]`, else (pos, problem)."""
    try:
        _, end = _DECODER.raw_decode(text, pos)
    except json.JSONDecodeError as exc:
        return pos, f"not valid JSON ({exc.msg} at character {exc.pos - pos} of the element)"
    after = _SPACE.match(text, end).end()  # type: ignore[union-attr]
    if not text.startswith((",", "]"), after):
        return pos, f"not valid JSON (expected , or ] at character {after - pos} of the element)"
    if _SURROGATE.search(text, pos, end):
        return pos, "not valid UTF-8"
    if end - pos > MAX_ELEMENT_CHARS:
        limit = f"the {MAX_ELEMENT_CHARS}-character limit"
        return pos, f"element is {end - pos} characters, longer than {limit}"
    return end, None


def _frames(text: str, pos: int) -> bool:
    """Whether a JSON value starts at `pos` and is followed by `,` or `]`."""
    try:
        _, end = _DECODER.raw_decode(text, pos)
    except json.JSONDecodeError:
        return False
    return text.startswith((",", "]"), _SPACE.match(text, end).end())  # type: ignore[union-attr]


def _resync(text: str, start: int) -> int | None:
    """Where the bad element that starts before `start` ends: the first `, {` that follows a
    `}` or precedes a value that parses, else the array's closing `]`; None when neither
    exists (truncated)."""
    for match in _NEXT_OBJECT.finditer(text, start):
        before = match.start() - 1
        while before > start and text[before] in " \t\n\r":
            before -= 1
        if text[before] == "}" or _frames(text, match.end()):
            return match.start()
    tail = text.rstrip(" \t\n\r")
    return len(tail) - 1 if tail.endswith("]") and len(tail) - 1 >= start else None


def _json_value(name: str, value: Any) -> tuple[str | None, str | None]:
    """The text of a JSON value for `name`, or (None, problem) when its JSON type is wrong."""
    if isinstance(value, str) and _LONE_SURROGATE.search(value):
        return None, f"{name}: not valid Unicode (a lone surrogate escape)"
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


def _cut(text: str) -> str:
    """Text for a quarantine record: at most ~1 KiB, undecodable bytes as `\\xNN`, a lone
    surrogate as `\\udNNN` (the record must encode as UTF-8)."""
    shown = text[:_SHOWN_CHARS] + ("…" if len(text) > _SHOWN_CHARS else "")
    try:
        return shown.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    except UnicodeEncodeError:
        return shown.encode("utf-8", "backslashreplace").decode("utf-8")


def _shown_json(value: Any) -> str:
    return _cut(_json_text(value))


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
