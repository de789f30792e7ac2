"""The settlement platform's own Client Balance Report (seed 000, spec §3), CSV or JSON.

The platform already produces the report's 33 columns, so its rows are *taken as they are* and
validated by the same schema as every other venue's: UUIDs, `mainType`, `System Account` and
every amount come from the file. Nothing is re-mapped or "fixed" — a row the schema does not
accept (a retired column that is not 0, a non-canonical UUID, a repeated `(accountUUID, Ccy)`)
is quarantined downstream with the check named. The only normalisations are the ones the
contract states for every venue: UUID text is lower-cased (spec §2), `Ccy` is upper-cased with
`XBT`->`BTC`, `XDG`->`DOGE` (spec §1, §3) and an empty `Email` is null (spec §1).

Where the file is (`location`, `{date}` = the report date `YYYY-MM-DD`):
- `https://…` (`http://…` to loopback only): `GET` through the shared `HttpClient` (recorded
  by it), with `Authorization: Bearer <api_token>` when `api_token` is set. Every connection
  is resolved, checked and pinned by `settlement_report_hosts`: never a link-local or cloud
  metadata address, whatever DNS answers (`LocationRefused`);
- `s3://bucket/key`: boto3 `GetObject` (`AWS_ENDPOINT_URL` honoured, standard AWS credentials);
- anything else (or `file://…`): a local path, relative to the working directory.
S3 and path reads are recorded here as a `RawResponse` with method `READ`, the resolved location
as `url`, status 200 and the file's bytes, so the landed raw snapshot holds the file verbatim.

A missing report is `ReportNotFound` (a `VenueUnavailable`: the platform may not have produced
the day's file yet, so the orchestrator's retry applies). Errors name the location without its
query string and never carry the token. A file that is not a report at all (CSV header not the
33 columns, JSON not an array of rows) fails `fetch` with `ReportFormatError`: permanent, so
it is fetched and landed once, not once per retry. A location with `{date}` reads history
(`reads_history`): a past date's file is still that date's report.

Parsing (`parse_report`, pure):
- CSV: UTF-8 (BOM allowed), RFC 4180; the header must be the 33 report column names exactly,
  in order. A line that cannot be a row (wrong number of fields, unclosed quote, longer than
  64 KiB, not UTF-8) is rejected alone, with its line number.
- JSON: an array of objects keyed by the 33 names (any key order). Amounts are JSON numbers
  (read as exact `Decimal`, never float) or strings; booleans are `true`/`false` or the
  strings `TRUE`/`FALSE`; `Email` may be null. An element that is not such an object (other
  keys, too large, not even valid JSON) is rejected alone; when *no* element is a row the
  file is a `ReportFormatError`.
- Booleans: `true`/`false` in any letter case. Amounts: decimal text (exponent allowed) that
  fits `NUMERIC(38,20)` exactly — more than 20 fractional digits or 18 integer digits is never
  rounded. A bad amount or boolean rejects *that row* (`Rejected`, column and value named),
  never the file. `Ccy` is normalised like every source's (`xbt` -> `BTC`).
Settings and location helpers are in `settlement_report_settings` (which hosts are allowed:
`settlement_report_hosts`), path and S3 reads in `settlement_report_read`, parsing in
`settlement_report_parse`, `settlement_report_text` (CSV, framed by `settlement_report_lines`)
and `settlement_report_json`. Hostile input and what is done about it: docs/hostile-input.md.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import urlparse

from etl_project import raw_stream
from etl_project.errors import (
    MalformedResponse,
    VenueAuthError,
    VenueRateLimited,
    VenueUnavailable,
)
from etl_project.http import HttpClient, RawResponse
from etl_project.raw import RawSnapshot
from etl_project.settings import Secret, SourceConfig
from etl_project.venues.base import Connector, ParsedSnapshot
from etl_project.venues.settlement_report.hosts import (
    LocationRefused,
    guarded_adapter,
    resolve_or_fail,
)
from etl_project.venues.settlement_report.json_rows import check_json
from etl_project.venues.settlement_report.parse import KIND, parse_csv_blocks, parse_report
from etl_project.venues.settlement_report.read import (
    ReportNotFound,
    read_path,
    read_s3,
    s3_client,
)
from etl_project.venues.settlement_report.settings import (
    DATE_PLACEHOLDER,
    SettlementReportSettings,
    location_scheme,
    shown_location,
)
from etl_project.venues.settlement_report.text import (
    ReportFormatError,
    check_header,
    csv_header,
)

__all__ = [
    "AUTH_HEADER",
    "LocationRefused",
    "ReportFormatError",
    "ReportNotFound",
    "SettlementReportConnector",
    "SettlementReportSettings",
    "check_response",
]

#: Header carrying `api_token` on HTTP(S): `Authorization: Bearer <api_token>`.
AUTH_HEADER = "Authorization"

_CONTENT_TYPES = {"csv": "text/csv", "json": "application/json"}


# --- the connector -------------------------------------------------------------------------------


class SettlementReportConnector(Connector):
    """One report file per report date, read from a path, S3 or HTTP(S).

    The report date is `self.report_date` (set by the pipeline before `fetch`; the base class
    defaults it to today in UTC); the `report_date` keyword sets it at construction.
    """

    kind: ClassVar[str] = KIND
    settings_type: ClassVar[type[Any]] = SettlementReportSettings

    def __init__(
        self,
        source: SourceConfig,
        http: HttpClient,
        *,
        report_date: date | None = None,
        s3_client: Any | None = None,
    ) -> None:
        super().__init__(source, http)
        if report_date is not None:
            self.report_date = report_date
        self._s3 = s3_client

    @property
    def location(self) -> str:
        """The resolved location of `self.report_date`."""
        settings: SettlementReportSettings = self.settings
        return settings.resolve(self.report_date)

    @classmethod
    def reads_history(cls, settings: Any) -> bool:
        """A dated file (`{date}` in `location`) is that date's report for any past date."""
        return isinstance(settings, SettlementReportSettings) and (
            DATE_PLACEHOLDER in settings.location
        )

    def fetch(self) -> None:
        """Read the day's file (recorded verbatim), then check it is a report at all.

        A file that is not CSV with the report header / not a JSON array raises
        `ReportFormatError` (permanent) here, before the snapshot counts as good, so the run
        falls back to an earlier good snapshot of the day instead of retrying the same file.
        """
        settings: SettlementReportSettings = self.settings
        location = self.location
        scheme = location_scheme(location)
        name = self.source.name
        if scheme in ("http", "https"):
            raw = self._get_http(location)
        elif scheme == "s3":
            raw = self._record(read_s3(location, name, self._s3_client, self._content_type))
        else:
            csv = settings.report_format(location) == "csv"
            raw = self._record(read_path(location, name, self._content_type, on_disk=csv))
        check_response(raw, self.source.name)
        body = raw.body if raw.body_path is None else raw.head()
        check_structure(body, settings.report_format(raw.url), self.source.name, raw.url)

    @classmethod
    def parse(cls, snapshot: RawSnapshot, source: SourceConfig) -> ParsedSnapshot:
        """The report rows of the snapshot's last successful read, taken as they are.

        With no successful read stored, raises the error of the last response (or the
        snapshot's error), so a backfill of a failed day fails with the same reason.
        """
        name = source.name
        good = [r for r in snapshot.responses if r.status == 200]
        if not good:
            if snapshot.responses:
                check_response(snapshot.responses[-1], name)
            if snapshot.error:
                reason = snapshot.error.splitlines()[0][:200]
                raise VenueUnavailable(name, f"snapshot holds no report ({reason})")
            raise MalformedResponse(name, "snapshot holds no report")
        raw = good[-1]
        settings: SettlementReportSettings = source.settings
        return parse_report(raw.body, settings.report_format(raw.url), name)

    @classmethod
    def parse_stored(
        cls, path: Path, responses: int, source: SourceConfig
    ) -> Iterator[ParsedSnapshot]:
        """A CSV report read last (the fetch's successful read) is parsed block by block
        straight from the compressed snapshot file; anything else is parsed whole."""
        settings: SettlementReportSettings = source.settings
        for at, (meta, body) in enumerate(raw_stream.responses(path)):
            last = at == responses - 1
            if last and meta["status"] == 200 and settings.report_format(meta["url"]) == "csv":
                yield from parse_csv_blocks(body, source.name)
                return
        yield from super().parse_stored(path, responses, source)

    # --- reading ---------------------------------------------------------------------------

    def _get_http(self, url: str) -> RawResponse:
        settings: SettlementReportSettings = self.settings
        parsed = urlparse(url)
        plain = parsed.scheme.lower() == "http"
        # Checked before any request (a clear error, and the check that still holds behind a
        # proxy, which bypasses the pinned connections); the adapter checks every connection.
        # Redirects are never followed (`HttpClient`), so a 3xx cannot lead elsewhere.
        port = parsed.port or (80 if plain else 443)
        resolve_or_fail(parsed.hostname or "", port, plain, self.source.name)
        adapter = guarded_adapter(self.source.name)
        self.http.session.mount("http://", adapter)
        self.http.session.mount("https://", adapter)
        fmt = settings.report_format(url)
        headers = {"Accept": _CONTENT_TYPES[fmt]}
        if settings.api_token is not None:
            headers[AUTH_HEADER] = f"Bearer {_reveal(settings.api_token)}"
        return self.http.get(url, headers=headers)

    def _record(self, raw: RawResponse) -> RawResponse:
        if self.http.recorder is not None:
            self.http.recorder.record(raw)
        return raw

    def _s3_client(self) -> Any:
        if self._s3 is None:
            self._s3 = s3_client(self.settings)
        return self._s3

    def _content_type(self, location: str) -> str:
        settings: SettlementReportSettings = self.settings
        return _CONTENT_TYPES[settings.report_format(location)]


