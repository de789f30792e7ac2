"""Stage 1: the raw snapshot of one source for a report date, live or replayed.

Every response is landed verbatim before anything parses it; a date outside its live window is
rebuilt from the stored snapshot, so live runs and backfills share one mapping.
"""

from __future__ import annotations

import dataclasses
from datetime import UTC, date, datetime, time, timedelta

from etl_project import raw, raw_stream, staging
from etl_project.config import SourceConfig, redact
from etl_project.errors import FinalVenueError, VenueError
from etl_project.http import HttpClient
from etl_project.sinks.object_store import ObjectStore
from etl_project.stages.outcome import StageOutcome, manifest
from etl_project.venues import connector_for


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
        with store.reading(key) as path:  # streamed: the envelope's head, bodies skipped
            head = raw_stream.read_head(path)
            if head.get("error") is not None:
                continue
            responses = len(raw_stream.response_metas(path))
        return StageOutcome(
            source.name,
            "ok",
            None,
            {
                "mode": "replay",
                "snapshot_key": key,
                "snapshot_at": datetime.fromisoformat(head["snapshot_at"]).isoformat(),
                "responses": responses,
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
        store, staging.snapshot_manifest_key(source.name, report_date), manifest(outcome)
    )
    return outcome
