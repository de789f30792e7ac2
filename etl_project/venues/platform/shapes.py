"""Shapes and readers of the multi-exchange platform's answers (used by `platform_mapping`).

Top-level shapes (`listed_accounts`, `cached_lists`) raise `MalformedResponse`: the source fails.
One broken listing entry is a `ListedAccount` with a `problem` (that account fails, never
requested). The readers raise `EntryProblem` for one balance object (that account fails) or
return problems per value (that row is rejected).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Context, Decimal, Inexact, InvalidOperation
from typing import Any

import pyarrow as pa

from etl_project.errors import MalformedResponse
from etl_project.http import json_kind
from etl_project.identity import normalise_ccy
from etl_project.report.columns import AMOUNT_TYPE

__all__ = [
    "ACCOUNTS_WHERE",
    "ASSET_KEYS",
    "CACHED_WHERE",
    "POSITIONS_SCHEMA",
    "POSITION_AMOUNTS",
    "EntryProblem",
    "ListedAccount",
    "amounts",
    "asset_fields",
    "cached_lists",
    "exact_sum",
    "listed_accounts",
    "optional_text",
    "read_user_id",
    "settlement_ccy",
    "shown",
    "text",
]

ACCOUNTS_WHERE = "GET /api/accounts/"
CACHED_WHERE = "GET /api/sor/get_cached_account_balance"

#: Decimal amounts of a position, in table order; only `amount` is non-nullable.
POSITION_AMOUNTS = (
    "amount", "initial_margin", "maint_margin", "unrealized_profit", "notional", "leverage",
)  # fmt: skip
_TEXT = pa.string()
#: The warehouse table of positions (`asset_type = position`), one row per position.
POSITIONS_SCHEMA = pa.schema(
    [
        pa.field("source", _TEXT, nullable=False),
        pa.field("venue", _TEXT, nullable=False),
        pa.field("account_id", _TEXT, nullable=False),
        pa.field("account_name", _TEXT, nullable=False),
        pa.field("exchange_name", _TEXT, nullable=False),
        pa.field("wallet_type", _TEXT, nullable=False),
        pa.field("symbol", _TEXT, nullable=False),
        pa.field("settlement_ccy", _TEXT, nullable=True),
        *(pa.field(name, AMOUNT_TYPE, nullable=name != "amount") for name in POSITION_AMOUNTS),
        pa.field("margin_mode", _TEXT, nullable=True),
    ]
)

_DECIMAL_TEXT = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?")
#: Wide enough that sums and differences of NUMERIC(38,20)-sized inputs are exact.
_EXACT = Context(prec=200, traps=[Inexact, InvalidOperation])


@dataclass(frozen=True)
class ListedAccount:
    """One entry of `GET /api/accounts/` (only what the mapping needs; never credentials)."""

    id: str  # lower-cased; a broken entry without one: its position `accounts[<i>]`
    name: str
    archived: bool
    #: Why the entry cannot be requested or mapped (a failed account), None when it is sound.
    problem: str | None = None


class EntryProblem(Exception):
    """A structural problem in one balance object (fails that account only)."""


# --- top-level shapes (a problem here fails the source) -------------------------------------


def listed_accounts(doc: Any, source: str) -> list[ListedAccount]:
    """The account listing: a JSON array, or a page `{"results": [...]}` without a `next`.

    One entry per account id, in listing order: an id listed twice is one account (a sound
    entry wins over a broken one). A broken entry (not an object, no `id` or `name`, a
    non-boolean `archived`) is kept with its `problem`, so it is reported as a failed account.
    """
    items = doc
    if isinstance(doc, dict) and "results" in doc:
        if doc.get("next"):
            raise MalformedResponse(source, f"{ACCOUNTS_WHERE}: paginated listing ('next' set)")
        items = doc["results"]
    if not isinstance(items, list):
        raise MalformedResponse(
            source, f"{ACCOUNTS_WHERE}: must be an array, got {json_kind(items)}"
        )
    out: dict[str, ListedAccount] = {}
    for i, item in enumerate(items):
        account = _listed(item, i)
        before = out.get(account.id)
        if before is None or (before.problem is not None and account.problem is None):
            out[account.id] = account
    return list(out.values())


def _listed(item: Any, index: int) -> ListedAccount:
    """One listing entry; a broken one carries its problem and whatever id/name it has."""
    if not isinstance(item, dict):
        problem = f"{ACCOUNTS_WHERE}: [{index}] must be an object, got {json_kind(item)}"
        return ListedAccount(f"accounts[{index}]", "", False, problem)
    raw_id, raw_name = optional_text(item, "id"), optional_text(item, "name")
    account_id = raw_id.lower() if raw_id else f"accounts[{index}]"
    try:
        archived = item.get("archived")
        if archived is not None and not isinstance(archived, bool):
            raise EntryProblem(f"archived must be a boolean, got {json_kind(archived)}")
        return ListedAccount(text(item, "id").lower(), text(item, "name"), archived is True)
    except EntryProblem as exc:
        problem = f"{ACCOUNTS_WHERE}: [{index}] {exc}"
        return ListedAccount(account_id, raw_name or "", False, problem)


def cached_lists(doc: Any, source: str) -> tuple[list[Any], list[Any]]:
    """`balances[]` and `errors[]` of one cached-balance answer (both must be arrays)."""
    if not isinstance(doc, dict):
        raise MalformedResponse(source, f"{CACHED_WHERE}: must be an object, got {json_kind(doc)}")
    found = []
    for key in ("balances", "errors"):
        value = doc.get(key, [] if key == "errors" else None)
        if not isinstance(value, list):
            raise MalformedResponse(source, f"{CACHED_WHERE}: {key} must be an array, "
                                            f"got {json_kind(value)}")  # fmt: skip
        found.append(value)
    return found[0], found[1]


# --- readers -----------------------------------------------------------------------------

#: What every asset must name; an asset without one of them is a rejected row.
ASSET_KEYS = ("asset_type", "symbol", "wallet_type")


def asset_fields(asset: Any, index: int) -> tuple[dict[str, str | None], list[str]]:
    """`asset_type`, `symbol`, `wallet_type` of one asset (None where unreadable), and a
    problem per unreadable one (the row is then rejected, the account goes on)."""
    if not isinstance(asset, dict):
        return dict.fromkeys(ASSET_KEYS), [
            f"assets[{index}] must be an object, got {json_kind(asset)}"
        ]
    fields: dict[str, str | None] = {}
    problems: list[str] = []
    for key in ASSET_KEYS:
        try:
            fields[key] = text(asset, key)
        except EntryProblem as exc:
            fields[key] = None
            problems.append(str(exc))
    return fields, problems


def settlement_ccy(symbol: str) -> str | None:
    """The settlement currency of a position: after the last `-` (`BTC:PERP-USDT` -> USDT)."""
    tail = symbol.rpartition("-")[2].strip() if "-" in symbol else ""
    return normalise_ccy(tail) if tail else None


def amounts(
    asset: Mapping[str, Any], names: tuple[str, ...], required: tuple[str, ...]
) -> tuple[dict[str, Decimal | None], list[str]]:
    """Exact decimals of `names` (strings or JSON numbers); problems named per field."""
    values: dict[str, Decimal | None] = {}
    problems: list[str] = []
    for name in names:
        raw = asset.get(name)
        value: Decimal | None = None
        if raw is None:
            if name in required:
                problems.append(f"{name} is missing or null")
        elif isinstance(raw, Decimal):
            value = raw
        elif isinstance(raw, str) and _DECIMAL_TEXT.fullmatch(raw):
            value = Decimal(raw)
        else:
            problems.append(f"{name} {shown(raw)!r} is not a decimal")
        if value is not None and not value.is_finite():
            problems.append(f"{name} {raw!s} is not a finite number")
            value = None
        values[name] = value
    return values, problems


def exact_sum(*terms: Decimal) -> Decimal:
    """The exact sum of `terms`; one outside any sane range gives NaN (the row is rejected)."""
    total = Decimal(0)
    try:
        for term in terms:
            total = _EXACT.add(total, term)
    except (Inexact, InvalidOperation):
        return Decimal("NaN")
    return total


def read_user_id(value: Any) -> str:
    if isinstance(value, Decimal) and value.is_finite() and value == value.to_integral_value():
        return str(int(value))
    if isinstance(value, str) and value.strip().isdigit():
        return str(int(value.strip()))
    raise EntryProblem(f"user_id must be an integer, got {json_kind(value)}")


def text(item: Mapping[str, Any], key: str) -> str:
    value = item.get(key)
    if not isinstance(value, str) or not value.strip():
        problem = (
            "is missing"
            if key not in item
            else f"must be a non-empty string, got {json_kind(value)}"
        )
        raise EntryProblem(f"{key} {problem}")
    return value.strip()


def optional_text(item: Mapping[str, Any], key: str) -> str | None:
    value = item.get(key)
    if not isinstance(value, str):
        return None
    return value.strip() or None


def shown(value: Any) -> Any:
    """A JSON-friendly copy of a venue value for a reject record (decimals as exact text)."""
    if isinstance(value, Decimal):
        return format(value, "f") if value.is_finite() else str(value)
    if isinstance(value, str):
        return value[:100]
    if value is None or isinstance(value, bool | int | float):
        return value
    return json_kind(value)
