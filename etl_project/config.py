"""The operator's YAML config (spec §4): load, substitute `${VAR}`, validate up front.

Every problem is a `ConfigError` whose one-line message names the file and the field, so an
operator fixes the file without reading code. Venue-specific fields are validated by the
venue's own settings dataclass (see `etl_project.venues`), so a new venue adds no code here.
"""

from __future__ import annotations

import dataclasses
import os
import re
import typing
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import yaml

from etl_project.errors import ConfigError
from etl_project.settings import Secret, SourceConfig, check_url, redact
from etl_project.venues import connector_for

__all__ = [
    "AppConfig",
    "ReportSettings",
    "Secret",
    "SourceConfig",
    "check_url",
    "load_config",
    "read_layout",
    "redact",
]

DEFAULT_STORAGE = "./data/lake"
DEFAULT_WAREHOUSE = "duckdb:///./data/warehouse.duckdb"
_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")


@dataclass(frozen=True)
class ReportSettings:
    """Report-wide operating settings (cutoff for live fetches, check thresholds, schedule)."""

    start_date: str = "2026-01-01"
    live_cutoff_hours: float = 6.0
    venue_retries: int = 2
    venue_retry_delay_seconds: float = 5.0
    schedule_utc: str = "02:00"
    movement_threshold_pct: float = 50.0
    row_count_threshold_pct: float = 50.0
    freshness_utc: str = "06:00"
    on_source_failure: str = "partial"  # partial | fail
    #: One time budget per source for every attempt and retry of its venue calls (seconds):
    #: a hung venue ends within it, however the HTTP and Dagster retries add up.
    source_timeout_seconds: float = 300.0
    #: An account seen on a published date within this many days before D is expected on D.
    account_lookback_days: int = 7


@dataclass(frozen=True)
class AppConfig:
    """The whole run configuration."""

    storage: str
    warehouse: str
    sources: tuple[SourceConfig, ...]
    report: ReportSettings = ReportSettings()
    path: str | None = None

    def source(self, name: str) -> SourceConfig:
        for src in self.sources:
            if src.name == name:
                return src
        raise ConfigError(f"no source named {name!r}")


_COMMON = {"name", "kind", "account_group", "keep_zero_rows", "system_accounts", "main_types"}


def substitute_env(text: str, env: Mapping[str, str], where: str) -> str:
    """Replace `${VAR}`; a missing variable is an error naming it (never silently empty)."""
    missing = sorted({m for m in _VAR.findall(text) if m not in env})
    if missing:
        raise ConfigError(f"{where}: environment variable(s) not set: {', '.join(missing)}")
    return _VAR.sub(lambda m: env[m.group(1)], text)


def _settings(kind: str, raw: Mapping[str, Any], where: str) -> Any:
    settings_type = connector_for(kind, where).settings_type
    fields = {f.name: f for f in dataclasses.fields(settings_type)}
    hints = typing.get_type_hints(settings_type)
    unknown = sorted(set(raw) - set(fields))
    if unknown:
        raise ConfigError(f"{where}: unknown field(s) for kind {kind!r}: {', '.join(unknown)}")
    values: dict[str, Any] = {}
    for name, f in fields.items():
        if name not in raw:
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                raise ConfigError(f"{where}: missing required field {name!r} for kind {kind!r}")
            continue
        value = raw[name]
        if hints[name] in (Secret, Secret | None) and value is not None:
            value = Secret(str(value))
        values[name] = value
    try:
        settings = settings_type(**values)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{where}: {exc}") from None
    validate = getattr(settings, "validate", None)
    if validate is not None:
        validate(where)
    return settings


def parse_config(data: Mapping[str, Any], where: str = "config") -> AppConfig:
    """Validate an already-substituted config mapping."""
    if not isinstance(data, Mapping):
        raise ConfigError(f"{where}: top level must be a mapping")
    unknown = sorted(set(data) - {"storage", "warehouse", "sources", "report"})
    if unknown:
        raise ConfigError(f"{where}: unknown top-level field(s): {', '.join(unknown)}")
    storage = str(data.get("storage") or DEFAULT_STORAGE)
    if storage.startswith("s3://") and not urlparse(storage).netloc:
        raise ConfigError(f"{where}: storage {storage!r} has no bucket")
    warehouse = str(data.get("warehouse") or DEFAULT_WAREHOUSE)
    if "://" not in warehouse:
        raise ConfigError(f"{where}: warehouse {warehouse!r} is not an SQLAlchemy URL")
    raw_sources = data.get("sources")
    if not isinstance(raw_sources, list) or not raw_sources:
        raise ConfigError(f"{where}: 'sources' must be a non-empty list")
    sources: list[SourceConfig] = []
    seen: set[str] = set()
    for i, raw in enumerate(raw_sources):
        if not isinstance(raw, Mapping):
            raise ConfigError(f"{where}: sources[{i}] must be a mapping")
        name = str(raw.get("name") or "")
        here = f"{where}: sources[{i}] ({name or 'unnamed'})"
        if not _NAME.match(name):
            raise ConfigError(f"{here}: name must match {_NAME.pattern}")
        if name in seen:
            raise ConfigError(f"{where}: duplicate source name {name!r}")
        seen.add(name)
        kind = str(raw.get("kind") or "")
        venue_fields = {k: v for k, v in raw.items() if k not in _COMMON}
        settings = _settings(kind, venue_fields, here)
        sources.append(
            SourceConfig(
                name=name,
                kind=kind,
                settings=settings,
                account_group=str(raw.get("account_group") or "Default"),
                keep_zero_rows=bool(raw.get("keep_zero_rows", False)),
                system_accounts=frozenset(str(a) for a in raw.get("system_accounts") or ()),
                main_types={str(k): str(v) for k, v in (raw.get("main_types") or {}).items()},
            )
        )
    report = _report_settings(data.get("report"), where)
    return AppConfig(storage=storage, warehouse=warehouse, sources=tuple(sources), report=report)


