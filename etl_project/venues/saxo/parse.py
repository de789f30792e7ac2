"""Saxo OpenAPI responses -> canonical balances (spec §3 "Saxo OpenAPI"), pure functions only.

The expected accounts are the union of every successfully answered `GET /port/v1/accounts/me`
page of the snapshot (one per `AccountKey`, see `saxo_listing`); each one's balances answer is
the *last* recorded `GET /port/v1/balances` whose `AccountKey` query parameter is that
account's key (retries and re-tries after a token refresh record earlier answers first).

Failure rules (docs/mapping.md): an unreadable listing fails the source; a broken listing
entry, a failed balances call or a balances body that is not a JSON object fails that
account; a missing or non-numeric figure or `Currency` rejects the account's row to
quarantine (the account counts as received, its answer arrived).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from decimal import Decimal
from typing import Any
from urllib.parse import parse_qs, urlsplit

from etl_project.errors import (
    MalformedResponse,
    VenueError,
    error_for_status,
)
from etl_project.http import RawResponse, parse_json
from etl_project.identity import derived_uuid, normalise_ccy
from etl_project.raw import RawSnapshot

# A module import: `report.validate` imports `venues.base`, which loads every connector.
from etl_project.report import validate as report_validate
from etl_project.settings import SourceConfig
from etl_project.venues import json_values as js
from etl_project.venues.base import (
    AccountStatus,
    Balance,
    ParsedSnapshot,
    Rejected,
    balances_table,
)
from etl_project.venues.saxo.paging import (
    ACCOUNTS_PATH,
    BrokenAccount,
    Listed,
    SaxoAccount,
    merge_accounts,
    one_line,
    page_accounts,
    saxo_key,
)

__all__ = [
    "ACCOUNTS_PATH",
    "BALANCES_PATH",
    "WALLET",
    "SaxoAccount",
    "failure_reason",
    "map_snapshot",
    "response_error",
    "saxo_key",
]

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


def _is(url: str, path: str) -> bool:
    return urlsplit(url).path.rstrip("/").endswith("/" + path)


def failure_reason(raw: RawResponse) -> str:
    """`HTTP 500 InternalError: <Message>`: status plus Saxo's `ErrorCode` and `Message`."""
    try:
        doc = json.loads(raw.body)
    except (ValueError, UnicodeDecodeError):
        doc = None
    if raw.status == 200:
        return "HTTP 200 body is not a JSON object" if not isinstance(doc, dict) else "HTTP 200"
    code = one_line(doc.get("ErrorCode"), 80) if isinstance(doc, dict) else None
    message = one_line(doc.get("Message")) if isinstance(doc, dict) else None
    return f"HTTP {raw.status}" + (f" {code}" if code else "") + (f": {message}" if message else "")


def response_error(raw: RawResponse, source: str, note: str = "") -> VenueError:
    """The typed error a failed answer stands for (401/403 auth, 429 rate, 5xx unavailable)."""
    where = f"{raw.method} {urlsplit(raw.url).path or '/'}"
    try:
        doc = json.loads(raw.body)
    except (ValueError, UnicodeDecodeError):
        doc = None
    code = one_line(doc.get("ErrorCode"), 80) if isinstance(doc, dict) else None
    message = f"{where} answered {failure_reason(raw)}" + (f" {note}" if note else "")
    # A 200 that still failed is the venue not answering in the documented shape.
    kind = MalformedResponse if raw.status == 200 else error_for_status(raw.status)
    return kind(source, message, code=code, status=raw.status)


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
        if isinstance(account, BrokenAccount):
            reason: str | None = account.reason
        elif (raw_answer := answers.get(account.account_key)) is None:
            reason = "no response recorded"
        elif raw_answer.status != 200:
            reason = failure_reason(raw_answer)
        else:
            reason = _map_account(account, raw_answer, source, balances, rejected)
        status = "received" if reason is None else "failed"
        statuses.append(AccountStatus(account.account_id, status, reason, account.name))
    table, unrepresentable = balances_table(source, balances)
    rejected += unrepresentable
    table, shadowed = report_validate.quarantine_shadowed(table, rejected)
    return ParsedSnapshot(balances=table, rejected=[*rejected, *shadowed], accounts=statuses)


