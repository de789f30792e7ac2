"""The daily job as plain functions: snapshot -> balances -> report (publish: `publish.py`).

Dagster assets (and tests) call these; nothing here knows about Dagster. Each stage reads
the previous stage's staged output from the object store and writes its own, so a stage
re-runs alone and a failed source never blocks the others.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from etl_project import raw, staging
from etl_project.config import AppConfig, SourceConfig, redact
from etl_project.errors import EtlError, FinalVenueError, SnapshotMissing, VenueError
from etl_project.http import HttpClient
from etl_project.report.build import build_report
from etl_project.report.columns import BALANCES_SCHEMA, REPORT_SCHEMA
from etl_project.report.schema import BalancesModel
from etl_project.report.validate import split_valid
from etl_project.sinks.account_registry import ExpectedAccount, vanished
from etl_project.sinks.object_store import ObjectStore
from etl_project.venues import connector_for
from etl_project.venues.base import Rejected


@dataclass(frozen=True)
class StageOutcome:
    """What one stage of one source did; also its staged manifest."""

    source: str
    status: str  # ok | failed
    reason: str | None = None
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.status == "ok"


def live_window(report_date: date, cutoff_hours: float) -> tuple[datetime, datetime]:
    """When D's end-of-day balances can still be fetched live: [start of D, end of D + cutoff)."""
    start = datetime.combine(report_date, time(0), tzinfo=UTC)
    return start, start + timedelta(days=1, hours=cutoff_hours)


# --- stage 1: raw snapshot ------------------------------------------------------------------


def fetch_live(
    source: SourceConfig,
    store: ObjectStore,
    report_date: date,
    now: datetime,
    *,
    deadline: float | None = None,
) -> tuple[StageOutcome, VenueError | None]:
    """Call the venue; every response is landed verbatim (also when the call failed).

    `deadline` (epoch seconds) is the source's one time budget for every call and retry."""
    snapshot = raw.RawSnapshot(source.name, source.kind, report_date, now)
    settings = source.settings
    http = HttpClient(
        source.name,
        recorder=raw.SnapshotRecorder(snapshot),
        connect_timeout=getattr(settings, "connect_timeout", 5.0),
        read_timeout=getattr(settings, "read_timeout", 30.0),
        deadline=deadline,
    )
    connector = connector_for(source.kind)(source, http)
    connector.report_date = report_date
    error: VenueError | None = None
    try:
        connector.fetch()
    except VenueError as exc:
        error = exc
        snapshot.error = redact(str(exc), source.secrets())
    finally:
        key = raw.land(store, snapshot)
    details = {
        "mode": "live",
        "snapshot_key": key,
        "snapshot_at": now.isoformat(),
        "responses": len(snapshot.responses),
    }
    if error is not None:
        return StageOutcome(source.name, "failed", snapshot.error, details), error
    return StageOutcome(source.name, "ok", None, details), None


def stored_snapshot(
    source: SourceConfig, store: ObjectStore, report_date: date, exclude: str | None = None
) -> StageOutcome:
    """The latest stored snapshot of D that was fetched successfully, if any."""
    keys = [
        k
        for k in store.list(raw.raw_prefix(source.kind, source.name, report_date))
        if k.endswith(".json.gz") and k != exclude
    ]
    for key in reversed(keys):
        snap = raw.RawSnapshot.from_bytes(store.get(key))
        if snap.error is None:
            return StageOutcome(
                source.name,
                "ok",
                None,
                {
                    "mode": "replay",
                    "snapshot_key": key,
                    "snapshot_at": snap.snapshot_at.isoformat(),
                    "responses": len(snap.responses),
                },
            )
    return StageOutcome(
        source.name,
        "failed",
        f"{source.name}: no stored snapshot for {report_date.isoformat()}",
        {"mode": "replay"},
    )


