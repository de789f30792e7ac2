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

import csv
import io
import json
import os
import re
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import urlparse, urlunparse

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pcsv

from etl_project.config import Secret, SourceConfig
from etl_project.errors import (
    ConfigError,
    MalformedResponse,
    VenueAuthError,
    VenueRateLimited,
    VenueUnavailable,
)
from etl_project.http import HttpClient, RawResponse
from etl_project.raw import RawSnapshot
from etl_project.report.columns import (
    AMOUNT_COLUMNS,
    AMOUNT_TYPE,
    BALANCES_SCHEMA,
    BOOL_COLUMNS,
    REPORT_COLUMNS,
)
from etl_project.venues.base import AccountStatus, Connector, ParsedSnapshot, Rejected

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

KIND = "settlement_report"
#: Report file formats, by config value and file extension.
FORMATS = ("csv", "json")
#: Header carrying `api_token` on HTTP(S): `Authorization: Bearer <api_token>`.
AUTH_HEADER = "Authorization"
#: `RawResponse.method` of a file read from a local path or S3 (not an HTTP call).
READ_METHOD = "READ"
DATE_PLACEHOLDER = "{date}"

#: Check names of rows this connector rejects (they appear in quarantine entries).
CHECK_EXACT_DECIMAL = "exact_decimal"
CHECK_BOOLEAN = "boolean_text"
CHECK_JSON_TYPE = "json_type"
CHECK_COLUMNS = "report_columns"
CHECK_FIELD_COUNT = "csv_field_count"

_UUID_COLUMNS = ("userUUID", "accountUUID", "Account Group UUID")
_CONTENT_TYPES = {"csv": "text/csv", "json": "application/json"}
_PLACEHOLDER = re.compile(r"\{[^{}]*\}")
#: S3 error codes by meaning.
_S3_NOT_FOUND = frozenset({"NoSuchKey", "NoSuchBucket", "NotFound", "404"})
_S3_DENIED = frozenset(
    {"AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch", "ExpiredToken", "403"}
)
_S3_THROTTLED = frozenset({"SlowDown", "Throttling", "ThrottlingException", "503"})
#: Rows per slice when locating the bad values of an amount column that failed to cast.
_SLICE = 512
_MAX_SHOWN = 60


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
        _check_header(_csv_header(body, source, where), source, where)
    else:
        doc = _load_json(body, source, where)
        if not isinstance(doc, list):
            raise MalformedResponse(
                source, f"{where}: JSON report must be an array of rows, got {_kind(doc)}"
            )


# --- parsing ---------------------------------------------------------------------------------


def parse_report(body: bytes, fmt: str, source: str) -> ParsedSnapshot:
    """A report file (CSV or JSON bytes) -> balances (`BALANCES_SCHEMA`), rejects, accounts."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown report format {fmt!r}")
    if not body.strip():
        raise MalformedResponse(source, "the report file is empty")
    rows = _csv_rows(body, source) if fmt == "csv" else _json_rows(body, source)
    return _typed(rows, source)


@dataclass
class _TextRows:
    """The report as text columns (CSV or JSON alike) plus what is already known to be bad."""

    table: pa.Table  # the 33 report columns, all string, in order
    #: row index -> (check, reason) problems found while reading
    problems: dict[int, list[tuple[str, str]]]
    #: (row index, column) whose value was unusable while reading (not re-checked later)
    flagged: set[tuple[int, str]]
    #: (row index, column) -> the value as it was in the file, for the quarantine record
    originals: dict[tuple[int, str], str]
    #: rejected before they became a row (CSV rows with the wrong number of fields)
    rejected: list[Rejected]


def _csv_header(body: bytes, source: str, where: str = "report") -> list[str]:
    """The column names of the CSV's first line (UTF-8, BOM allowed)."""
    first = body.split(b"\n", 1)[0]
    try:
        text = first.decode("utf-8-sig").rstrip("\r")
    except UnicodeDecodeError:
        raise MalformedResponse(source, f"{where}: the CSV header is not UTF-8") from None
    return next(csv.reader([text]), [])