def _expected_accounts(snapshot: RawSnapshot, name: str) -> list[Listed]:
    """Every account of the snapshot's successful listing pages, once per `AccountKey`."""
    listing = [r for r in snapshot.responses if _is(r.url, ACCOUNTS_PATH)]
    if not listing:
        raise MalformedResponse(name, f"snapshot holds no /{ACCOUNTS_PATH} answer")
    pages = [r for r in listing if r.status == 200]
    if not pages:
        raise response_error(listing[-1], name)
    seen: dict[str, Listed] = {}
    offset = 0
    for raw in pages:
        doc = parse_json(raw.body, name, f"/{ACCOUNTS_PATH}")
        page = page_accounts(doc, name, f"/{ACCOUNTS_PATH}", offset)
        merge_accounts(seen, page)
        offset += len(page)
    return list(seen.values())


_FIGURES = (*_DIRECT.values(), *_ABSOLUTE.values(), _UNSETTLED)


def _amounts(doc: Mapping[str, Any]) -> tuple[dict[str, Decimal], list[str]]:
    """The report amounts of a balances answer, and a problem per missing/non-numeric figure."""
    figures: dict[str, Decimal] = {}
    problems: list[str] = []
    for key in _FIGURES:
        try:
            figures[key] = js.number(doc, key, "")
        except js.ValueProblem as exc:
            problems.append(f"balances: {exc}")
    if problems:
        return {}, problems
    amounts = {column: figures[key] for column, key in _DIRECT.items()}
    for column, key in _ABSOLUTE.items():
        amounts[column] = figures[key].copy_abs()  # exact: no context rounding
    pending = figures[_UNSETTLED]
    zero = Decimal(0)
    if not pending.is_finite():
        amounts["Unsettle Buy"] = amounts["Unsettle Sell"] = pending
    else:
        amounts["Unsettle Buy"] = pending.copy_negate() if pending < 0 else zero
        amounts["Unsettle Sell"] = pending if pending > 0 else zero
    return amounts, []


def _map_account(
    account: SaxoAccount,
    raw: RawResponse,
    source: SourceConfig,
    balances: list[Balance],
    rejected: list[Rejected],
) -> str | None:
    """Map one balances answer; returns why the account failed, or None when it was received
    (its row then is a balance, or a quarantine entry saying why it is not one)."""
    try:
        doc = parse_json(raw.body, source.name, f"/{BALANCES_PATH}")
    except MalformedResponse:
        return "HTTP 200 body is not valid JSON"
    if not isinstance(doc, dict):
        return "HTTP 200 body is not a JSON object"
    try:
        currency: str | None = normalise_ccy(js.text(doc, "Currency", ""))
        currency_problem = None
    except js.ValueProblem as exc:
        currency, currency_problem = None, f"balances: {exc}"
    user_uuid = derived_uuid(f"saxo:client:{saxo_key(account.client_key)}")
    account_uuid = derived_uuid(f"saxo:account:{saxo_key(account.account_key)}")
    record: dict[str, Any] = {
        "userUUID": user_uuid, "accountUUID": account_uuid,
        "Ccy": currency,
        "venue_account_id": account.account_key, "wallet": WALLET,
    }  # fmt: skip
    # The venue's values, exactly, as text (a bad one as sent).
    record.update({k: js.shown(doc[k]) for k in ("Currency", *_FIGURES) if k in doc})
    reliability = doc.get("CalculationReliability")
    if reliability != RELIABLE:
        shown = one_line(reliability, 60)
        record["CalculationReliability"] = shown
        reason = (
            f"CalculationReliability is {shown!r}, not {RELIABLE!r}"
            if shown is not None
            else "CalculationReliability is missing"
        )
        rejected.append(Rejected(source.name, "calculation_reliability", reason, record))
        return None
    checks: list[str] = []
    problems: list[str] = []
    if currency_problem is not None:
        checks.append(js.CHECK_VALUE)
        problems.append(currency_problem)
    amounts, bad_figures = _amounts(doc)
    if bad_figures:
        checks.append(js.CHECK_DECIMAL)
        problems += bad_figures
    if problems:
        rejected.append(Rejected(source.name, ", ".join(checks), "; ".join(problems), record))
        return None
    assert currency is not None
    balances.append(
        Balance(
            user_uuid=user_uuid,
            account_uuid=account_uuid,
            account_group_uuid=derived_uuid(f"saxo:account_group:{saxo_key(account.group_key)}"),
            account_group=account.group_name or source.account_group,
            user=account.client_id,
            email=None,
            sub_main_type=account.account_type,
            ccy=currency,
            venue_account_id=account.account_key,
            wallet=WALLET,
            amounts=amounts,
        )
    )
    return None
