"""Multi-exchange platform: `GET /api/accounts/` then `GET /api/sor/get_cached_account_balance`.

One platform connection fronts many exchange accounts (Bybit, Binance, OKXDEX, …); seeds
002/004, spec §3. Requests carry `Authorization: Token <api_token>`.

`fetch`:
1. `GET {base_url}/api/accounts/` (without `include_archived`): the account listing. Archived
   accounts (`archived: true`) are dropped on our side as well; an account listed twice is
   requested once, a broken entry not at all (parse reports it as a failed account).
2. `GET {base_url}/api/sor/get_cached_account_balance?account_names=<a,b,…>` for the names of
   the remaining accounts, `batch_size` names per call. Decimals arrive as strings; `errors[]`
   names the accounts whose balances the platform could not fetch.

The listing carries each account's `api_key`, `api_secret` and `password`. Every response of
this connector reaches the snapshot recorder through a `RedactingRecorder` (see
`platform_redact`), so no credential value is ever stored; the API token is scrubbed too.

`parse` (pure) reads the last successful listing and every successful cached-balance answer of
a snapshot and maps them with `platform_mapping.map_accounts`; positions go to
`extra_tables["positions"]` (`POSITIONS_SCHEMA`).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, ClassVar
from urllib.parse import urlparse

from etl_project.errors import (
    ConfigError,
    MalformedResponse,
    VenueUnavailable,
    error_for_status,
)
from etl_project.http import HttpClient, RawResponse, parse_json
from etl_project.raw import RawSnapshot

# A module import: `report.validate` imports `venues.base`, which loads every connector.
from etl_project.report import validate as report_validate
from etl_project.settings import Secret, SourceConfig, check_url, redact
from etl_project.venues.base import Connector, ParsedSnapshot, balances_table
from etl_project.venues.platform.mapping import map_accounts
from etl_project.venues.platform.redact import RedactingRecorder
from etl_project.venues.platform.shapes import (
    POSITIONS_SCHEMA,
    ListedAccount,
    cached_lists,
    listed_accounts,
)

__all__ = [
    "ACCOUNTS_PATH",
    "CACHED_BALANCE_PATH",
    "POSITIONS_SCHEMA",
    "PlatformConnector",
    "PlatformSettings",
    "check_response",
]

ACCOUNTS_PATH = "/api/accounts/"
CACHED_BALANCE_PATH = "/api/sor/get_cached_account_balance"
DEFAULT_BATCH_SIZE = 50
MAX_BATCH_SIZE = 200


@dataclass(frozen=True)
class PlatformSettings:
    """Config fields of a `kind: platform` source."""

    base_url: str
    api_token: Secret
    connect_timeout: float = 5.0
    read_timeout: float = 30.0
    #: Account names per cached-balance call.
    batch_size: int = DEFAULT_BATCH_SIZE

    def validate(self, where: str) -> None:
        """One-line `ConfigError` naming `where`; never quotes the token."""
        check_url(self.base_url, f"{where}: base_url")
        if urlparse(self.base_url).path.rstrip("/").endswith("/api"):
            raise ConfigError(
                f"{where}: base_url is the platform's host (paths start with /api/); "
                "drop the trailing /api"
            )
        token = str.__str__(self.api_token)
        if not token.strip():
            raise ConfigError(f"{where}: api_token is empty")
        if any(c.isspace() for c in token) or not token.isprintable():
            raise ConfigError(f"{where}: api_token contains whitespace or control characters")
        for name in ("connect_timeout", "read_timeout"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
                raise ConfigError(f"{where}: {name} must be a positive number of seconds")
        size = self.batch_size
        if isinstance(size, bool) or not isinstance(size, int) or not 1 <= size <= MAX_BATCH_SIZE:
            raise ConfigError(f"{where}: batch_size must be an integer from 1 to {MAX_BATCH_SIZE}")


class PlatformConnector(Connector):
    """Token and position balances of every non-archived account of one platform token."""

    kind: ClassVar[str] = "platform"
    settings_type: ClassVar[type[Any]] = PlatformSettings

    def fetch(self) -> None:
        settings: PlatformSettings = self.settings
        token = _reveal(settings.api_token)
        headers = {"Accept": "application/json", "Authorization": f"Token {token}"}
        http = self._redacting_http([token])
        base = settings.base_url.rstrip("/")
        name = self.source.name

        listing = check_response(http.get(base + ACCOUNTS_PATH, headers=headers), name, [token])
        # One request per account: an account listed twice, or broken, is not asked twice/at all.
        accounts = listed_accounts(listing, name)
        names = list(dict.fromkeys(a.name for a in accounts if not a.archived and not a.problem))
        size = settings.batch_size
        for start in range(0, len(names), size):
            params = {"account_names": ",".join(names[start : start + size])}
            raw = http.get(base + CACHED_BALANCE_PATH, headers=headers, params=params)
            cached_lists(check_response(raw, name, [token]), name)

    def _redacting_http(self, secrets: list[str]) -> HttpClient:
        """The shared client with its recorder wrapped; session, retries and hooks are shared."""
        if self.http.recorder is None:
            return self.http
        recorder = RedactingRecorder(self.http.recorder, secrets)
        return dataclasses.replace(self.http, recorder=recorder)

    @classmethod
    def parse(cls, snapshot: RawSnapshot, source: SourceConfig) -> ParsedSnapshot:
        """Map a stored snapshot to balances, positions and account statuses (spec §3).

        Expected accounts are the non-archived ones of the last successful listing. With no
        successful listing stored, raises the venue's error of the last listing answer (a
        backfill of a failed day fails with the venue's reason); with accounts expected but no
        successful cached-balance answer, raises the error of the last such answer.
        """
        name = source.name
        listing: list[ListedAccount] | None = None
        cached: list[Any] = []
        failed_listings: list[RawResponse] = []
        failed_cached: list[RawResponse] = []
        for raw in snapshot.responses:
            path = urlparse(raw.url).path
            doc = _success(raw, name)
            if path.endswith(ACCOUNTS_PATH):
                if doc is None:
                    failed_listings.append(raw)
                else:
                    listing = listed_accounts(doc, name)
            elif path.endswith(CACHED_BALANCE_PATH):
                if doc is None:
                    failed_cached.append(raw)
                else:
                    cached.append(doc)
        if listing is None:
            _raise_for(snapshot, failed_listings, name, "no successful /api/accounts/ answer")
            raise AssertionError("unreachable")  # pragma: no cover
        if not cached and failed_cached and any(not a.archived for a in listing):
            _raise_for(snapshot, failed_cached, name, "no successful cached-balance answer")
        mapped = map_accounts(listing, cached, source)
        table, unrepresentable = balances_table(source, mapped.balances)
        rejected = [*mapped.rejected, *unrepresentable]
        table, shadowed = report_validate.quarantine_shadowed(table, rejected)
        return ParsedSnapshot(
            balances=table,
            rejected=[*rejected, *shadowed],
            accounts=mapped.accounts,
            extra_tables={"positions": mapped.positions},
        )


def _reveal(value: str) -> str:
    return value.reveal() if isinstance(value, Secret) else str(value)


# --- responses and errors --------------------------------------------------------------------


def check_response(raw: RawResponse, source: str, secrets: list[str] | None = None) -> Any:
    """The decoded body of a successful (HTTP 200, JSON) answer; else its typed error.

    401/403 -> `VenueAuthError`, 429 -> `VenueRateLimited`, 5xx -> `VenueUnavailable`,
    other statuses -> `VenueError`; the platform's `detail` is quoted (one line, at most 100
    characters, any secret replaced by `***`). A 200 that is not JSON -> `MalformedResponse`.
    """
    where = f"{raw.method} {urlparse(raw.url).path or '/'}"
    if raw.status == 200:
        return parse_json(raw.body, source, where)
    detail = _detail(raw.body)
    message = f"{where} answered HTTP {raw.status}" + (f": {detail}" if detail else "")
    message = redact(message, secrets or [])
    raise error_for_status(raw.status)(source, message, status=raw.status)


def _detail(body: bytes) -> str | None:
    """The `detail` (or `error`/`message`) text of an error body, one line, bounded."""
    try:
        doc = parse_json(body, "", "")
    except MalformedResponse:
        return None
    if not isinstance(doc, dict):
        return None
    for key in ("detail", "error", "message"):
        value = doc.get(key)
        if isinstance(value, str) and value.strip():
            return " ".join(value.split())[:100]
    return None


def _success(raw: RawResponse, source: str) -> Any | None:
    """The decoded body of a stored 200 JSON answer, else None."""
    if raw.status != 200:
        return None
    try:
        return parse_json(raw.body, source, raw.url)
    except MalformedResponse:
        return None


def _raise_for(snapshot: RawSnapshot, failures: list[RawResponse], source: str, what: str) -> None:
    """Raise the typed error of the last failed answer, or explain what the snapshot lacks."""
    if failures:
        check_response(failures[-1], source)
        raise MalformedResponse(source, f"snapshot holds {what}")  # a 200 that was not JSON
    if not snapshot.responses and snapshot.error:
        reason = snapshot.error.splitlines()[0][:200]
        raise VenueUnavailable(source, f"snapshot holds no response ({reason})")
    raise MalformedResponse(source, f"snapshot holds {what}")
