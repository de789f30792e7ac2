"""Typed reads of decoded venue JSON that name the JSON path and the bad value on failure.

Shared by the connectors so that "a bad value rejects its row" reads the same at every venue
(docs/mapping.md, "Failure rules"): a reader raises `ValueProblem` with the path, what was
wrong and the value the venue sent (`… amount must be a number, got string "abc"`); the
connector decides whether that rejects a row, fails an account or fails the source.
Decoded JSON is assumed to come from `http.parse_json` (numbers as exact `Decimal`s).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from etl_project.http import json_kind
from etl_project.identity import venue_uuid

__all__ = [
    "CHECK_DECIMAL",
    "CHECK_VALUE",
    "ValueProblem",
    "canonical_uuid",
    "entry",
    "got",
    "items",
    "join",
    "number",
    "obj",
    "optional_text",
    "shown",
    "text",
]

#: Quarantine check of a row whose amount is not a decimal (missing, null, text, boolean).
CHECK_DECIMAL = "decimal"
#: Quarantine check of a row with any other bad value (no currency, entry not an object, …).
CHECK_VALUE = "venue_value"


class ValueProblem(Exception):
    """What is wrong at one JSON path; `check` is the quarantine check if it rejects a row."""

    def __init__(self, path: str, problem: str, check: str = CHECK_VALUE) -> None:
        super().__init__(f"{path} {problem}" if path else problem)
        self.path = path
        self.check = check


def join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def got(value: Any) -> str:
    """The JSON type and, for a scalar, the value a venue sent: `string "abc"`, `null`."""
    if value is None or isinstance(value, dict | list):
        return json_kind(value)
    if isinstance(value, str):
        return f"string {json.dumps(value[:60], ensure_ascii=False)}"
    if isinstance(value, bool):
        return f"boolean {json.dumps(value)}"
    return f"{json_kind(value)} {value}"


def shown(value: Any) -> Any:
    """A venue value for a quarantine record: decimals as exact text, containers by kind."""
    if isinstance(value, Decimal):
        return format(value, "f") if value.is_finite() else str(value)
    if isinstance(value, str):
        return value[:100]
    if value is None or isinstance(value, bool | int | float):
        return value
    return json_kind(value)


def get(parent: Mapping[str, Any], key: str, path: str, check: str = CHECK_VALUE) -> Any:
    if key not in parent:
        raise ValueProblem(join(path, key), "is missing", check)
    return parent[key]


def obj(parent: Mapping[str, Any], key: str, path: str) -> Mapping[str, Any]:
    value = get(parent, key, path)
    if not isinstance(value, dict):
        raise ValueProblem(join(path, key), f"must be an object, got {json_kind(value)}")
    return value


def items(parent: Mapping[str, Any], key: str, path: str) -> list[Any]:
    value = get(parent, key, path)
    if not isinstance(value, list):
        raise ValueProblem(join(path, key), f"must be an array, got {json_kind(value)}")
    return value


def entry(value: Any, path: str) -> Mapping[str, Any]:
    """An element of an array that must be an object."""
    if not isinstance(value, dict):
        raise ValueProblem(path, f"must be an object, got {got(value)}")
    return value


def text(parent: Mapping[str, Any], key: str, path: str) -> str:
    value = get(parent, key, path)
    if not isinstance(value, str) or not value.strip():
        raise ValueProblem(join(path, key), f"must be a non-empty string, got {got(value)}")
    return value.strip()


def optional_text(parent: Mapping[str, Any], key: str, path: str) -> str | None:
    value = parent.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise ValueProblem(join(path, key), f"must be a string, got {got(value)}")
    return value.strip() or None


def number(parent: Mapping[str, Any], key: str, path: str) -> Decimal:
    """A JSON number, exactly; NaN/Infinity literals pass (the amount check rejects them)."""
    value = get(parent, key, path, CHECK_DECIMAL)
    if isinstance(value, Decimal):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return Decimal(value)
    if isinstance(value, float):
        return Decimal(repr(value))
    raise ValueProblem(join(path, key), f"must be a number, got {got(value)}", CHECK_DECIMAL)


def canonical_uuid(parent: Mapping[str, Any], key: str, path: str) -> str:
    """A venue UUID in canonical form, lower-cased (spec §2)."""
    value = text(parent, key, path)
    try:
        canonical = str(uuid.UUID(value))
    except ValueError:
        raise ValueProblem(join(path, key), "is not a UUID") from None
    if canonical != venue_uuid(value):
        raise ValueProblem(join(path, key), "is not a UUID in canonical form")
    return canonical
