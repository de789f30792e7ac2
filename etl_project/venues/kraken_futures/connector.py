"""Kraken Futures: `GET /derivatives/api/v3/subaccounts` (seed 003, spec §3).

One signed call returns the master account and every sub-account with its holding, flex
(multi-collateral) and futures (single-collateral) wallets. Requests are signed with
`APIKey`, `Nonce` and `Authent` headers, built fresh for every attempt:

    Authent = base64(HMAC-SHA512(base64decode(api_secret), SHA256(postData + nonce + endpointPath)))

where `endpointPath` is the URL path after `/derivatives` (e.g. `/api/v3/subaccounts`) and
`postData` is the query string (empty for this call).

Kraken answers errors as `{"result": "error", "error": "<code>"}` with HTTP 200 as well as
with 4xx/5xx; both are typed here (`VenueAuthError`, `VenueRateLimited`, `VenueError`).
Signing and nonces are in `kraken_futures_auth`, the mapping to balances in `kraken_futures_parse`.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar
from urllib.parse import urlparse

from etl_project.errors import (
    ConfigError,
    MalformedResponse,
    VenueAuthError,
    VenueError,
    VenueRateLimited,
    VenueUnavailable,
)
from etl_project.http import HttpClient, RawResponse, parse_json
from etl_project.raw import RawSnapshot

# A module import: `report.validate` imports `venues.base`, which loads every connector.
from etl_project.report import validate as report_validate
from etl_project.settings import Secret, SourceConfig, check_url
from etl_project.venues.base import Connector, ParsedSnapshot, balances_table
from etl_project.venues.kraken_futures.auth import NonceSource, authent, endpoint_path
from etl_project.venues.kraken_futures.parse import map_subaccounts

__all__ = [
    "AUTH_ERRORS",
    "RATE_LIMIT_ERRORS",
    "UNAVAILABLE_ERRORS",
    "KrakenFuturesConnector",
    "KrakenFuturesSettings",
    "check_response",
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
          not summed: the balances validation quarantines both rows; when one of them was
          rejected for a bad value, the other is quarantined here (never "first wins").
        - A bad value rejects its row, a structurally broken sub-account fails that account,
          only a broken top level fails the source (see `kraken_futures_parse`). One
          `AccountStatus` per sub-account, also when the venue lists it twice.
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
        mapped = map_subaccounts(doc, source)
        table, unrepresentable = balances_table(source, mapped.balances)
        rejected = [*mapped.rejected, *unrepresentable]
        table, shadowed = report_validate.quarantine_shadowed(table, rejected)
        return ParsedSnapshot(
            balances=table, rejected=[*rejected, *shadowed], accounts=mapped.accounts
        )


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