def _check_header(names: list[str], source: str, where: str = "report") -> None:
    expected = list(REPORT_COLUMNS)
    if names == expected:
        return
    problems: list[str] = []
    missing = [c for c in expected if c not in names]
    unexpected = [n for n in names if n not in REPORT_COLUMNS]
    repeated = sorted({n for n in names if names.count(n) > 1})
    if missing:
        problems.append("missing column(s) " + ", ".join(map(repr, missing)))
    if unexpected:
        problems.append("unexpected column(s) " + ", ".join(map(repr, unexpected[:10])))
    if repeated:
        problems.append("repeated column(s) " + ", ".join(map(repr, repeated)))
    if not problems:
        position = next(i for i, (a, b) in enumerate(zip(names, expected, strict=True)) if a != b)
        problems.append(
            f"columns out of order: column {position + 1} is {names[position]!r},"
            f" expected {expected[position]!r}"
        )
    raise MalformedResponse(
        source, f"{where}: header is not the report's 33 columns: " + "; ".join(problems)
    )


def _csv_rows(body: bytes, source: str) -> _TextRows:
    invalid: list[tuple[int, int, str]] = []

    def on_invalid_row(row: Any) -> str:
        invalid.append((row.expected_columns, row.actual_columns, row.text))
        return "skip"

    _check_header(_csv_header(body, source), source)
    data = body if body.endswith(b"\n") else body + b"\n"  # a header-only file without EOL
    try:
        table = pcsv.read_csv(
            io.BytesIO(data),
            read_options=pcsv.ReadOptions(use_threads=False),
            parse_options=pcsv.ParseOptions(
                newlines_in_values=True, invalid_row_handler=on_invalid_row
            ),
            convert_options=pcsv.ConvertOptions(
                column_types={name: pa.string() for name in REPORT_COLUMNS},
                strings_can_be_null=False,
                quoted_strings_can_be_null=False,
            ),
        )
    except (pa.ArrowInvalid, UnicodeDecodeError) as exc:
        reason = " ".join(str(exc).split())[:200]
        raise MalformedResponse(source, f"not a readable CSV report ({reason})") from None
    if table.column_names != list(REPORT_COLUMNS):  # e.g. a quoted header name
        _check_header(table.column_names, source)
    rejected = [
        Rejected(
            source,
            CHECK_FIELD_COUNT,
            f"row has {actual} fields, expected {expected}",
            {"source": source, "text": text},
        )
        for expected, actual, text in invalid
    ]
    return _TextRows(table, {}, set(), {}, rejected)


def _load_json(body: bytes, source: str, where: str = "report") -> Any:
    try:
        return json.loads(body, parse_float=Decimal, parse_int=Decimal, parse_constant=Decimal)
    except (ValueError, UnicodeDecodeError) as exc:
        reason = " ".join(str(exc).split())[:200]
        raise MalformedResponse(source, f"{where}: not a valid JSON report ({reason})") from None