def take_snapshot(
    source: SourceConfig,
    store: ObjectStore,
    report_date: date,
    *,
    now: datetime,
    cutoff_hours: float,
    final_attempt: bool = True,
    deadline: float | None = None,
) -> StageOutcome:
    """Snapshot a source for D: live inside D's window, else replay the stored snapshot.

    A live failure on the final attempt falls back to an earlier good snapshot of D, so a
    re-run that hits an outage never replaces good balances with nothing. On a non-final
    attempt the venue error is raised so the orchestrator's retry policy can try again,
    except a `FinalVenueError` (a spent time budget, a file that is not a report), which no
    retry could help. A source that
    reads history (a dated report file) is fetched for a past date when nothing is stored.
    """
    start, end = live_window(report_date, cutoff_hours)
    history = connector_for(source.kind).reads_history(source.settings)
    stored = None if now < end or not history else stored_snapshot(source, store, report_date)
    if now < start:
        outcome = StageOutcome(
            source.name, "failed", f"{source.name}: report date {report_date} is in the future"
        )
    elif now < end or (stored is not None and not stored.ok):
        outcome, error = fetch_live(source, store, report_date, now, deadline=deadline)
        if error is not None:
            if not final_attempt and not isinstance(error, FinalVenueError):
                raise error
            fallback = stored_snapshot(
                source, store, report_date, exclude=outcome.details["snapshot_key"]
            )
            if fallback.ok:
                outcome = dataclasses.replace(
                    fallback,
                    reason=f"live fetch failed ({outcome.reason}); used stored snapshot",
                    details={**fallback.details, "mode": "fallback"},
                )
    else:
        outcome = stored or stored_snapshot(source, store, report_date)
        if not outcome.ok:
            outcome = dataclasses.replace(
                outcome,
                reason=(
                    f"{source.name}: no stored snapshot for {report_date.isoformat()} and its live "
                    f"window closed at {end.isoformat()}"
                ),
            )
    staging.put_json(
        store, staging.snapshot_manifest_key(source.name, report_date), _manifest(outcome)
    )
    return outcome


# --- stage 2: canonical balances ------------------------------------------------------------


def stage_balances(source: SourceConfig, store: ObjectStore, report_date: date) -> StageOutcome:
    """Parse the day's snapshot, validate rows (bad ones to quarantine), stage the rest."""
    manifest_key, table_key = staging.balances_keys(source.name, report_date)
    snap = staging.get_json(store, staging.snapshot_manifest_key(source.name, report_date))
    if snap is None:
        outcome = StageOutcome(source.name, "failed", f"{source.name}: no snapshot taken")
    elif snap["status"] != "ok":
        outcome = StageOutcome(source.name, "failed", snap["reason"], snap["details"])
    else:
        outcome = _parse_and_stage(source, store, report_date, snap["details"], table_key)
    staging.put_json(store, manifest_key, _manifest(outcome))
    return outcome


def _parse_and_stage(
    source: SourceConfig,
    store: ObjectStore,
    report_date: date,
    snap: dict[str, Any],
    table_key: str,
) -> StageOutcome:
    snapshot = raw.RawSnapshot.from_bytes(store.get(snap["snapshot_key"]))
    try:
        parsed = connector_for(source.kind).parse(snapshot, source)
    except EtlError as exc:
        return StageOutcome(source.name, "failed", redact(str(exc), source.secrets()), snap)
    valid, rejected = split_valid(parsed.balances, BalancesModel)
    staging.put_table(store, table_key, valid)
    for name, table in parsed.extra_tables.items():
        staging.put_table(store, table_key.replace("balances.parquet", f"{name}.parquet"), table)
    details = {
        **snap,
        "rows": valid.num_rows,
        "rejected": [dataclasses.asdict(r) for r in (*parsed.rejected, *rejected)],
        "accounts": [dataclasses.asdict(a) for a in parsed.accounts],
        "extra_tables": sorted(parsed.extra_tables),
    }
    return StageOutcome(source.name, "ok", None, details)


