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
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import urlparse, urlunparse

from etl_project.config import Secret, SourceConfig
from etl_project.errors import (
    ConfigError,
    MalformedResponse,
    VenueAuthError,
    VenueRateLimited,
    VenueUnavailable,
)
from etl_project.http import HttpClient, RawResponse, json_kind
from etl_project.raw import RawSnapshot
from etl_project.venues.base import Connector, ParsedSnapshot
from etl_project.venues.settlement_report_parse import (
    CHECK_BOOLEAN,
    CHECK_COLUMNS,
    CHECK_EXACT_DECIMAL,
    CHECK_FIELD_COUNT,
    CHECK_JSON_TYPE,
    FORMATS,
    KIND,
    check_header,
    csv_header,
    load_json,
    parse_report,
)

__all__ = [
    "AUTH_HEADER",
    "CHECK_BOOLEAN",
    "CHECK_COLUMNS",
    "CHECK_EXACT_DECIMAL",
    "CHECK_FIELD_COUNT",
    "CHECK_JSON_TYPE",
    "FORMATS",
    "KIND",
    "READ_METHOD",
    "ReportNotFound",
    "SettlementReportConnector",
    "SettlementReportSettings",
    "check_response",
    "format_of",
    "parse_report",
    "resolve_location",
]

#: Header carrying `api_token` on HTTP(S): `Authorization: Bearer <api_token>`.
AUTH_HEADER = "Authorization"
#: `RawResponse.method` of a file read from a local path or S3 (not an HTTP call).
READ_METHOD = "READ"
DATE_PLACEHOLDER = "{date}"

_CONTENT_TYPES = {"csv": "text/csv", "json": "application/json"}
_PLACEHOLDER = re.compile(r"\{[^{}]*\}")
#: S3 error codes by meaning.
_S3_NOT_FOUND = frozenset({"NoSuchKey", "NoSuchBucket", "NotFound", "404"})
_S3_DENIED = frozenset(
    {"AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch", "ExpiredToken", "403"}
)
_S3_THROTTLED = frozenset({"SlowDown", "Throttling", "ThrottlingException", "503"})


class ReportNotFound(VenueUnavailable):
    """The report file for the date does not exist (yet): HTTP 404/410, no S3 key, no file."""


