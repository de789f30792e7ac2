"""Stage 3: the report of a date, staged (not yet published), with its gaps and accounting.

Reads every source's staged balances, names what failed or vanished (the account registry's
expected accounts), builds and validates the report, and stages it with a manifest.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager
from datetime import date, datetime
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from etl_project import staging
from etl_project.config import AppConfig
from etl_project.errors import SnapshotMissing
from etl_project.model import Rejected
from etl_project.report.build_stream import build_report_stream
from etl_project.report.columns import REPORT_SCHEMA
from etl_project.sinks.account_registry import ExpectedAccount
from etl_project.sinks.object_store import ObjectStore
from etl_project.stages.completeness import (
    ACCOUNTS_SCHEMA,
    failed_source,
    source_completeness,
)
from etl_project.stages.outcome import StageOutcome, manifest


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
    inputs: list[str] = []
    snapshot_at: dict[str, datetime] = {}
    gaps: list[dict[str, str]] = []
    rejected: list[dict[str, Any]] = []
    sources: dict[str, dict[str, Any]] = {}
    completeness: list[pa.Table] = []
    extras: dict[str, list[str]] = {}
    for source in config.sources:
        manifest_key, table_key = staging.balances_keys(source.name, report_date)
        doc = staging.get_json(store, manifest_key)
        if doc is None or doc["status"] != "ok":
            reason = doc["reason"] if doc else f"{source.name}: balances not staged"
            rows, source_gap = failed_source(source, reason)
            completeness.append(rows)
            gaps.append(source_gap)
            continue
        details = doc["details"]
        accounts = staging.get_table(
            store, staging.accounts_key(source.name, report_date), ACCOUNTS_SCHEMA
        )
        rows, source_gaps = source_completeness(
            source, accounts, (expected or {}).get(source.name, ())
        )
        completeness.append(rows)
        gaps.extend(source_gaps)
        for name in details.get("extra_tables", []):
            extras.setdefault(name, []).append(
                table_key.replace("balances.parquet", f"{name}.parquet")
            )
        inputs.append(table_key)
        snapshot_at[source.name] = datetime.fromisoformat(details["snapshot_at"])
        source_rejected = details.get("rejected", [])
        rejected.extend(source_rejected)
        sources[source.name] = {
            **{k: details.get(k) for k in ("mode", "snapshot_key", "snapshot_at", "rows")},
            "accounts": int(pc.sum(rows.column("listed")).as_py() or 0),
            "delivered": details.get("rows", 0) + len(source_rejected),
            "quarantined": len(source_rejected),
        }
    manifest_key, table_key = staging.report_keys(report_date)
    if not inputs:
        outcome = StageOutcome(
            "report",
            "failed",
            "no source produced balances: " + "; ".join(g["reason"] for g in gaps),
            {"gaps": gaps},
        )
        staging.put_json(store, manifest_key, manifest(outcome))
        return outcome
    keep_zero = [s.name for s in config.sources if s.keep_zero_rows]
    with ExitStack() as files:
        paths = [files.enter_context(store.reading(key)) for key in inputs]
        writer = files.enter_context(staging.table_writer(store, table_key, REPORT_SCHEMA))
        built = build_report_stream(
            paths,
            writer.write_table,
            report_date=report_date,
            run_id=run_id,
            snapshot_at=snapshot_at,
            keep_zero_sources=keep_zero,
        )
    rejected.extend(dataclasses.asdict(r) for r in built.rejected)
    _account_rows(sources, built.rows_by_source, built.rejected)
    staging.put_table(store, staging.completeness_key(report_date), pa.concat_tables(completeness))
    details = {
        "run_id": run_id,
        "rows": built.rows,
        "completeness": "partial" if gaps else "complete",
        "gaps": gaps,
        "sources": sources,
        "rejected": rejected,
        "extra_tables": extras,
    }
    outcome = StageOutcome("report", "ok", None, details)
    staging.put_json(store, manifest_key, manifest(outcome))
    return outcome


def _account_rows(
    sources: dict[str, dict[str, Any]],
    published: Mapping[str, int],
    report_rejected: Sequence[Rejected],
) -> None:
    """Per source: delivered = published + dropped all-zero + quarantined, so no row is
    unaccounted for (the run line, `_status.json` and the metadata all say it)."""
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


def staged_details(store: ObjectStore, report_date: date) -> dict[str, Any]:
    """The manifest details of D's staged report (rows, completeness, gaps, rejected, …)
    without reading the report itself; raises when D was not staged."""
    doc = staging.get_json(store, staging.report_keys(report_date)[0])
    if doc is None or doc["status"] != "ok":
        reason = doc["reason"] if doc else "report not staged"
        raise SnapshotMissing(f"report {report_date.isoformat()}: {reason}")
    details: dict[str, Any] = doc["details"]
    return details


@contextmanager
def staged_report_file(
    store: ObjectStore, report_date: date
) -> Iterator[tuple[pq.ParquetFile, dict[str, Any]]]:
    """The staged report of D as a Parquet file to read batch by batch (memory bounded by the
    batch, not the report), and its manifest details; raises when D was not staged."""
    details = staged_details(store, report_date)
    with staging.table_reader(store, staging.report_keys(report_date)[1]) as parquet:
        yield parquet, details


def staged_report(store: ObjectStore, report_date: date) -> tuple[pa.Table, dict[str, Any]]:
    """The staged report of D and its manifest details; raises when D was not staged."""
    details = staged_details(store, report_date)
    table_key = staging.report_keys(report_date)[1]
    return staging.get_table(store, table_key, REPORT_SCHEMA), details