def _json_rows(body: bytes, source: str) -> _TextRows:
    doc = _load_json(body, source)
    if not isinstance(doc, list):
        raise MalformedResponse(source, f"JSON report must be an array of rows, got {_kind(doc)}")
    expected = set(REPORT_COLUMNS)
    columns: dict[str, list[str | None]] = {name: [] for name in REPORT_COLUMNS}
    problems: dict[int, list[tuple[str, str]]] = defaultdict(list)
    flagged: set[tuple[int, str]] = set()
    originals: dict[tuple[int, str], str] = {}
    rejected: list[Rejected] = []
    first_mismatch: str | None = None
    for position, item in enumerate(doc):
        if not isinstance(item, dict) or set(item) != expected:
            if isinstance(item, dict):
                missing = [c for c in REPORT_COLUMNS if c not in item]
                unexpected = sorted(str(k) for k in item if k not in expected)
                parts = []
                if missing:
                    parts.append("missing column(s) " + ", ".join(map(repr, missing)))
                if unexpected:
                    parts.append("unexpected column(s) " + ", ".join(map(repr, unexpected[:10])))
                reason = f"element {position}: " + "; ".join(parts)
                record: dict[str, Any] = {
                    "source": source,
                    **{str(k): _json_text(v) for k, v in item.items()},
                }
            else:
                reason = f"element {position}: a row must be an object, got {_kind(item)}"
                record = {"source": source, "text": _json_text(item)}
            first_mismatch = first_mismatch or reason
            rejected.append(Rejected(source, CHECK_COLUMNS, reason, record))
            continue
        row = len(columns["userUUID"])
        for name in REPORT_COLUMNS:
            text, problem = _json_value(name, item[name])
            columns[name].append(text)
            if problem is not None:
                problems[row].append((CHECK_JSON_TYPE, problem))
                flagged.add((row, name))
                originals[(row, name)] = _json_text(item[name])
    if doc and not columns["userUUID"]:
        raise MalformedResponse(
            source, f"no element of the JSON report has the report's 33 columns ({first_mismatch})"
        )
    table = pa.table({name: pa.array(values, pa.string()) for name, values in columns.items()})
    return _TextRows(table, dict(problems), flagged, originals, rejected)


def _json_value(name: str, value: Any) -> tuple[str | None, str | None]:
    """The text of a JSON value for `name`, or (None, problem) when its JSON type is wrong."""
    if name in AMOUNT_COLUMNS:
        if isinstance(value, Decimal):
            return str(value), None
        if isinstance(value, str):
            return value, None
        return None, f"{name}: expected a number, got {_short(_json_text(value))}"
    if name in BOOL_COLUMNS:
        if isinstance(value, bool):
            return ("TRUE" if value else "FALSE"), None
        if isinstance(value, str):
            return value, None
        return None, f"{name}: expected a boolean, got {_short(_json_text(value))}"
    if value is None or isinstance(value, str):
        return value, None  # null: the schema's not-null rule decides (Email may be null)
    return None, f"{name}: expected a string, got {_short(_json_text(value))}"


def _typed(rows: _TextRows, source: str) -> ParsedSnapshot:
    """Text columns -> `BALANCES_SCHEMA`; a bad amount/boolean rejects its row, named."""
    text = rows.table
    problems: dict[int, list[tuple[str, str]]] = defaultdict(list)
    for row, found in rows.problems.items():
        problems[row].extend(found)

    for name in AMOUNT_COLUMNS:
        for row, reason in _amount_failures(_array(text, name)):
            if (row, name) not in rows.flagged:
                problems[row].append((CHECK_EXACT_DECIMAL, f"{name}: {reason}"))
    for name in BOOL_COLUMNS:
        values = _array(text, name)
        ok = pc.fill_null(pc.is_in(pc.utf8_lower(values), pa.array(["true", "false"])), False)
        for row in pc.indices_nonzero(pc.invert(ok)).to_pylist():
            if (row, name) not in rows.flagged:
                shown = (
                    "missing value"
                    if values[row].as_py() is None
                    else (f"{_shown(values[row].as_py())} is not TRUE or FALSE")
                )
                problems[row].append((CHECK_BOOLEAN, f"{name}: {shown}"))

    lowered = {name: pc.utf8_lower(_array(text, name)) for name in _UUID_COLUMNS}
    rejected = list(rows.rejected)
    bad = sorted(problems)
    if bad:
        records = text.take(pa.array(bad, pa.int64())).to_pylist()
        for row, record in zip(bad, records, strict=True):
            for (at, name), original in rows.originals.items():
                if at == row:
                    record[name] = original
            found = problems[row]
            checks = list(dict.fromkeys(check for check, _ in found))
            rejected.append(
                Rejected(
                    source,
                    ", ".join(checks),
                    "; ".join(reason for _, reason in found),
                    {"source": source, **record},
                )
            )

    accounts = [
        AccountStatus(account_id=a, status="received")
        for a in dict.fromkeys(lowered["accountUUID"].to_pylist())
        if a
    ]

    mask = [True] * text.num_rows
    for row in bad:
        mask[row] = False
    keep = pa.array(mask, pa.bool_())
    kept = text.filter(keep)
    count = kept.num_rows
    account_ids = lowered["accountUUID"].filter(keep)
    arrays: list[pa.Array] = []
    for field in BALANCES_SCHEMA:
        name = field.name
        if name in _UUID_COLUMNS:
            arrays.append(lowered[name].filter(keep))
        elif name in AMOUNT_COLUMNS:
            arrays.append(pc.cast(_array(kept, name), AMOUNT_TYPE, safe=True))
        elif name in BOOL_COLUMNS:
            arrays.append(pc.equal(pc.utf8_lower(_array(kept, name)), "true"))
        elif name == "Email":
            email = _array(kept, name)
            arrays.append(pc.if_else(pc.equal(email, ""), pa.scalar(None, pa.string()), email))
        elif name in REPORT_COLUMNS:
            arrays.append(_array(kept, name))
        elif name == "source":
            arrays.append(pa.array([source] * count, pa.string()))
        elif name == "venue":
            arrays.append(pa.array([KIND] * count, pa.string()))
        elif name == "venue_account_id":
            arrays.append(account_ids)
        elif name == "wallet":
            arrays.append(_array(kept, "subMainType"))
        else:  # pragma: no cover - BALANCES_SCHEMA gained a column this connector does not fill
            raise AssertionError(f"no value for balances column {name!r}")
    table = pa.Table.from_arrays(arrays, schema=BALANCES_SCHEMA)
    return ParsedSnapshot(balances=table, rejected=rejected, accounts=accounts)


