"""Saxo OpenAPI responses -> canonical balances (spec §3 "Saxo OpenAPI"), pure functions only.

The expected accounts are the union of every successfully answered `GET /port/v1/accounts/me`
page of the snapshot; each one's balances answer is the *last* recorded
`GET /port/v1/balances` whose `AccountKey` query parameter is that account's key (retries and
re-tries after a token refresh record earlier answers first). See docs/mapping.md for the
column mapping and every choice made where the spec is silent.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any
from urllib.parse import parse_qs, urlsplit

from etl_project.config import SourceConfig
from etl_project.errors import (
    MalformedResponse,
    VenueError,
    error_for_status,
)
from etl_project.http import RawResponse, parse_json
from etl_project.identity import derived_uuid, normalise_ccy
from etl_project.raw import RawSnapshot
from etl_project.venues.base import (
    AccountStatus,
    Balance,
    ParsedSnapshot,
    Rejected,
    balances_table,
)

__all__ = [
    "ACCOUNTS_PATH",
    "BALANCES_PATH",
    "WALLET",
    "SaxoAccount",
    "failure_reason",
    "map_snapshot",
    "page_accounts",
    "response_error",
    "saxo_key",
]

ACCOUNTS_PATH = "port/v1/accounts/me"
BALANCES_PATH = "port/v1/balances"
#: `wallet` trace value: a Saxo account is a single wallet (its type is in `subMainType`).
WALLET = "account"
RELIABLE = "Ok"

#: Report amount column -> Saxo balances field, and how the value is taken.
_DIRECT = {
    "Total": "TotalValue",
    "Total Prefunding": "CashBalance",
    "Available": "CashAvailableForTrading",
    "Hold": "CashBlocked",
    "Exchange": "NonMarginPositionsValue",
}
_ABSOLUTE = {"Collateral": "MarginUsedByCurrentPositions", "Brokerage": "CostToClosePositions"}
_UNSETTLED = "TransactionsNotBooked"


def saxo_key(value: str) -> str:
    """A Saxo key as used inside uuid5 names: a canonical UUID lower-cased (spec §2), any
    other key (Saxo's base64-like keys are case-sensitive) exactly as given."""
    try:
        parsed = uuid.UUID(value)
    except ValueError:
        return value
    return str(parsed) if str(parsed) == value.lower() else value


def _is(url: str, path: str) -> bool:
    return urlsplit(url).path.rstrip("/").endswith("/" + path)


def _text(value: Any, limit: int = 200) -> str | None:
    if not isinstance(value, str):
        return None
    return " ".join(value.split())[:limit] or None


def failure_reason(raw: RawResponse) -> str:
    """`HTTP 500 InternalError: <Message>`: status plus Saxo's `ErrorCode` and `Message`."""
    try:
        doc = json.loads(raw.body)
    except (ValueError, UnicodeDecodeError):
        doc = None
    if raw.status == 200:
        return "HTTP 200 body is not a JSON object" if not isinstance(doc, dict) else "HTTP 200"
    code = _text(doc.get("ErrorCode"), 80) if isinstance(doc, dict) else None
    message = _text(doc.get("Message")) if isinstance(doc, dict) else None
    return f"HTTP {raw.status}" + (f" {code}" if code else "") + (f": {message}" if message else "")


def response_error(raw: RawResponse, source: str, note: str = "") -> VenueError:
    """The typed error a failed answer stands for (401/403 auth, 429 rate, 5xx unavailable)."""
    where = f"{raw.method} {urlsplit(raw.url).path or '/'}"
    try:
        doc = json.loads(raw.body)
    except (ValueError, UnicodeDecodeError):
        doc = None
    code = _text(doc.get("ErrorCode"), 80) if isinstance(doc, dict) else None
    message = f"{where} answered {failure_reason(raw)}" + (f" {note}" if note else "")
    # A 200 that still failed is the venue not answering in the documented shape.
    kind = MalformedResponse if raw.status == 200 else error_for_status(raw.status)
    return kind(source, message, code=code, status=raw.status)


@dataclass(frozen=True)
class SaxoAccount:
    """What the report needs of one `accounts/me` entry."""

    account_key: str
    client_key: str
    client_id: str
    account_type: str
    group_key: str  # AccountGroupKey, else the ClientKey (the client's default group)
    group_name: str | None


def page_accounts(doc: Any, source: str, where: str) -> list[SaxoAccount]:
    """The accounts of one decoded `accounts/me` page; a malformed entry names its JSON path."""
    if not isinstance(doc, dict) or not isinstance(doc.get("Data"), list):
        raise MalformedResponse(source, f"{where}: answer has no Data array")
    accounts = []
    for i, item in enumerate(doc["Data"]):
        path = f"{where}: Data[{i}]"
        if not isinstance(item, dict):
            raise MalformedResponse(source, f"{path} must be an object")

        def text(key: str, item: Mapping[str, Any] = item, path: str = path) -> str:
            value = item.get(key)
            if not isinstance(value, str) or not value.strip():
                raise MalformedResponse(source, f"{path}.{key} must be a non-empty string")
            return value.strip()

        client_key = text("ClientKey")
        client_id = item.get("ClientId")
        if isinstance(client_id, Decimal) and client_id == client_id.to_integral_value():
            client_id = format(client_id, "f")
        group_key = item.get("AccountGroupKey")
        accounts.append(
            SaxoAccount(
                account_key=text("AccountKey"),
                client_key=client_key,
                client_id=_text(client_id) or client_key,
                account_type=text("AccountType"),
                group_key=_text(group_key) or client_key,
                group_name=_text(item.get("AccountGroupName")),
            )
        )
    return accounts


def map_snapshot(snapshot: RawSnapshot, source: SourceConfig) -> ParsedSnapshot:
    """Balances, quarantined rows and per-account completeness of one Saxo snapshot."""
    name = source.name
    if snapshot.error:
        first = snapshot.error.splitlines()[0][:200]
        raise VenueError(name, f"snapshot of a fetch that ended with an error ({first})")
    accounts = _expected_accounts(snapshot, name)
    answers: dict[str, RawResponse] = {}
    for raw in snapshot.responses:
        if _is(raw.url, BALANCES_PATH):
            for key in parse_qs(urlsplit(raw.url).query).get("AccountKey", []):
                answers[key] = raw  # the last answer per account wins
    balances: list[Balance] = []
    rejected: list[Rejected] = []
    statuses: list[AccountStatus] = []
    for account in accounts:
        raw_answer = answers.get(account.account_key)
        if raw_answer is None:
            reason: str | None = "no response recorded"
        elif raw_answer.status != 200:
            reason = failure_reason(raw_answer)
        else:
            reason = _map_account(account, raw_answer, source, balances, rejected)
        status = "received" if reason is None else "failed"
        statuses.append(AccountStatus(account.account_key, status, reason))
    table, unrepresentable = balances_table(source, balances)
    return ParsedSnapshot(balances=table, rejected=[*rejected, *unrepresentable], accounts=statuses)


def _expected_accounts(snapshot: RawSnapshot, name: str) -> list[SaxoAccount]:
    listing = [r for r in snapshot.responses if _is(r.url, ACCOUNTS_PATH)]
    if not listing:
        raise MalformedResponse(name, f"snapshot holds no /{ACCOUNTS_PATH} answer")
    pages = [r for r in listing if r.status == 200]
    if not pages:
        raise response_error(listing[-1], name)
    seen: dict[str, SaxoAccount] = {}
    for raw in pages:
        doc = parse_json(raw.body, name, f"/{ACCOUNTS_PATH}")
        for account in page_accounts(doc, name, f"/{ACCOUNTS_PATH}"):
            seen.setdefault(account.account_key, account)
    return list(seen.values())


class _Missing(Exception):
    """A balances answer lacks a field the mapping needs (that account fails, others go on)."""


def _number(doc: Mapping[str, Any], key: str) -> Decimal:
    value = doc.get(key)
    if isinstance(value, Decimal):
        return value
    if isinstance(value, float):  # NaN / Infinity literals: rejected later as not finite
        return Decimal(repr(value))
    raise _Missing(f"balances: {key} is missing" if value is None else f"balances: {key} "
                   "must be a number")  # fmt: skip


def _amounts(doc: Mapping[str, Any]) -> dict[str, Decimal]:
    amounts = {column: _number(doc, key) for column, key in _DIRECT.items()}
    for column, key in _ABSOLUTE.items():
        amounts[column] = _number(doc, key).copy_abs()  # exact: no context rounding
    pending = _number(doc, _UNSETTLED)
    zero = Decimal(0)
    if not pending.is_finite():
        amounts["Unsettle Buy"] = amounts["Unsettle Sell"] = pending
    else:
        amounts["Unsettle Buy"] = pending.copy_negate() if pending < 0 else zero
        amounts["Unsettle Sell"] = pending if pending > 0 else zero
    return amounts


def _map_account(
    account: SaxoAccount,
    raw: RawResponse,
    source: SourceConfig,
    balances: list[Balance],
    rejected: list[Rejected],
) -> str | None:
    """Map one balances answer; returns why the account failed, or None when it was received."""
    try:
        doc = parse_json(raw.body, source.name, f"/{BALANCES_PATH}")
    except MalformedResponse:
        return "HTTP 200 body is not valid JSON"
    if not isinstance(doc, dict):
        return "HTTP 200 body is not a JSON object"
    currency = _text(doc.get("Currency"), 40)
    if currency is None:
        return "balances: Currency is missing"
    user_uuid = derived_uuid(f"saxo:client:{saxo_key(account.client_key)}")
    account_uuid = derived_uuid(f"saxo:account:{saxo_key(account.account_key)}")
    reliability = doc.get("CalculationReliability")
    if reliability != RELIABLE:
        shown = _text(reliability, 60)
        record: dict[str, Any] = {
            "userUUID": user_uuid, "accountUUID": account_uuid, "Ccy": normalise_ccy(currency),
            "venue_account_id": account.account_key, "wallet": WALLET,
            "CalculationReliability": shown,
        }  # fmt: skip
        for key in (*_DIRECT.values(), *_ABSOLUTE.values(), _UNSETTLED):
            if isinstance(doc.get(key), Decimal):
                record[key] = format(doc[key], "f")  # the venue's values, exactly, as text
        reason = (
            f"CalculationReliability is {shown!r}, not {RELIABLE!r}"
            if shown is not None
            else "CalculationReliability is missing"
        )
        rejected.append(Rejected(source.name, "calculation_reliability", reason, record))
        return None
    try:
        amounts = _amounts(doc)
    except _Missing as exc:
        return str(exc)
    balances.append(
        Balance(
            user_uuid=user_uuid,
            account_uuid=account_uuid,
            account_group_uuid=derived_uuid(f"saxo:account_group:{saxo_key(account.group_key)}"),
            account_group=account.group_name or source.account_group,
            user=account.client_id,
            email=None,
            sub_main_type=account.account_type,
            ccy=normalise_ccy(currency),
            venue_account_id=account.account_key,
            wallet=WALLET,
            amounts=amounts,
        )
    )
    return None