# --- stage 3: the report (staged, not yet published) ----------------------------------------


def stage_report(
    config: AppConfig,
    store: ObjectStore,
    report_date: date,
    run_id: str,
    expected: Mapping[str, Sequence[ExpectedAccount]] | None = None,
) -> StageOutcome:
    """Build D's report from every source's staged balances; name the sources that failed.

    `expected`: per source, the accounts seen on recent published dates (the account
    registry); one the venue no longer lists is a named gap, never a silent shrink."""
    tables: list[pa.Table] = []
    snapshot_at: dict[str, datetime] = {}
    gaps: list[dict[str, str]] = []
    rejected: list[dict[str, Any]] = []
    sources: dict[str, dict[str, Any]] = {}
    completeness: list[dict[str, Any]] = []
    extras: dict[str, list[str]] = {}
    for source in config.sources:
        manifest_key, table_key = staging.balances_keys(source.name, report_date)
        doc = staging.get_json(store, manifest_key)
        if doc is None or doc["status"] != "ok":
            reason = doc["reason"] if doc else f"{source.name}: balances not staged"
            gaps.append(_gap(source.name, "*", None, reason))
            completeness.append(_completeness_row(source, "*", None, "failed", reason))
            continue
        details = doc["details"]
        accounts = _unique_accounts(details.get("accounts", []))
        for account in accounts:
            completeness.append(
                _completeness_row(
                    source,
                    account["account_id"],
                    account.get("name"),
                    account["status"],
                    account.get("reason"),
                )
            )
            if account["status"] != "received":
                reason = account.get("reason") or "failed"
                gaps.append(_gap(source.name, account["account_id"], account.get("name"), reason))
        listed = {a["account_id"] for a in accounts}
        for gone in vanished((expected or {}).get(source.name, ()), listed):
            reason = f"listed on {gone.last_seen.isoformat()}, absent today"
            gaps.append(_gap(source.name, gone.account_id, gone.name, reason))
            completeness.append(
                _completeness_row(source, gone.account_id, gone.name, "vanished", reason)
            )
        for name in details.get("extra_tables", []):
            extras.setdefault(name, []).append(
                table_key.replace("balances.parquet", f"{name}.parquet")
            )
        tables.append(staging.get_table(store, table_key, BALANCES_SCHEMA))
        snapshot_at[source.name] = datetime.fromisoformat(details["snapshot_at"])
        source_rejected = details.get("rejected", [])
        rejected.extend(source_rejected)
        sources[source.name] = {
            **{k: details.get(k) for k in ("mode", "snapshot_key", "snapshot_at", "rows")},
            "accounts": len(accounts),
            "delivered": details.get("rows", 0) + len(source_rejected),
            "quarantined": len(source_rejected),
        }
    manifest_key, table_key = staging.report_keys(report_date)
    if not tables:
        outcome = StageOutcome(
            "report",
            "failed",
            "no source produced balances: " + "; ".join(g["reason"] for g in gaps),
            {"gaps": gaps},
        )
        staging.put_json(store, manifest_key, _manifest(outcome))
        return outcome
    keep_zero = [s.name for s in config.sources if s.keep_zero_rows]
    report, report_rejected = build_report(
        tables,
        report_date=report_date,
        run_id=run_id,
        snapshot_at=snapshot_at,
        keep_zero_sources=keep_zero,
    )
    rejected.extend(dataclasses.asdict(r) for r in report_rejected)
    _account_rows(sources, report, report_rejected)
    staging.put_table(store, table_key, report)
    details = {
        "run_id": run_id,
        "rows": report.num_rows,
        "completeness": "partial" if gaps else "complete",
        "gaps": gaps,
        "sources": sources,
        "rejected": rejected,
        "completeness_rows": completeness,
        "extra_tables": extras,
    }
    outcome = StageOutcome("report", "ok", None, details)
    staging.put_json(store, manifest_key, _manifest(outcome))
    return outcome


