"""Pure mapping of a Kraken Futures `/subaccounts` answer to balances (spec §3), no I/O here.

Problems are contained as narrowly as the data allows (docs/mapping.md, "Failure rules"):
- the top level is wrong (`masterAccountUid`, `subaccounts` not an array) -> `MalformedResponse`:
  the source fails, since no row can be placed without them;
- one sub-account is structurally wrong (not an object, no `accountUid`, `holdingAccounts` not
  an array, no `flexAccount`, …) -> that account is `failed` with the JSON path, others go on;
- one holding/flex/futures entry has a bad value (`"amount": "abc"`, no `currency`) -> that
  row is rejected to quarantine with the path and the value, the account's other rows go on.

A sub-account listed more than once gets one `AccountStatus`; every copy's rows are emitted (a
repeated (accountUUID, Ccy) is then quarantined, all copies, by the balances validation), and
a structural problem in any copy fails the account (which copy is right cannot be told).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from decimal import Context, Decimal, Inexact, InvalidOperation
from typing import Any

from etl_project.errors import MalformedResponse
from etl_project.http import json_kind
from etl_project.identity import derived_uuid, normalise_ccy
from etl_project.settings import SourceConfig
from etl_project.venues import json_values as js
from etl_project.venues.base import AccountStatus, Balance, Rejected

__all__ = ["Mapped", "map_subaccounts"]

_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
#: Wide enough that `quantity - available` of any two NUMERIC(38,20)-sized inputs is exact.
_EXACT = Context(prec=200, traps=[Inexact, InvalidOperation])


@dataclass(frozen=True)
class _SubAccount:
    """What every balance of one sub-account shares."""

    uid: str
    user: str
    email: str | None
    group_uuid: str
    group: str

    def account_uuid(self, wallet: str) -> str:
        return derived_uuid(f"kraken_futures:{self.uid}:{wallet}")

    def balance(
        self, wallet: str, sub_main_type: str, ccy: str, amounts: Mapping[str, Decimal]
    ) -> Balance:
        return Balance(
            user_uuid=self.uid,
            account_uuid=self.account_uuid(wallet),
            account_group_uuid=self.group_uuid,
            account_group=self.group,
            user=self.user,
            email=self.email,
            sub_main_type=sub_main_type,
            ccy=ccy,
            venue_account_id=self.uid,
            wallet=wallet,
            amounts=amounts,
        )


@dataclass
class Mapped:
    """Balances, rejected rows and one status per sub-account of one `/subaccounts` answer."""

    balances: list[Balance] = field(default_factory=list)
    rejected: list[Rejected] = field(default_factory=list)
    accounts: list[AccountStatus] = field(default_factory=list)


@dataclass
class _Copy:
    """One `subaccounts[]` entry as mapped; a sub-account listed twice has two copies."""

    account_id: str
    name: str | None
    balances: list[Balance] = field(default_factory=list)
    rejected: list[Rejected] = field(default_factory=list)
    failure: str | None = None


def _all_three(amount: Decimal) -> dict[str, Decimal]:
    """Total = Total Prefunding = Available = amount."""
    return {"Total": amount, "Total Prefunding": amount, "Available": amount}


def map_subaccounts(doc: Mapping[str, Any], source: SourceConfig) -> Mapped:
    """Spec §3 Kraken mapping of one decoded answer, problems contained per row or account."""
    try:
        group_uuid = js.canonical_uuid(doc, "masterAccountUid", "")
        items = js.items(doc, "subaccounts", "")
    except js.ValueProblem as exc:
        raise MalformedResponse(source.name, f"/subaccounts: {exc}") from None
    copies: dict[str, list[_Copy]] = {}
    for i, item in enumerate(items):
        copy = _map_subaccount(item, f"subaccounts[{i}]", group_uuid, source)
        copies.setdefault(copy.account_id, []).append(copy)
    out = Mapped()
    for account_id, listed in copies.items():
        name = next((c.name for c in listed if c.name), None)
        failure = next((c.failure for c in listed if c.failure), None)
        if failure is not None:
            out.accounts.append(AccountStatus(account_id, "failed", failure, name))
            continue
        for c in listed:
            out.balances.extend(c.balances)
            out.rejected.extend(c.rejected)
        out.accounts.append(AccountStatus(account_id, "received", None, name))
    return out


def _map_subaccount(item: Any, path: str, group_uuid: str, source: SourceConfig) -> _Copy:
    """One sub-account's rows; a structural problem makes the copy a failure (no rows)."""
    if not isinstance(item, dict):
        return _Copy(path, None, failure=f"{path} must be an object, got {json_kind(item)}")
    raw_uid = item.get("accountUid")
    account_id = raw_uid.strip().lower() if isinstance(raw_uid, str) and raw_uid.strip() else path
    # The display name is read first, so a sub-account failing for its id is still named.
    names = (item.get(k) for k in ("name", "fullName"))
    copy = _Copy(account_id, next((n.strip() for n in names if isinstance(n, str) and n.strip()),
                                  None))  # fmt: skip
    try:
        uid = js.canonical_uuid(item, "accountUid", path)
        name = js.optional_text(item, "name", path)
        full_name = js.optional_text(item, "fullName", path)
        email = js.optional_text(item, "email", path)
        sub = _SubAccount(
            uid=uid,
            user=name or full_name or uid,
            email=email if email is not None and _EMAIL.match(email) else None,
            group_uuid=group_uuid,
            group=source.account_group,
        )
        holdings = js.items(item, "holdingAccounts", path)
        flex = js.items(js.obj(item, "flexAccount", path), "currencies", f"{path}.flexAccount")
        futures = js.items(item, "futuresAccounts", path)
    except js.ValueProblem as exc:
        copy.failure = str(exc)
        return copy
    for j, row in enumerate(holdings):
        _row(copy, source, sub, "holding", row, f"{path}.holdingAccounts[{j}]", _holding)
    for j, row in enumerate(flex):
        _row(copy, source, sub, "flex", row, f"{path}.flexAccount.currencies[{j}]", _flex)
    for j, row in enumerate(futures):
        _row(copy, source, sub, "futures", row, f"{path}.futuresAccounts[{j}]", _futures)
    return copy


