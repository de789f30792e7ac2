"""Saxo OpenAPI: `GET /port/v1/accounts/me`, then `GET /port/v1/balances` per account (seed 001).

- Auth: `Authorization: Bearer <access token>`. With `client_id`, `client_secret` and
  `refresh_token` configured, a 401 triggers one OAuth2 refresh and one retry of that request;
  a second 401 is a `VenueAuthError` (`saxo_auth.TokenProvider`; tokens never logged/recorded).
- Accounts: every page, following `__next` (absolute or relative, same host as `base_url`
  only: the bearer token is never sent elsewhere), else `$skip`/`$top` while `__count` says
  more remain (or, without `__count`, while pages come back full). A listing failure fails
  the whole source. An `AccountKey` on two pages is fetched once; a broken entry is not
  fetched (parse reports it as a failed account, see `saxo_listing`).
- Balances: one call per account (`ClientKey`, `AccountKey`, `FieldGroups`). One account's
  failure (after the HTTP layer's retries) is logged and recorded, and the others go on;
  `parse` reports it as a failed account with the venue's reason.
- Budget: at most `requests_per_minute` attempts per rolling minute per connector
  (`saxo_limits.SlidingWindowLimiter` on `HttpClient.before_request`), `X-RateLimit-*` headers
  read on every answer, `Retry-After` on 429 honoured by the HTTP layer.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, ClassVar
from urllib.parse import urljoin, urlsplit

from etl_project.errors import (
    ConfigError,
    FinalVenueError,
    MalformedResponse,
    VenueAuthError,
    VenueError,
)
from etl_project.http import HttpClient, RawResponse, parse_json
from etl_project.raw import RawSnapshot
from etl_project.settings import Secret, SourceConfig, check_url
from etl_project.venues.base import Connector, ParsedSnapshot
from etl_project.venues.saxo.auth import TokenProvider, default_token_url
from etl_project.venues.saxo.limits import SlidingWindowLimiter
from etl_project.venues.saxo.paging import (
    ACCOUNTS_PATH,
    Listed,
    SaxoAccount,
    merge_accounts,
    page_accounts,
)
from etl_project.venues.saxo.parse import (
    BALANCES_PATH,
    failure_reason,
    map_snapshot,
    response_error,
)

__all__ = ["DEFAULT_BASE_URL", "FIELD_GROUPS", "SaxoConnector", "SaxoSettings"]

log = logging.getLogger(__name__)

DEFAULT_BASE_URL = "https://gateway.saxobank.com/sim/openapi"
#: Balance field groups asked for (seed 001's example: it carries `CashAvailableForTrading`).
FIELD_GROUPS = "CalculateCashForTrading"
MAX_PAGE_SIZE = 1000
#: A listing longer than this many pages is taken as a paging loop at the venue.
MAX_PAGES = 10_000
#: Pages in a row that add no new account before the listing is taken as a paging loop (one
#: page that only overlaps earlier ones is the venue repeating an account, not a loop).
MAX_STALE_PAGES = 2


@dataclass(frozen=True)
class SaxoSettings:
    """Config fields of a `kind: saxo` source.

    Either `access_token`, or the refresh trio `client_id` + `client_secret` +
    `refresh_token` (both may be given: the access token is used until a 401). `token_url`
    defaults from `base_url` (see `saxo_auth.default_token_url`).
    """

    base_url: str = DEFAULT_BASE_URL
    access_token: Secret | None = None
    client_id: Secret | None = None
    client_secret: Secret | None = None
    refresh_token: Secret | None = None
    token_url: str | None = None
    requests_per_minute: int = 120
    page_size: int = 100
    connect_timeout: float = 5.0
    read_timeout: float = 30.0

    def resolved_token_url(self) -> str | None:
        return self.token_url or default_token_url(self.base_url)

    def validate(self, where: str) -> None:
        """One-line `ConfigError` naming `where` and the field; never quotes a secret."""
        check_url(self.base_url, f"{where}: base_url")
        trio = {"client_id": self.client_id, "client_secret": self.client_secret,
                "refresh_token": self.refresh_token}  # fmt: skip
        given = [name for name, value in trio.items() if value is not None and value.strip()]
        if given and len(given) < len(trio):
            missing = ", ".join(name for name in trio if name not in given)
            raise ConfigError(
                f"{where}: the refresh flow needs client_id, client_secret and refresh_token "
                f"together (missing: {missing})"
            )
        has_token = self.access_token is not None and bool(self.access_token.strip())
        if not has_token and not given:
            raise ConfigError(
                f"{where}: give access_token, or client_id + client_secret + refresh_token"
            )
        if self.token_url is not None:
            check_url(self.token_url, f"{where}: token_url")
        elif given and default_token_url(self.base_url) is None:
            raise ConfigError(
                f"{where}: token_url is required (it cannot be derived from base_url)"
            )
        for name, low, high in (("requests_per_minute", 1, 100_000),
                                ("page_size", 1, MAX_PAGE_SIZE)):  # fmt: skip
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
                raise ConfigError(f"{where}: {name} must be an integer from {low} to {high}")
        for name in ("connect_timeout", "read_timeout"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
                raise ConfigError(f"{where}: {name} must be a positive number of seconds")


class SaxoConnector(Connector):
    """Balances of every account the Saxo OpenAPI token's client can see."""

    kind: ClassVar[str] = "saxo"
    settings_type: ClassVar[type[Any]] = SaxoSettings

    def __init__(
        self,
        source: SourceConfig,
        http: HttpClient,
        *,
        limiter: SlidingWindowLimiter | None = None,
        tokens: TokenProvider | None = None,
    ) -> None:
        super().__init__(source, http)
        settings: SaxoSettings = self.settings
        self.base_url = settings.base_url.rstrip("/")
        self.limiter = limiter or SlidingWindowLimiter(settings.requests_per_minute, budget=http)
        self.tokens = tokens or TokenProvider(
            source.name,
            access_token=settings.access_token,
            client_id=settings.client_id,
            client_secret=settings.client_secret,
            refresh_token=settings.refresh_token,
            token_url=settings.resolved_token_url(),
            connect_timeout=settings.connect_timeout,
            read_timeout=settings.read_timeout,
            sleep=http.sleep,
            budget=http,
        )

    def fetch(self) -> None:
        http = self.http
        saved = (http.before_request, http.after_response)
        http.before_request = _chain(saved[0], self.limiter.acquire)
        http.after_response = _chain(saved[1], self.limiter.observe)
        try:
            listed = self.list_accounts()
            accounts = [a for a in listed if isinstance(a, SaxoAccount)]
            failed = 0
            for account in accounts:
                if not self._fetch_balances(account):
                    failed += 1
            log.info("%s: balances of %d account(s) fetched, %d failed, %d not fetchable",
                     self.source.name, len(accounts) - failed, failed,
                     len(listed) - len(accounts))  # fmt: skip
        finally:
            http.before_request, http.after_response = saved
            self.tokens.close()

    @classmethod
    def parse(cls, snapshot: RawSnapshot, source: SourceConfig) -> ParsedSnapshot:
        """Spec §3 Saxo mapping of a stored snapshot (see `saxo_parse` and docs/mapping.md)."""
        return map_snapshot(snapshot, source)

    # --- calls ---------------------------------------------------------------------------

    def list_accounts(self) -> list[Listed]:
        """Every page of `accounts/me`, once per `AccountKey`; a failed or unreadable page
        raises (whole source)."""
        page_size = self.settings.page_size
        url = f"{self.base_url}/{ACCOUNTS_PATH}"
        params: dict[str, str] | None = {"$top": str(page_size)}
        accounts: dict[str, Listed] = {}
        visited: set[str] = set()
        received = stale = 0
        for _ in range(MAX_PAGES):
            raw = self.get(url, params)
            if raw.status != 200:
                raise response_error(raw, self.source.name)
            doc = parse_json(raw.body, self.source.name, f"/{ACCOUNTS_PATH}")
            page = page_accounts(doc, self.source.name, f"/{ACCOUNTS_PATH}", received)
            received += len(page)
            stale = stale + 1 if page and not merge_accounts(accounts, page) else 0
            if stale >= MAX_STALE_PAGES:
                raise MalformedResponse(
                    self.source.name,
                    f"/{ACCOUNTS_PATH}: {stale} pages in a row repeat earlier accounts (loop)",
                )
            following = doc.get("__next")
            if page and isinstance(following, str) and following.strip():
                url, params = self._next_url(raw.url, following.strip()), None
                if url in visited:
                    raise MalformedResponse(self.source.name, f"/{ACCOUNTS_PATH}: __next loops")
                visited.add(url)
                continue
            count = doc.get("__count")
            more = received < count if isinstance(count, Decimal) else len(page) >= page_size
            if not page or not more:
                return list(accounts.values())
            url = f"{self.base_url}/{ACCOUNTS_PATH}"
            params = {"$top": str(page_size), "$skip": str(received)}
        raise MalformedResponse(self.source.name, f"/{ACCOUNTS_PATH}: more than {MAX_PAGES} pages")

    def get(self, url: str, params: Mapping[str, str] | None = None) -> RawResponse:
        """GET with the bearer token; on 401 refresh once (when configured) and retry once."""
        sent: list[str] = []

        def headers() -> Mapping[str, str]:
            token = self.tokens.current()
            sent.append(token)
            return {"Accept": "application/json", "Authorization": f"Bearer {token}"}

        with self.limiter.requesting("GET", url):
            raw = self.http.get(url, headers=headers, params=params)
        if raw.status != 401:
            return raw
        if not self.tokens.can_refresh:
            raise response_error(raw, self.source.name)
        self.tokens.refresh(stale=sent[-1])
        with self.limiter.requesting("GET", url):
            raw = self.http.get(url, headers=headers, params=params)
        if raw.status == 401:
            raise response_error(raw, self.source.name, note="after a token refresh")
        return raw

    def _fetch_balances(self, account: SaxoAccount) -> bool:
        params = {"ClientKey": account.client_key, "AccountKey": account.account_key,
                  "FieldGroups": FIELD_GROUPS}  # fmt: skip
        try:
            raw = self.get(f"{self.base_url}/{BALANCES_PATH}", params)
        except (VenueAuthError, FinalVenueError):
            raise  # a bad token or a spent time budget holds for every account: the source fails
        except VenueError as exc:
            log.warning("%s: balances of account %s failed: %s",
                        self.source.name, account.account_key, exc)  # fmt: skip
            return False
        if raw.status != 200:
            log.warning("%s: balances of account %s failed: %s",
                        self.source.name, account.account_key, failure_reason(raw))  # fmt: skip
            return False
        return True

    def _next_url(self, current: str, link: str) -> str:
        resolved = urljoin(current, link)
        here, there = urlsplit(self.base_url), urlsplit(resolved)
        if (there.scheme, there.netloc) != (here.scheme, here.netloc):
            raise MalformedResponse(
                self.source.name,
                f"/{ACCOUNTS_PATH}: __next points outside base_url ({there.netloc or 'no host'})",
            )
        return resolved


def _chain(first: Callable[..., None] | None, second: Callable[..., None]) -> Callable[..., None]:
    if first is None:
        return second

    def both(*args: Any) -> None:
        first(*args)
        second(*args)

    return both
