"""The settlement platform's own Client Balance Report (seed 000, spec §3), CSV or JSON.

The platform already produces the report's 33 columns, so its rows are *taken as they are* and
validated by the same schema as every other venue's: UUIDs, `Ccy`, `mainType`,
`System Account` and every amount come from the file. Nothing is re-mapped or "fixed" — a row
the schema does not accept (a lower-case or `XBT` currency, a retired column that is not 0, a
non-canonical UUID) is quarantined downstream with the check named. The only normalisations
are the ones the contract states for every venue: UUID text is lower-cased (spec §2) and an
empty `Email` is null (spec §1).

Where the file is (`location`, `{date}` = the report date `YYYY-MM-DD`):
- `https://…` / `http://…`: `GET` through the shared `HttpClient` (recorded by it), with
  `Authorization: Bearer <api_token>` when `api_token` is set;
- `s3://bucket/key`: boto3 `GetObject` (`AWS_ENDPOINT_URL` honoured, standard AWS credentials);
- anything else (or `file://…`): a local path, relative to the working directory.
S3 and path reads are recorded here as a `RawResponse` with method `READ`, the resolved location
as `url`, status 200 and the file's bytes, so the landed raw snapshot holds the file verbatim.

A missing report is `ReportNotFound` (a `VenueUnavailable`: the platform may not have produced
the day's file yet, so the orchestrator's retry applies). Errors name the location without its
query string and never carry the token.

Parsing (`parse_report`, pure):
- CSV: UTF-8 (BOM allowed), RFC 4180; the header must be the 33 report column names exactly,
  in order (else `MalformedResponse` naming the missing, unexpected or misplaced columns).
  A row with the wrong number of fields is rejected alone.
- JSON: an array of objects keyed by the 33 names (any key order). Amounts are JSON numbers
  (read as exact `Decimal`, never float) or strings; booleans are `true`/`false` or the
  strings `TRUE`/`FALSE`; `Email` may be null. An object whose keys differ is rejected alone;
  when *no* element has the 33 keys the file is a `MalformedResponse`.
- Booleans: `true`/`false` in any letter case. Amounts: decimal text (exponent allowed) that
  fits `NUMERIC(38,20)` exactly — more than 20 fractional digits or 18 integer digits is never
  rounded. A bad amount or boolean rejects *that row* (`Rejected`, column and value named),
  never the file.
Settings and location helpers are in `settlement_report_settings`, path and S3 reads in
`settlement_report_read`, parsing in `settlement_report_parse` and `settlement_report_text`.
"""

from __future__ import annotations

from datetime import date
from typing import Any, ClassVar

from etl_project.config import Secret, SourceConfig
from etl_project.errors import (
    MalformedResponse,
    VenueAuthError,
    VenueRateLimited,
    VenueUnavailable,
)
from etl_project.http import HttpClient, RawResponse, json_kind
from etl_project.raw import RawSnapshot
from etl_project.venues.base import Connector, ParsedSnapshot
from etl_project.venues.settlement_report_parse import KIND, parse_report
from etl_project.venues.settlement_report_read import (
    ReportNotFound,
    read_path,
    read_s3,
    s3_client,
)
from etl_project.venues.settlement_report_settings import (
    SettlementReportSettings,
    location_scheme,
    shown_location,
)
from etl_project.venues.settlement_report_text import check_header, csv_header, load_json

__all__ = [
    "AUTH_HEADER",
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

    def fetch(self) -> None:
        """Read the day's file (recorded verbatim), then check it is a report at all.

        A file that is not CSV with the report header / not a JSON array raises
        `MalformedResponse` here, so the run falls back to an earlier good snapshot of the day.
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
            raw = self._record(read_path(location, name, self._content_type))
        check_response(raw, self.source.name)
        check_structure(raw.body, settings.report_format(raw.url), self.source.name, raw.url)

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

    # --- reading ---------------------------------------------------------------------------

    def _get_http(self, url: str) -> RawResponse:
        settings: SettlementReportSettings = self.settings
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
    """Cheap file-level check done at fetch time: the CSV header / a JSON array."""
    where = shown_location(location)
    if not body.strip():
        raise MalformedResponse(source, f"{where}: the report file is empty")
    if fmt == "csv":
        check_header(csv_header(body, source, where), source, where)
    else:
        doc = load_json(body, source, where)
        if not isinstance(doc, list):
            raise MalformedResponse(
                source, f"{where}: JSON report must be an array of rows, got {json_kind(doc)}"
            )