def _holding(sub: _SubAccount, row: Mapping[str, Any], here: str) -> Balance:
    ccy = normalise_ccy(js.text(row, "currency", here))
    return sub.balance(
        "holding", "Holding account", ccy, _all_three(js.number(row, "amount", here))
    )


def _flex(sub: _SubAccount, row: Mapping[str, Any], here: str) -> Balance:
    ccy = normalise_ccy(js.text(row, "currency", here))
    quantity = js.number(row, "quantity", here)
    available = js.number(row, "available", here)
    amounts = {
        "Total": quantity,
        "Total Prefunding": quantity,
        "Available": available,
        "Collateral": _difference(quantity, available),
    }
    return sub.balance("flex", "Flex account", ccy, amounts)


def _futures(sub: _SubAccount, row: Mapping[str, Any], here: str) -> Balance:
    pair = js.text(row, "name", here)
    _, colon, quote = pair.partition(":")
    if not colon or not quote.strip():
        raise js.ValueProblem(f"{here}.name", f"{pair[:40]!r} has no quote currency after ':'")
    margin = js.number(row, "availableMargin", here)
    return sub.balance(
        f"futures:{pair}", "Futures account", normalise_ccy(quote), _all_three(margin)
    )


_RowMapper = Callable[[_SubAccount, Mapping[str, Any], str], Balance]


def _row(copy: _Copy, source: SourceConfig, sub: _SubAccount, kind: str, row: Any, here: str,
         mapper: _RowMapper) -> None:  # fmt: skip
    """Map one wallet entry; a bad value rejects only this row (reason names path and value)."""
    try:
        copy.balances.append(mapper(sub, js.entry(row, here), here))
    except js.ValueProblem as exc:
        copy.rejected.append(_rejected(source, sub, kind, row, exc))


def _rejected(
    source: SourceConfig, sub: _SubAccount, kind: str, row: Any, problem: js.ValueProblem
) -> Rejected:
    """A rejected wallet entry: the account's identity and the venue's values as text."""
    entry = row if isinstance(row, dict) else {}
    wallet, currency = kind, entry.get("currency")
    if kind == "futures":
        pair = entry.get("name")
        pair = pair.strip() if isinstance(pair, str) else ""
        wallet = f"futures:{pair}" if pair else kind
        currency = pair.partition(":")[2]
    record: dict[str, Any] = {
        "userUUID": sub.uid,
        "accountUUID": sub.account_uuid(wallet) if wallet != "futures" else None,
        "Ccy": normalise_ccy(currency) if isinstance(currency, str) and currency.strip() else None,
        "venue_account_id": sub.uid,
        "wallet": wallet,
    }
    if not isinstance(row, dict):
        record["entry"] = js.shown(row)
    record.update({k: js.shown(v) for k, v in entry.items() if k not in record})
    return Rejected(source.name, problem.check, str(problem), record)


def _difference(a: Decimal, b: Decimal) -> Decimal:
    """`a - b` exactly; a non-finite operand gives NaN (the balance is then rejected)."""
    if not (a.is_finite() and b.is_finite()):
        return Decimal("NaN")
    try:
        return _EXACT.subtract(a, b)
    except (Inexact, InvalidOperation):
        # Only operands far outside NUMERIC(38,20) get here; those balances are rejected anyway.
        return Decimal("NaN")