def load_config(path: str | os.PathLike[str], env: Mapping[str, str] | None = None) -> AppConfig:
    """Read, substitute and validate the YAML config at `path`."""
    where = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{where}: cannot read config: {exc.strerror}") from None
    # Substitute only outside comments, so a commented-out ${VAR} is not required.
    lines = [line for line in text.splitlines() if not line.lstrip().startswith("#")]
    text = substitute_env("\n".join(lines), os.environ if env is None else env, where)
    data = _parse_yaml(text, where)
    config = parse_config(data, where)
    return dataclasses.replace(config, path=where)


@dataclass(frozen=True)
class SourceLayout:
    """A source's name and kind: all the orchestrator needs to build its assets."""

    name: str
    kind: str


@dataclass(frozen=True)
class Layout:
    """The secret-free part of a config: enough to build the Dagster definitions."""

    storage: str
    warehouse: str
    sources: tuple[SourceLayout, ...]
    report: ReportSettings


def _parse_yaml(text: str, where: str) -> Any:
    """The YAML document, or a ConfigError naming the file, line and column of the problem."""
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(
            f"{where}:{_yaml_place(exc)} not valid YAML: {_yaml_problem(exc)}"
        ) from None


def _yaml_place(exc: yaml.YAMLError) -> str:
    """`12:5:` — the line and column PyYAML found the problem at (1-based), if it says."""
    mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
    return f"{mark.line + 1}:{mark.column + 1}:" if mark is not None else ""


def _key_line(where: str, *keys: str) -> str:
    """`7:` — the line of the mapping key `keys` in the config file, or "" when not found."""
    try:
        node: Any = yaml.compose(Path(where).read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError):
        return ""
    line = ""
    for key in keys:
        if not isinstance(node, yaml.MappingNode):
            return ""
        found = next(((k, v) for k, v in node.value if k.value == key), None)
        if found is None:
            return ""
        line, node = f"{found[0].start_mark.line + 1}:", found[1]
    return line


def _yaml_problem(exc: yaml.YAMLError) -> str:
    problem = getattr(exc, "problem", None)
    context = getattr(exc, "context", None)
    if problem:
        return f"{problem} ({context})" if context else str(problem)
    return str(exc).splitlines()[0]


def _report_settings(raw: Any, where: str) -> ReportSettings:
    if raw is not None and not isinstance(raw, Mapping):
        raise ConfigError(f"{where}: report: must be a mapping of settings")
    known = {f.name for f in dataclasses.fields(ReportSettings)}
    unknown = sorted(set(raw or {}) - known)
    if unknown:
        line = _key_line(where, "report", unknown[0])
        raise ConfigError(
            f"{where}:{line} report: unknown field(s): {', '.join(unknown)} "
            f"(known: {', '.join(sorted(known))})"
        )
    try:
        report = ReportSettings(**(raw or {}))
    except TypeError as exc:
        raise ConfigError(f"{where}: report: {exc}") from None
    if report.on_source_failure not in ("partial", "fail"):
        raise ConfigError(f"{where}: report.on_source_failure must be 'partial' or 'fail'")
    for name in ("schedule_utc", "freshness_utc"):
        if not re.fullmatch(r"([01]\d|2[0-3]):[0-5]\d", getattr(report, name)):
            raise ConfigError(f"{where}: report.{name} must be HH:MM (UTC)")
    if not report.source_timeout_seconds > 0:
        raise ConfigError(f"{where}: report.source_timeout_seconds must be a positive number")
    if not (isinstance(report.account_lookback_days, int) and report.account_lookback_days >= 0):
        raise ConfigError(f"{where}: report.account_lookback_days must be a whole number >= 0")
    try:
        date.fromisoformat(report.start_date)
    except ValueError:
        raise ConfigError(f"{where}: report.start_date must be YYYY-MM-DD") from None
    return report


def read_layout(path: str | os.PathLike[str]) -> Layout:
    """Storage, warehouse, report settings and source names/kinds, without resolving `${VAR}`.

    Definitions load from this (so the UI can show the asset graph on a machine without the
    venue secrets); the full, env-resolved validation happens when a run starts.
    """
    where = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{where}: cannot read config: {exc.strerror}") from None
    data = _parse_yaml(text, where)
    if not isinstance(data, Mapping) or not isinstance(data.get("sources"), list):
        raise ConfigError(f"{where}: 'sources' must be a non-empty list")
    layouts: list[SourceLayout] = []
    for i, raw in enumerate(data["sources"]):
        name, kind = str(raw.get("name") or ""), str(raw.get("kind") or "")
        if not _NAME.match(name):
            raise ConfigError(f"{where}: sources[{i}]: name must match {_NAME.pattern}")
        if any(s.name == name for s in layouts):
            raise ConfigError(f"{where}: duplicate source name {name!r}")
        connector_for(kind, f"{where}: sources[{i}] ({name})")
        layouts.append(SourceLayout(name, kind))
    return Layout(
        storage=str(data.get("storage") or DEFAULT_STORAGE),
        warehouse=str(data.get("warehouse") or DEFAULT_WAREHOUSE),
        sources=tuple(layouts),
        report=_report_settings(data.get("report"), where),
    )
