"""Pure mapping of a Kraken Futures `/subaccounts` answer to balances (spec §3), no I/O here."""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Context, Decimal, Inexact, InvalidOperation
from typing import Any

from etl_project.config import SourceConfig
from etl_project.errors import MalformedResponse
from etl_project.http import json_kind
from etl_project.identity import derived_uuid, normalise_ccy, venue_uuid
from etl_project.venues.base import AccountStatus, Balance

__all__ = ["map_subaccounts"]

_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
#: Wide enough that `quantity - available` of any two NUMERIC(38,20)-sized inputs is exact.
_EXACT = Context(prec=200, traps=[Inexact, InvalidOperation])


class _Reader:
    """Typed access to the decoded JSON that names the JSON path of whatever is wrong."""

    def __init__(self, source: str) -> None:
        self.source = source

    def fail(self, path: str, problem: str) -> MalformedResponse:
        return MalformedResponse(self.source, f"/subaccounts: {path} {problem}")

    def obj(self, parent: Mapping[str, Any], key: str, path: str) -> Mapping[str, Any]:
        value = self.get(parent, key, path)
        if not isinstance(value, dict):
            raise self.fail(_join(path, key), f"must be an object, got {json_kind(value)}")
        return value

    def items(self, parent: Mapping[str, Any], key: str, path: str) -> list[Mapping[str, Any]]:
        value = self.get(parent, key, path)
        if not isinstance(value, list):
            raise self.fail(_join(path, key), f"must be an array, got {json_kind(value)}")
        for i, item in enumerate(value):
            if not isinstance(item, dict):
                raise self.fail(
                    f"{_join(path, key)}[{i}]", f"must be an object, got {json_kind(item)}"
                )
        return value

    def text(self, parent: Mapping[str, Any], key: str, path: str) -> str:
        value = self.get(parent, key, path)
        if not isinstance(value, str) or not value.strip():
            raise self.fail(_join(path, key), f"must be a non-empty string, got {json_kind(value)}")
        return value.strip()

    def optional_text(self, parent: Mapping[str, Any], key: str, path: str) -> str | None:
        value = parent.get(key)
        if value is None:
            return None
        if not isinstance(value, str):
            raise self.fail(_join(path, key), f"must be a string, got {json_kind(value)}")
        return value.strip() or None

    def number(self, parent: Mapping[str, Any], key: str, path: str) -> Decimal:
        value = self.get(parent, key, path)
        if isinstance(value, Decimal):
            return value
        if isinstance(value, float):  # NaN / Infinity literals: rejected later as not finite
            return Decimal(repr(value))
        raise self.fail(_join(path, key), f"must be a number, got {json_kind(value)}")

    def uuid(self, parent: Mapping[str, Any], key: str, path: str) -> str:
        value = self.text(parent, key, path)
        try:
            canonical = str(uuid.UUID(value))
        except ValueError:
            raise self.fail(_join(path, key), "is not a UUID") from None
        if canonical != venue_uuid(value):
            raise self.fail(_join(path, key), "is not a UUID in canonical form")
        return canonical

    def get(self, parent: Mapping[str, Any], key: str, path: str) -> Any:
        if key not in parent:
            raise self.fail(_join(path, key), "is missing")
        return parent[key]


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


@dataclass(frozen=True)
class _SubAccount:
    """What every balance of one sub-account shares."""

    uid: str
    user: str
    email: str | None
    group_uuid: str
    group: str

    def balance(
        self, wallet: str, sub_main_type: str, ccy: str, amounts: Mapping[str, Decimal]
    ) -> Balance:
        return Balance(
            user_uuid=self.uid,
            account_uuid=derived_uuid(f"kraken_futures:{self.uid}:{wallet}"),
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


def _all_three(amount: Decimal) -> dict[str, Decimal]:
    """Total = Total Prefunding = Available = amount."""
    return {"Total": amount, "Total Prefunding": amount, "Available": amount}


def map_subaccounts(
    doc: Mapping[str, Any], source: SourceConfig
) -> tuple[list[Balance], list[AccountStatus]]:
    read = _Reader(source.name)
    group_uuid = read.uuid(doc, "masterAccountUid", "")
    balances: list[Balance] = []
    accounts: list[AccountStatus] = []
    for i, item in enumerate(read.items(doc, "subaccounts", "")):
        path = f"subaccounts[{i}]"
        uid = read.uuid(item, "accountUid", path)
        name = read.optional_text(item, "name", path)
        email = read.optional_text(item, "email", path)
        sub = _SubAccount(
            uid=uid,
            user=name or read.optional_text(item, "fullName", path) or uid,
            email=email if email is not None and _EMAIL.match(email) else None,
            group_uuid=group_uuid,
            group=source.account_group,
        )

        here = f"{path}.holdingAccounts"
        for j, row in enumerate(read.items(item, "holdingAccounts", path)):
            ccy = normalise_ccy(read.text(row, "currency", f"{here}[{j}]"))
            amount = read.number(row, "amount", f"{here}[{j}]")
            balances.append(sub.balance("holding", "Holding account", ccy, _all_three(amount)))

        flex = read.obj(item, "flexAccount", path)
        here = f"{path}.flexAccount.currencies"
        for j, row in enumerate(read.items(flex, "currencies", f"{path}.flexAccount")):
            ccy = normalise_ccy(read.text(row, "currency", f"{here}[{j}]"))
            quantity = read.number(row, "quantity", f"{here}[{j}]")
            available = read.number(row, "available", f"{here}[{j}]")
            amounts = {
                "Total": quantity,
                "Total Prefunding": quantity,
                "Available": available,
                "Collateral": _difference(quantity, available),
            }
            balances.append(sub.balance("flex", "Flex account", ccy, amounts))

        here = f"{path}.futuresAccounts"
        for j, row in enumerate(read.items(item, "futuresAccounts", path)):
            pair = read.text(row, "name", f"{here}[{j}]")
            _, colon, quote = pair.partition(":")
            if not colon or not quote.strip():
                problem = f"{pair[:40]!r} has no quote currency after ':'"
                raise read.fail(f"{here}[{j}].name", problem)
            margin = read.number(row, "availableMargin", f"{here}[{j}]")
            balances.append(
                sub.balance(
                    f"futures:{pair}", "Futures account", normalise_ccy(quote), _all_three(margin)
                )
            )

        accounts.append(AccountStatus(account_id=uid, status="received"))
    return balances, accounts


def _difference(a: Decimal, b: Decimal) -> Decimal:
    """`a - b` exactly; a non-finite operand gives NaN (the balance is then rejected)."""
    if not (a.is_finite() and b.is_finite()):
        return Decimal("NaN")
    try:
        return _EXACT.subtract(a, b)
    except (Inexact, InvalidOperation):
        # Only operands far outside NUMERIC(38,20) get here; those balances are rejected anyway.
        return Decimal("NaN")
