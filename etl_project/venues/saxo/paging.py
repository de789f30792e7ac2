"""The Saxo `GET /port/v1/accounts/me` listing: its entries, read one account at a time.

Shared by `fetch` (which accounts to ask balances for) and `parse` (which accounts are
expected), so both agree on the rules of docs/mapping.md ("Failure rules"):
- a page without a `Data` array is unreadable -> `MalformedResponse` (the source fails);
- one entry that is not an object, or lacks `AccountKey`, `ClientKey` or `AccountType`, is a
  `BrokenAccount`: a named gap (failed, with the JSON path), never fetched; the others go on;
- an `AccountKey` listed more than once (overlapping pages) is one account, fetched once: the
  first readable entry wins, a broken entry only stands when no readable one exists.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from etl_project.errors import MalformedResponse
from etl_project.venues import json_values as js

__all__ = [
    "ACCOUNTS_PATH",
    "BrokenAccount",
    "Listed",
    "SaxoAccount",
    "merge_accounts",
    "one_line",
    "page_accounts",
    "saxo_key",
]

ACCOUNTS_PATH = "port/v1/accounts/me"


def saxo_key(value: str) -> str:
    """A Saxo key as used inside uuid5 names: a canonical UUID lower-cased (spec §2), any
    other key (Saxo's base64-like keys are case-sensitive) exactly as given."""
    try:
        parsed = uuid.UUID(value)
    except ValueError:
        return value
    return str(parsed) if str(parsed) == value.lower() else value


def one_line(value: Any, limit: int = 200) -> str | None:
    """Venue text on one line, bounded; None for anything that is not non-blank text."""
    if not isinstance(value, str):
        return None
    return " ".join(value.split())[:limit] or None


@dataclass(frozen=True)
class SaxoAccount:
    """What the report needs of one readable `accounts/me` entry."""

    account_key: str
    client_key: str
    client_id: str
    account_type: str
    group_key: str  # AccountGroupKey, else the ClientKey (the client's default group)
    group_name: str | None
    #: The venue's display name: `DisplayName`, else `AccountId` (e.g. `4567123/EUR`).
    name: str | None = None

    @property
    def account_id(self) -> str:
        return self.account_key


@dataclass(frozen=True)
class BrokenAccount:
    """An entry that cannot be fetched or mapped: a failed account with the reason."""

    account_id: str  # its AccountKey, else its JSON path `Data[<n>]` (n counts across pages)
    reason: str
    name: str | None = None


Listed = SaxoAccount | BrokenAccount


def page_accounts(doc: Any, source: str, where: str, offset: int = 0) -> list[Listed]:
    """The entries of one decoded `accounts/me` page; `offset` = entries on earlier pages."""
    if not isinstance(doc, dict) or not isinstance(doc.get("Data"), list):
        raise MalformedResponse(source, f"{where}: answer has no Data array")
    return [_entry(item, f"Data[{offset + i}]", where) for i, item in enumerate(doc["Data"])]


def merge_accounts(known: dict[str, Listed], page: Iterable[Listed]) -> int:
    """Add a page's entries to `known` (by account id, listing order); returns how many
    accounts are new. A readable entry replaces a broken one of the same key."""
    new = 0
    for entry in page:
        before = known.get(entry.account_id)
        if before is None:
            new += 1
        if before is None or (isinstance(before, BrokenAccount) and isinstance(entry, SaxoAccount)):
            known[entry.account_id] = entry
    return new


def _entry(item: Any, path: str, where: str) -> Listed:
    if not isinstance(item, dict):
        return BrokenAccount(path, f"{where}: {path} must be an object, got {js.got(item)}")
    name = one_line(item.get("DisplayName")) or one_line(item.get("AccountId"))
    key = item.get("AccountKey")
    key = key.strip() if isinstance(key, str) and key.strip() else None
    try:
        client_key = js.text(item, "ClientKey", path)
        account_key = js.text(item, "AccountKey", path)
        account_type = js.text(item, "AccountType", path)
    except js.ValueProblem as exc:
        return BrokenAccount(key or path, f"{where}: {exc}", name)
    client_id = item.get("ClientId")
    if isinstance(client_id, Decimal) and client_id == client_id.to_integral_value():
        client_id = format(client_id, "f")
    return SaxoAccount(
        account_key=account_key,
        client_key=client_key,
        client_id=one_line(client_id) or client_key,
        account_type=account_type,
        group_key=one_line(item.get("AccountGroupKey")) or client_key,
        group_name=one_line(item.get("AccountGroupName")),
        name=name,
    )
