"""Config of a `kind: settlement_report` source and its `location` template helpers; no I/O."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from urllib.parse import urlparse, urlunparse

from etl_project.errors import ConfigError
from etl_project.settings import Secret
from etl_project.venues.settlement_report.hosts import host_problem
from etl_project.venues.settlement_report.parse import FORMATS

__all__ = [
    "DATE_PLACEHOLDER",
    "SettlementReportSettings",
    "format_of",
    "location_scheme",
    "resolve_location",
    "shown_location",
]

DATE_PLACEHOLDER = "{date}"

_PLACEHOLDER = re.compile(r"\{[^{}]*\}")


@dataclass(frozen=True)
class SettlementReportSettings:
    """Config fields of a `kind: settlement_report` source.

    - `location`: `https://…`, `s3://bucket/key` or a local path (also `file://`); `{date}` is
      replaced by the report date (`YYYY-MM-DD`); no other `{…}` placeholder is allowed.
      Plain `http://` only to loopback; never a link-local or cloud metadata host
      (`settlement_report_hosts`, docs/hostile-input.md).
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
                raise ConfigError(f"{where}: location {shown_location(location)!r} has no host")
            if parsed.username or parsed.password:
                raise ConfigError(
                    f"{where}: location must not carry credentials; use api_token instead"
                )
            problem = host_problem(parsed.hostname, plain_http=scheme == "http")
            if problem is not None:
                raise ConfigError(
                    f"{where}: location {shown_location(location)!r} is refused: {problem}"
                )
        if parsed.scheme.lower() == "file" and parsed.netloc not in ("", "localhost"):
            raise ConfigError(
                f"{where}: location {location!r} names host {parsed.netloc!r};"
                " a file:// location must be local (file:///path)"
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
                f" {shown_location(location)!r}; set format: csv or json"
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
            raise ConfigError(f"cannot tell the report format of {shown_location(self.location)}")
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


def shown_location(location: str) -> str:
    """A location for messages: without query, fragment or user info."""
    parsed = urlparse(location)
    if location_scheme(location) not in ("http", "https"):
        return location
    host = parsed.hostname or ""
    if ":" in host:  # IPv6
        host = f"[{host}]"
    try:
        port = parsed.port
    except ValueError:  # not a number: shown without it
        port = None
    netloc = f"{host}:{port}" if port else host
    return urlunparse((parsed.scheme, netloc, parsed.path, "", "", ""))
