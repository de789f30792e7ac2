"""Kraken Futures: `GET /derivatives/api/v3/subaccounts` (seed 003, spec §3).

One signed call returns the master account and every sub-account with its holding, flex
(multi-collateral) and futures (single-collateral) wallets. Requests are signed with
`APIKey`, `Nonce` and `Authent` headers, built fresh for every attempt:

    Authent = base64(HMAC-SHA512(base64decode(api_secret), SHA256(postData + nonce + endpointPath)))

where `endpointPath` is the URL path after `/derivatives` (e.g. `/api/v3/subaccounts`) and
`postData` is the query string (empty for this call).

Kraken answers errors as `{"result": "error", "error": "<code>"}` with HTTP 200 as well as
with 4xx/5xx; both are typed here (`VenueAuthError`, `VenueRateLimited`, `VenueError`).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from decimal import Context, Decimal, Inexact, InvalidOperation
from typing import Any, ClassVar
from urllib.parse import urlparse

from etl_project.config import Secret, SourceConfig, check_url
from etl_project.errors import (
    ConfigError,
    MalformedResponse,
    VenueAuthError,
    VenueError,
    VenueRateLimited,
    VenueUnavailable,
)
from etl_project.http import HttpClient, RawResponse, json_kind, parse_json
from etl_project.identity import derived_uuid, normalise_ccy, venue_uuid
from etl_project.raw import RawSnapshot
from etl_project.venues.base import (
    AccountStatus,
    Balance,
    Connector,
    ParsedSnapshot,
    balances_table,
)

__all__ = [
    "AUTH_ERRORS",
    "RATE_LIMIT_ERRORS",
    "UNAVAILABLE_ERRORS",
    "KrakenFuturesConnector",
    "KrakenFuturesSettings",
    "NonceSource",
    "authent",
    "check_response",
    "endpoint_path",
    "venue_error",
]

DEFAULT_BASE_URL = "https://futures.kraken.com/derivatives/api/v3"
SUBACCOUNTS = "subaccounts"

#: Venue error codes meaning "our credentials, signature or nonce were rejected".
AUTH_ERRORS = frozenset({"authenticationError", "nonceBelowThreshold", "nonceDuplicate"})
#: Venue error codes meaning "too many requests".
RATE_LIMIT_ERRORS = frozenset({"apiLimitExceeded"})
#: Venue error codes meaning "the venue is down" (a `VenueUnavailable`, still a `VenueError`).
UNAVAILABLE_ERRORS = frozenset({"Unavailable", "Server Error"})

_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_DERIVATIVES = re.compile(r"^.*?/derivatives(?=/|$)")
#: Wide enough that `quantity - available` of any two NUMERIC(38,20)-sized inputs is exact.
_EXACT = Context(prec=200, traps=[Inexact, InvalidOperation])


@dataclass(frozen=True)
class KrakenFuturesSettings:
    """Config fields of a `kind: kraken_futures` source."""

    api_key: Secret
    api_secret: Secret
    base_url: str = DEFAULT_BASE_URL
    connect_timeout: float = 5.0
    read_timeout: float = 30.0

    def validate(self, where: str) -> None:
        """One-line `ConfigError` naming `where`; never quotes a secret."""
        check_url(self.base_url, f"{where}: base_url")
        if not str(self.api_key).strip():
            raise ConfigError(f"{where}: api_key is empty")
        secret = str.__str__(self.api_secret)
        if not secret.strip():
            raise ConfigError(f"{where}: api_secret is empty")
        try:
            base64.b64decode(secret, validate=True)
        except (binascii.Error, ValueError):
            raise ConfigError(f"{where}: api_secret is not valid base64") from None
        for name in ("connect_timeout", "read_timeout"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
                raise ConfigError(f"{where}: {name} must be a positive number of seconds")


def authent(api_secret_b64: str, endpoint_path: str, nonce: str, post_data: str = "") -> str:
    """Kraken Futures `Authent` header value for one request (seed 003)."""
    digest = hashlib.sha256((post_data + nonce + endpoint_path).encode("utf-8")).digest()
    key = base64.b64decode(api_secret_b64)
    return base64.b64encode(hmac.new(key, digest, hashlib.sha512).digest()).decode("ascii")


def endpoint_path(url: str) -> str:
    """The signed path: the URL path without everything up to and including `/derivatives`.

    `https://futures.kraken.com/derivatives/api/v3/subaccounts` -> `/api/v3/subaccounts`;
    a URL without a `/derivatives` segment (a proxy, the simulator) signs its whole path.
    """
    path = urlparse(url).path or "/"
    return _DERIVATIVES.sub("", path, count=1) or "/"


class NonceSource:
    """Strictly increasing nonces (millisecond time, bumped past the previous one), thread-safe.

    One process-wide instance is shared by every connector so two sources or threads using the
    same key never send a duplicate or lower nonce.
    """

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._last = 0

    def next(self) -> str:
        with self._lock:
            candidate = int(self._clock() * 1000)
            if candidate <= self._last:
                candidate = self._last + 1
            self._last = candidate
            return str(candidate)


_NONCES = NonceSource()


class KrakenFuturesConnector(Connector):
    """Balances of every Kraken Futures sub-account of one API key."""

    kind: ClassVar[str] = "kraken_futures"
    settings_type: ClassVar[type[Any]] = KrakenFuturesSettings

    def __init__(
        self, source: SourceConfig, http: HttpClient, *, nonces: NonceSource | None = None
    ) -> None:
        super().__init__(source, http)
        self.nonces = nonces or _NONCES

    def fetch(self) -> None:
        settings: KrakenFuturesSettings = self.settings
        url = f"{settings.base_url.rstrip('/')}/{SUBACCOUNTS}"
        signed_path = endpoint_path(url)
        api_key = _reveal(settings.api_key)
        api_secret = _reveal(settings.api_secret)

        def headers() -> Mapping[str, str]:
            nonce = self.nonces.next()
            return {
                "Accept": "application/json",
                "APIKey": api_key,
                "Nonce": nonce,
                "Authent": authent(api_secret, signed_path, nonce),
            }

        raw = self.http.get(url, headers=headers)
        check_response(raw, self.source.name)

    @classmethod
    def parse(cls, snapshot: RawSnapshot, source: SourceConfig) -> ParsedSnapshot:
        """Map the last successful `/subaccounts` answer of a snapshot to balances (spec §3).

        - `Email` is the venue's `email` only when it looks like an address
          (`^[^@\\s]+@[^@\\s]+\\.[^@\\s]+$`); Kraken's `"email redacted"` placeholder and
          other non-addresses become null.
        - `User` is `name`, else `fullName`, else the sub-account's `accountUid`.
        - Amounts are the venue's decimals exactly (never floats); an amount that does not fit
          NUMERIC(38,20) goes to `rejected`. A repeated (account, currency) is emitted twice,
          not summed: report validation quarantines the duplicate.
        - With no successful answer stored, raises the venue's error of the last response, so
          a backfill of a failed day fails with the venue's reason.
        """
        name = source.name
        doc = _last_success(snapshot)
        if doc is None:
            if not snapshot.responses:
                if snapshot.error:
                    reason = snapshot.error.splitlines()[0][:200]
                    raise VenueUnavailable(name, f"snapshot holds no response ({reason})")
                raise MalformedResponse(name, "snapshot holds no response")
            check_response(snapshot.responses[-1], name)
            raise MalformedResponse(name, "snapshot holds no successful /subaccounts answer")
        balances, accounts = _map(doc, source)
        table, rejected = balances_table(source, balances)
        return ParsedSnapshot(balances=table, rejected=rejected, accounts=accounts)


def _reveal(value: str) -> str:
    return value.reveal() if isinstance(value, Secret) else str(value)


# --- responses and errors --------------------------------------------------------------------


def check_response(raw: RawResponse, source: str) -> Any:
    """The decoded body of a successful answer; otherwise the typed error it stands for."""
    where = f"{raw.method} {_short_path(raw.url)}"
    try:
        doc = parse_json(raw.body, source, where)
    except MalformedResponse:
        if raw.status >= 400:
            raise VenueUnavailable(
                source,
                f"{where} answered HTTP {raw.status} with a non-JSON body",
                status=raw.status,
            ) from None
        raise MalformedResponse(
            source, f"{where}: HTTP {raw.status} body is not valid JSON", status=raw.status
        ) from None
    result = doc.get("result") if isinstance(doc, dict) else None
    if result == "error":
        raise venue_error(doc, source, where, raw.status)
    if raw.status != 200:
        raise VenueUnavailable(
            source, f"{where} answered HTTP {raw.status} without a venue error", status=raw.status
        )
    if result != "success":
        shown = repr(result[:40]) if isinstance(result, str) else "missing"
        raise MalformedResponse(source, f"{where}: result is {shown}, not 'success'")
    return doc


def venue_error(doc: Mapping[str, Any], source: str, where: str, status: int) -> VenueError:
    """The typed error for a `{"result": "error", "error": code}` body."""
    code = doc.get("error")
    if not isinstance(code, str):
        errors = doc.get("errors")
        first = errors[0] if isinstance(errors, list) and errors else None
        code = first if isinstance(first, str) else None
    if code is not None:
        code = " ".join(code.split())[:80] or None
    message = f"{where}: venue error {code or '(no code)'} (HTTP {status})"
    if code in AUTH_ERRORS:
        return VenueAuthError(source, message, code=code, status=status)
    if code in RATE_LIMIT_ERRORS:
        return VenueRateLimited(source, message, code=code, status=status)
    if code in UNAVAILABLE_ERRORS:
        return VenueUnavailable(source, message, code=code, status=status)
    return VenueError(source, message, code=code, status=status)


def _last_success(snapshot: RawSnapshot) -> dict[str, Any] | None:
    for raw in reversed(snapshot.responses):
        if raw.status != 200:
            continue
        try:
            doc = parse_json(raw.body, snapshot.source, raw.url)
        except MalformedResponse:
            continue
        if isinstance(doc, dict) and doc.get("result") == "success":
            return doc
    return None


def _short_path(url: str) -> str:
    return urlparse(url).path or "/"


# --- mapping ---------------------------------------------------------------------------------


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


def _map(doc: Mapping[str, Any], source: SourceConfig) -> tuple[list[Balance], list[AccountStatus]]:
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