def _array(table: pa.Table, name: str) -> pa.Array:
    return table.column(name).combine_chunks()


def _amount_failures(values: pa.Array) -> list[tuple[int, str]]:
    """(row, reason) of every value that is not an exact NUMERIC(38,20) decimal text.

    The whole column is cast at once; only when that fails are slices, then single values of
    the failing slices, cast again — so "valid" means exactly what Arrow's safe cast accepts.
    """
    failures = [
        (row, "missing value") for row in pc.indices_nonzero(pc.is_null(values)).to_pylist()
    ]
    try:
        pc.cast(values, AMOUNT_TYPE, safe=True)
        return failures
    except pa.ArrowInvalid:
        pass
    for start in range(0, len(values), _SLICE):
        part = values.slice(start, _SLICE)
        try:
            pc.cast(part, AMOUNT_TYPE, safe=True)
            continue
        except pa.ArrowInvalid:
            pass
        for offset, value in enumerate(part.to_pylist()):
            if value is None:
                continue
            try:
                pc.cast(pa.array([value], pa.string()), AMOUNT_TYPE, safe=True)
            except pa.ArrowInvalid as exc:
                failures.append((start + offset, _amount_reason(value, str(exc))))
    return sorted(failures)


def _amount_reason(value: str, arrow_message: str) -> str:
    shown = _shown(value)
    if "data loss" in arrow_message:
        return f"{shown} has more than {AMOUNT_TYPE.scale} fractional digits"
    if "precision" in arrow_message:
        return f"{shown} has more than {AMOUNT_TYPE.precision - AMOUNT_TYPE.scale} integer digits"
    return f"{shown} is not a decimal number"


def _short(text: str) -> str:
    return text if len(text) <= _MAX_SHOWN else text[: _MAX_SHOWN - 1] + "…"


def _shown(value: str) -> str:
    """A file value in a reason: JSON-quoted (whitespace visible), shortened."""
    return json.dumps(_short(value), ensure_ascii=False)


def _json_text(value: Any) -> str:
    """Compact JSON text of a decoded value (Decimals exactly)."""
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, list):
        return "[" + ",".join(_json_text(v) for v in value) + "]"
    if isinstance(value, dict):
        items = (f"{json.dumps(str(k))}:{_json_text(v)}" for k, v in value.items())
        return "{" + ",".join(items) + "}"
    return json.dumps(value, ensure_ascii=False)


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, Decimal | int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__