def _account_rows(
    sources: dict[str, dict[str, Any]], report: pa.Table, report_rejected: Sequence[Rejected]
) -> None:
    """Per source: delivered = published + dropped all-zero + quarantined, so no row is
    unaccounted for (the run line, `_status.json` and the metadata all say it)."""
    published = {
        row["values"]: row["counts"] for row in pc.value_counts(report.column("source")).to_pylist()
    }
    late = Counter(r.source for r in report_rejected)
    for name, counts in sources.items():
        counts["published"] = published.get(name, 0)
        counts["quarantined"] += late.get(name, 0)
        counts["dropped_all_zero"] = (
            counts["delivered"] - counts["published"] - counts["quarantined"]
        )


def accounting_rows(details: Mapping[str, Any]) -> list[dict[str, object]]:
    """Per source of a staged report: delivered = published + dropped all-zero + quarantined."""
    return [
        {
            "source": name,
            "delivered": counts.get("delivered", 0),
            "published": counts.get("published", 0),
            "dropped all-zero": counts.get("dropped_all_zero", 0),
            "quarantined": counts.get("quarantined", 0),
        }
        for name, counts in details.get("sources", {}).items()
    ]


def accounting_line(row: Mapping[str, object]) -> str:
    """`kraken_main: delivered 63 = published 43 + dropped all-zero 15 + quarantined 5`."""
    return (
        f"{row['source']}: delivered {row['delivered']} = published {row['published']} "
        f"+ dropped all-zero {row['dropped all-zero']} + quarantined {row['quarantined']}"
    )


def _unique_accounts(accounts: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One entry per venue account: a failure wins over a receipt of the same account."""
    merged: dict[str, dict[str, Any]] = {}
    for account in accounts:
        kept = merged.get(account["account_id"])
        if kept is None or (kept["status"] == "received" and account["status"] != "received"):
            merged[account["account_id"]] = account
    return list(merged.values())


def account_label(account_id: str, name: str | None) -> str:
    """How an operator knows an account: `<display name> (<id>)`, else the id."""
    return f"{name} ({account_id})" if name and name != account_id else account_id


def _gap(source: str, account_id: str, name: str | None, reason: str) -> dict[str, str]:
    return {
        "source": source,
        "account_id": account_id,
        "account": account_label(account_id, name),
        "reason": reason,
    }


def staged_details(store: ObjectStore, report_date: date) -> dict[str, Any]:
    """The manifest details of D's staged report (rows, completeness, gaps, rejected, …)
    without reading the report itself; raises when D was not staged."""
    doc = staging.get_json(store, staging.report_keys(report_date)[0])
    if doc is None or doc["status"] != "ok":
        reason = doc["reason"] if doc else "report not staged"
        raise SnapshotMissing(f"report {report_date.isoformat()}: {reason}")
    details: dict[str, Any] = doc["details"]
    return details


def staged_report(store: ObjectStore, report_date: date) -> tuple[pa.Table, dict[str, Any]]:
    """The staged report of D and its manifest details; raises when D was not staged."""
    details = staged_details(store, report_date)
    table_key = staging.report_keys(report_date)[1]
    return staging.get_table(store, table_key, REPORT_SCHEMA), details


def _completeness_row(
    source: SourceConfig, account_id: str, name: str | None, status: str, reason: str | None
) -> dict[str, Any]:
    return {
        "source": source.name,
        "venue": source.kind,
        "account_id": account_id,
        "account_name": name,
        "expected": True,
        "received": status == "received",
        "failed": status != "received",
        "listed": status != "vanished",
        "reason": reason,
    }


def _manifest(outcome: StageOutcome) -> dict[str, Any]:
    return {
        "source": outcome.source,
        "status": outcome.status,
        "reason": outcome.reason,
        "details": outcome.details,
    }