# --- settings ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SettlementReportSettings:
    """Config fields of a `kind: settlement_report` source.

    - `location`: `https://…`, `http://…`, `s3://bucket/key` or a local path; `{date}` is
      replaced by the report date (`YYYY-MM-DD`); no other `{…}` placeholder is allowed.
    - `format`: `csv` or `json`; by default the location's extension (`.csv` / `.json`).
    - `api_token`: HTTP(S) only, sent as `Authorization: Bearer <api_token>`.
    - `connect_timeout`, `read_timeout`: seconds, for HTTP(S) and S3.
    """

    location: str
    format: str | None = None
    api_token: Secret | None = None
    connect_timeout: float = 5.0
    read_timeout: float = 30.0

    def validate(self, where: str) -> None:
        """One-line `ConfigError` naming `where`; never quotes the token."""
        if not isinstance(self.location, str) or not self.location.strip():
            raise ConfigError(f"{where}: location must be a non-empty path, s3:// or http(s) URL")
        location = self.location
        unknown = sorted({p for p in _PLACEHOLDER.findall(location) if p != DATE_PLACEHOLDER})
        if unknown:
            raise ConfigError(
                f"{where}: location has unknown placeholder(s) {', '.join(unknown)}"
                f" (only {DATE_PLACEHOLDER} is replaced)"
            )
        scheme = location_scheme(location)
        parsed = urlparse(location)
        if scheme not in ("http", "https", "s3", "path"):
            raise ConfigError(
                f"{where}: location scheme {parsed.scheme!r} is not supported"
                " (use a path, s3://bucket/key, http:// or https://)"
            )
        if scheme in ("http", "https"):
            if not parsed.hostname:
                raise ConfigError(f"{where}: location {_shown_location(location)!r} has no host")
            if parsed.username or parsed.password:
                raise ConfigError(
                    f"{where}: location must not carry credentials; use api_token instead"
                )
        if scheme == "s3" and (not parsed.netloc or not parsed.path.strip("/")):
            raise ConfigError(f"{where}: location {location!r} must be s3://bucket/key")
        if self.format is not None:
            if self.format not in FORMATS:
                raise ConfigError(
                    f"{where}: format {self.format!r} is not supported (use csv or json)"
                )
        elif format_of(location) is None:
            raise ConfigError(
                f"{where}: cannot tell the report format from location"
                f" {_shown_location(location)!r}; set format: csv or json"
            )
        if self.api_token is not None:
            if scheme not in ("http", "https"):
                raise ConfigError(f"{where}: api_token is only sent to http(s) locations")
            if not str.__str__(self.api_token).strip():
                raise ConfigError(f"{where}: api_token is empty")
        for name in ("connect_timeout", "read_timeout"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
                raise ConfigError(f"{where}: {name} must be a positive number of seconds")

    def resolve(self, report_date: date) -> str:
        """The location of one report date."""
        return resolve_location(self.location, report_date)

    def report_format(self, location: str | None = None) -> str:
        """`format`, else the extension of `location` (default: the configured location)."""
        fmt = self.format or format_of(location or self.location) or format_of(self.location)
        if fmt is None:
            raise ConfigError(f"cannot tell the report format of {_shown_location(self.location)}")
        return fmt


def resolve_location(template: str, report_date: date) -> str:
    """`template` with every `{date}` replaced by `YYYY-MM-DD`."""
    return template.replace(DATE_PLACEHOLDER, report_date.isoformat())


def location_scheme(location: str) -> str:
    """`http`, `https`, `s3`, `path` (also `file://` and `C:\\…`), or the unknown scheme."""
    scheme = urlparse(location).scheme.lower()
    if scheme in ("", "file") or len(scheme) == 1:
        return "path"
    return scheme


def format_of(location: str) -> str | None:
    """`csv`/`json` from the extension of a location's path (query ignored), else None."""
    parsed = urlparse(location)
    path = parsed.path if parsed.scheme and len(parsed.scheme) > 1 else location
    suffix = Path(path).suffix.lower().lstrip(".")
    return suffix if suffix in FORMATS else None


def _local_path(location: str) -> Path:
    parsed = urlparse(location)
    return Path(parsed.path) if parsed.scheme.lower() == "file" else Path(location)


def _shown_location(location: str) -> str:
    """A location for messages: without query, fragment or user info."""
    parsed = urlparse(location)
    if location_scheme(location) not in ("http", "https"):
        return location
    host = parsed.hostname or ""
    netloc = f"{host}:{parsed.port}" if parsed.port else host
    return urlunparse((parsed.scheme, netloc, parsed.path, "", "", ""))


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
        if scheme in ("http", "https"):
            raw = self._get_http(location)
        elif scheme == "s3":
            raw = self._record(self._read_s3(location))
        else:
            raw = self._record(self._read_path(location))
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

    def _read_path(self, location: str) -> RawResponse:
        path = _local_path(location).resolve()
        name = self.source.name
        try:
            body = path.read_bytes()
            modified = datetime.fromtimestamp(path.stat().st_mtime, UTC)
        except FileNotFoundError:
            raise ReportNotFound(name, f"report not found: {path}") from None
        except IsADirectoryError:
            raise VenueUnavailable(name, f"report location is a directory: {path}") from None
        except PermissionError:
            raise VenueAuthError(name, f"no permission to read report {path}") from None
        except OSError as exc:
            raise VenueUnavailable(
                name, f"cannot read report {path}: {exc.strerror or type(exc).__name__}"
            ) from None
        headers = {
            "Content-Type": self._content_type(location),
            "Last-Modified": modified.isoformat(),
        }
        return _read_response(str(path), headers, body)

    def _read_s3(self, location: str) -> RawResponse:
        from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError

        parsed = urlparse(location)
        bucket, key = parsed.netloc, parsed.path.lstrip("/")
        shown = f"s3://{bucket}/{key}"
        name = self.source.name
        try:
            obj = self._s3_client().get_object(Bucket=bucket, Key=key)
            body: bytes = obj["Body"].read()
        except ClientError as exc:
            error = exc.response.get("Error", {})
            code = str(error.get("Code") or "")
            status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
            if code in _S3_NOT_FOUND:
                raise ReportNotFound(
                    name, f"report not found: {shown} ({code})", code=code, status=status
                ) from None
            if code in _S3_DENIED:
                raise VenueAuthError(
                    name, f"S3 refused reading {shown} ({code})", code=code, status=status
                ) from None
            if code in _S3_THROTTLED:
                raise VenueRateLimited(
                    name, f"S3 throttled reading {shown} ({code})", code=code, status=status
                ) from None
            raise VenueUnavailable(
                name,
                f"S3 error reading {shown} ({code or 'no code'})",
                code=code or None,
                status=status,
            ) from None
        except NoCredentialsError:
            raise VenueAuthError(name, f"no AWS credentials to read {shown}") from None
        except BotoCoreError as exc:
            raise VenueUnavailable(name, f"cannot read {shown} ({type(exc).__name__})") from None
        headers = {"Content-Type": self._content_type(location)}
        if obj.get("ETag"):
            headers["ETag"] = str(obj["ETag"])
        if isinstance(obj.get("LastModified"), datetime):
            headers["Last-Modified"] = obj["LastModified"].astimezone(UTC).isoformat()
        return _read_response(shown, headers, body)

    def _s3_client(self) -> Any:
        if self._s3 is None:
            import boto3
            from botocore.config import Config

            settings: SettlementReportSettings = self.settings
            self._s3 = boto3.client(
                "s3",
                endpoint_url=os.environ.get("AWS_ENDPOINT_URL") or None,
                config=Config(
                    connect_timeout=settings.connect_timeout,
                    read_timeout=settings.read_timeout,
                    retries={"mode": "standard", "max_attempts": 4},
                ),
            )
        return self._s3

    def _content_type(self, location: str) -> str:
        settings: SettlementReportSettings = self.settings
        return _CONTENT_TYPES[settings.report_format(location)]


def _reveal(value: str) -> str:
    return value.reveal() if isinstance(value, Secret) else str(value)


def _read_response(url: str, headers: Mapping[str, str], body: bytes) -> RawResponse:
    return RawResponse(
        method=READ_METHOD,
        url=url,
        status=200,
        headers=dict(headers),
        body=body,
        received_at=datetime.now(UTC).isoformat(timespec="microseconds"),
    )


def check_response(raw: RawResponse, source: str) -> None:
    """Nothing for a 200; otherwise the typed error the status stands for."""
    if raw.status == 200:
        return
    where = f"{raw.method} {_shown_location(raw.url)}"
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
    where = _shown_location(location)
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