def _reveal(value: str) -> str:
    return value.reveal() if isinstance(value, Secret) else str(value)


def check_response(raw: RawResponse, source: str) -> None:
    """Nothing for a 200; otherwise the typed error the status stands for."""
    if raw.status == 200:
        return
    where = f"{raw.method} {shown_location(raw.url)}"
    status = raw.status
    if status in (404, 410):
        raise ReportNotFound(
            source, f"report not found: {where} answered HTTP {status}", status=status
        )
    if status in (401, 403):
        raise VenueAuthError(
            source, f"{where} answered HTTP {status} (check api_token)", status=status
        )
    if status == 429:
        raise VenueRateLimited(source, f"{where} answered HTTP 429", status=status)
    raise VenueUnavailable(source, f"{where} answered HTTP {status}", status=status)


def check_structure(body: bytes, fmt: str, source: str, location: str = "report") -> None:
    """File-level check done at fetch time: the CSV header / a complete JSON array of rows.

    An empty file is a `MalformedResponse` (it may still be being written: a retry may help);
    a wrong header or not an array is a `ReportFormatError` (no retry helps)."""
    where = shown_location(location)
    if not body.strip():
        raise MalformedResponse(source, f"{where}: the report file is empty")
    if fmt == "csv":
        check_header(csv_header(body, source, where), source, where)
    else:
        check_json(body, source, where)
