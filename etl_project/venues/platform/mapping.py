"""Pure mapping of the multi-exchange platform's answers to report balances (spec §3).

Inputs are the decoded `GET /api/accounts/` listing and every `get_cached_account_balance`
answer of one snapshot; outputs are canonical `Balance`s, rows of the positions table
(`POSITIONS_SCHEMA`), rejects and one `AccountStatus` per expected (non-archived) account.

Problems are contained as narrowly as the data allows (docs/mapping.md, "Failure rules"):
- the top-level shape of an answer is wrong -> `MalformedResponse` (the source fails);
- one listing entry or one balance object is structurally wrong (no `id`, no `username`,
  `assets` not an array, …) -> that account is `failed` with the reason, the others go on;
- one asset is wrong (not an object, no `wallet_type`, `"amount": "n/a"`) -> that row is
  `rejected` with the field and the value.

An account with more than one balance object is still one account: every copy's token rows
are kept (a repeated (accountUUID, Ccy) is quarantined, all copies, by the balances
validation), and its positions go to quarantine rather than twice into the positions table.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import pyarrow as pa

from etl_project.http import json_kind
from etl_project.identity import derived_uuid, normalise_ccy
from etl_project.settings import SourceConfig
from etl_project.venues.base import AccountStatus, Balance, Rejected, amount_problem
from etl_project.venues.json_values import CHECK_VALUE
from etl_project.venues.platform.shapes import (
    ASSET_KEYS,
    POSITION_AMOUNTS,
    POSITIONS_SCHEMA,
    EntryProblem,
    ListedAccount,
    amounts,
    asset_fields,
    cached_lists,
    exact_sum,
    optional_text,
    read_user_id,
    settlement_ccy,
    shown,
    text,
)

__all__ = ["CHECK_REPEATED", "NOT_RETURNED", "Mapped", "map_accounts"]

NOT_RETURNED = "not returned by the platform"
#: Quarantine check of a position of an account with more than one balance object.
CHECK_REPEATED = "repeated_account"

_ID_KEYS = ("account_id", "id", "account_uuid")
_NAME_KEYS = ("account_name", "name", "account")
_MESSAGE_KEYS = ("error", "message", "detail", "msg", "reason", "error_message")


@dataclass
class Mapped:
    """Everything the mapping produced from one snapshot."""

    balances: list[Balance] = field(default_factory=list)
    positions: pa.Table = field(default_factory=POSITIONS_SCHEMA.empty_table)
    rejected: list[Rejected] = field(default_factory=list)
    accounts: list[AccountStatus] = field(default_factory=list)


# --- the mapping -----------------------------------------------------------------------------


def map_accounts(listed: list[ListedAccount], cached: list[Any], source: SourceConfig) -> Mapped:
    """Balances, positions, rejects and statuses of the non-archived `listed` accounts."""
    expected = [a for a in listed if not a.archived]
    sound = [a for a in expected if a.problem is None]
    by_id = {a.id: a for a in sound}
    by_name = {a.name: a for a in sound}
    archived = {a.id for a in listed if a.archived} | {a.name for a in listed if a.archived}
    broken = {a.id for a in expected if a.problem} | {a.name for a in expected if a.problem}
    broken.discard("")  # a broken entry without a name
    failed: dict[str, str] = {}
    entries: dict[str, list[Mapping[str, Any]]] = {}
    out = Mapped()
    for doc in cached:
        balances, errors = cached_lists(doc, source.name)
        for error in errors:
            account = _identify(error, by_id, by_name, lenient=True)
            if account is not None:
                failed.setdefault(account.id, _message(error))
        for i, entry in enumerate(balances):
            account = _identify(entry, by_id, by_name) if isinstance(entry, dict) else None
            if account is None:
                out.rejected.append(_unexpected(source.name, entry, i, archived, broken))
            else:
                entries.setdefault(account.id, []).append(entry)
    rows: list[dict[str, Any]] = []
    for account in expected:
        name = account.name or None
        reason = account.problem or failed.get(account.id)
        if reason is None and account.id not in entries:
            reason = NOT_RETURNED
        if reason is not None:
            out.accounts.append(AccountStatus(account.id, "failed", reason, name))
            continue
        mapper = _AccountMapper(source)
        try:
            for entry in entries[account.id]:
                mapper.map(entry, account)
        except EntryProblem as exc:
            reason = f"malformed balance entry: {exc}"
            out.accounts.append(AccountStatus(account.id, "failed", reason, name))
            continue
        out.balances.extend(mapper.balances)
        out.rejected.extend(mapper.rejected)
        copies = len(entries[account.id])
        if copies == 1:
            rows.extend(mapper.positions)
        else:
            out.rejected.extend(
                _repeated_position(source.name, p, copies) for p in mapper.positions
            )
        out.accounts.append(AccountStatus(account.id, "received", None, name))
    out.positions = pa.Table.from_pylist(rows, schema=POSITIONS_SCHEMA)
    return out


class _AccountMapper:
    """Maps the balance object(s) of one account; results are kept only if all are sound."""

    def __init__(self, source: SourceConfig) -> None:
        self.source = source
        self.balances: list[Balance] = []
        self.positions: list[dict[str, Any]] = []
        self.rejected: list[Rejected] = []

    def map(self, entry: Mapping[str, Any], account: ListedAccount) -> None:
        exchange = text(entry, "exchange_name")
        username = text(entry, "username")
        user_id = read_user_id(entry.get("user_id"))
        account_id = optional_text(entry, "account_id")
        account_id = account_id.lower() if account_id else account.id
        account_name = optional_text(entry, "account_name") or account.name
        assets = entry.get("assets")
        if not isinstance(assets, list):
            raise EntryProblem(f"assets must be an array, got {json_kind(assets)}")
        trace = {"account_id": account_id, "account_name": account_name, "exchange_name": exchange}
        shaped = []
        # Trade Ahead that cannot be known, as (wallet, settlement ccy, why); None = any.
        unknown: list[tuple[str | None, str | None, str]] = []
        for j, asset in enumerate(assets):
            fields, problems = asset_fields(asset, j)
            if problems:
                self._reject(CHECK_VALUE, problems, {**trace, **fields}, asset)
                if (blind := _unreadable_margin(fields, problems[0], j)) is not None:
                    unknown.append(blind)
                continue
            kind, symbol, wallet = (str(fields[k]) for k in ASSET_KEYS)
            shaped.append((kind, symbol, wallet, asset))

        # Positions first: their initial margins are the tokens' Trade Ahead.
        margin: dict[tuple[str, str], Decimal] = {}
        for kind, symbol, wallet, asset in shaped:
            if kind != "position":
                continue
            record = {**trace, "wallet_type": wallet, "symbol": symbol, "asset_type": kind}
            values, problems = amounts(asset, POSITION_AMOUNTS, required=("amount",))
            settle = settlement_ccy(symbol)
            initial = values.get("initial_margin")
            if settle is not None and any(p.startswith("initial_margin") for p in problems):
                unknown.append((wallet, settle, f"position {symbol} {problems[0]}"))
            elif settle is not None and initial is not None:
                total = margin.get((wallet, settle), Decimal(0))
                margin[(wallet, settle)] = exact_sum(total, initial)
            problems += [
                p for k, v in values.items() if v is not None and (p := amount_problem(k, v))
            ]
            if problems:
                self._reject("decimal", problems, record, asset)
                continue
            self.positions.append({
                "source": self.source.name, "venue": self.source.kind, **trace,
                "wallet_type": wallet, "symbol": symbol, "settlement_ccy": settle, **values,
                "margin_mode": optional_text(asset, "margin_mode"),
            })  # fmt: skip

        group_uuid = derived_uuid(f"platform:exchange:{exchange}")
        user_uuid = derived_uuid(f"platform:user:{user_id}")
        for kind, symbol, wallet, asset in shaped:
            record = {**trace, "wallet_type": wallet, "symbol": symbol, "asset_type": kind}
            if kind == "position":
                continue
            if kind != "token":
                self._reject("asset_type", [f"asset_type {kind[:40]!r} is not token or position"],
                             record, asset)  # fmt: skip
                continue
            ccy = normalise_ccy(symbol)
            account_uuid = derived_uuid(f"platform:{account_id}:{wallet}")
            record = {**record, "accountUUID": account_uuid, "Ccy": ccy}  # its report key
            values, problems = amounts(asset, ("amount", "borrowed"), required=("amount",))
            why = next((why for w, c, why in unknown if w in (None, wallet) and c in (None, ccy)),
                       None)  # fmt: skip
            if why is not None:
                problems.append(f"Trade Ahead unknown: {why}")
            if problems:
                self._reject("decimal", problems, record, asset)
                continue
            amount = values["amount"]
            assert amount is not None
            borrowed = values.get("borrowed") or Decimal(0)
            ahead = margin.get((wallet, ccy), Decimal(0))
            available = exact_sum(amount, borrowed.copy_negate(), ahead.copy_negate())
            self.balances.append(Balance(
                user_uuid=user_uuid,
                account_uuid=account_uuid,
                account_group_uuid=group_uuid, account_group=exchange,
                user=username, email=None, sub_main_type=wallet, ccy=ccy,
                venue_account_id=account_id, wallet=wallet,
                amounts={"Total": amount, "Total Prefunding": amount,
                         "Available": available, "Trade Ahead": ahead},
            ))  # fmt: skip

    def _reject(self, check: str, problems: list[str], record: dict[str, Any], asset: Any) -> None:
        if not isinstance(asset, dict):
            record, asset = {**record, "asset": shown(asset)}, {}
        extra = {k: shown(v) for k, v in asset.items() if k not in record}
        self.rejected.append(
            Rejected(self.source.name, check, "; ".join(problems), {**record, **extra})
        )


# --- small readers ---------------------------------------------------------------------------


def _unreadable_margin(
    fields: Mapping[str, str | None], problem: str, index: int
) -> tuple[str | None, str | None, str] | None:
    """A position with an unreadable wallet or symbol: the (wallet, ccy) of the tokens whose
    Trade Ahead it could feed (None = any), with why; None when it feeds no token."""
    if fields["asset_type"] != "position":
        return None
    symbol = fields["symbol"]
    settle = settlement_ccy(symbol) if symbol else None
    if symbol is not None and settle is None:
        return None  # a symbol without a settlement currency feeds no token
    return fields["wallet_type"], settle, f"position {symbol or f'assets[{index}]'} {problem}"


def _repeated_position(source: str, row: Mapping[str, Any], copies: int) -> Rejected:
    """A position of an account the platform returned more than once: not kept twice."""
    record = {k: shown(v) for k, v in row.items() if k not in ("source", "venue")}
    reason = f"account listed {copies} times by the platform; its positions are not kept"
    return Rejected(source, CHECK_REPEATED, reason, record)


def _identify(
    item: Any, by_id: dict[str, ListedAccount], by_name: dict[str, ListedAccount],
    lenient: bool = False,
) -> ListedAccount | None:  # fmt: skip
    """The expected account an entry belongs to: by its id when it has one, else by name."""
    if not isinstance(item, dict):
        return None
    for key in _ID_KEYS if lenient else _ID_KEYS[:1]:
        value = item.get(key)
        if isinstance(value, str) and value.strip():
            found = by_id.get(value.strip().lower())
            if found is not None or not lenient:
                return found
    for key in _NAME_KEYS if lenient else _NAME_KEYS[:1]:
        value = item.get(key)
        if isinstance(value, str) and value.strip() in by_name:
            return by_name[value.strip()]
    return None


def _message(error: Mapping[str, Any]) -> str:
    """The reason an `errors[]` entry gives (first message-like field), one line."""
    for key in _MESSAGE_KEYS:
        value = error.get(key)
        if isinstance(value, dict):
            value = next((value[k] for k in _MESSAGE_KEYS if isinstance(value.get(k), str)), None)
        if isinstance(value, str) and value.strip():
            return " ".join(value.split())[:300]
    return "listed in errors[] without a message"


def _unexpected(
    source: str, entry: Any, index: int, archived: set[str], broken: set[str]
) -> Rejected:
    keys = ("account_id", "account_name", "exchange_name")
    record = {k: shown(entry.get(k)) for k in keys} if isinstance(entry, dict) else {}
    account_id, name = record.get("account_id"), record.get("account_name")
    known = {account_id.strip().lower() if isinstance(account_id, str) else None,
             name.strip() if isinstance(name, str) else None}  # fmt: skip
    why = "is not in the /api/accounts/ listing"
    if known & archived:
        why = "is archived"
    elif known & broken:
        why = "has a broken /api/accounts/ entry"
    reason = f"balances[{index}]: account {why}; not reported"
    return Rejected(source, "unexpected_account", reason, record)
