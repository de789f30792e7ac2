"""Stage 2: a source's canonical balances, validated; bad rows go to quarantine."""

from __future__ import annotations

import dataclasses
from datetime import date
from typing import Any

import pyarrow as pa

from etl_project import staging
from etl_project.config import SourceConfig, redact
from etl_project.errors import EtlError
from etl_project.model import AccountStatus, Rejected
from etl_project.report.columns import BALANCES_SCHEMA
from etl_project.report.schema import BalancesModel
from etl_project.report.validate import split_valid
from etl_project.sinks.object_store import ObjectStore
from etl_project.stages.completeness import accounts_table
from etl_project.stages.outcome import StageOutcome, manifest
from etl_project.venues import connector_for


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
    staging.put_json(store, manifest_key, manifest(outcome))
    return outcome


def _parse_and_stage(
    source: SourceConfig,
    store: ObjectStore,
    report_date: date,
    snap: dict[str, Any],
    table_key: str,
) -> StageOutcome:
    """Parse the snapshot part by part (a big report streams; an API snapshot is one part),
    validating each part and appending its valid rows to the staged Parquet file."""
    connector = connector_for(source.kind)
    rejected: list[Rejected] = []
    listed: list[AccountStatus] = []
    seen: set[str] = set()
    extras: dict[str, pa.Table] = {}
    rows = 0
    try:
        with (
            store.reading(snap["snapshot_key"]) as path,
            staging.table_writer(store, table_key, BALANCES_SCHEMA) as writer,
        ):
            parts = connector.parse_stored(path, int(snap.get("responses", 1)), source)
            for number, part in enumerate(parts):
                valid, invalid = split_valid(part.balances, BalancesModel)
                writer.write_table(valid.cast(BALANCES_SCHEMA))
                rows += valid.num_rows
                rejected += (*part.rejected, *invalid)
                # An account listed again in a later block of a report is one account.
                listed += part.accounts if not number else [
                    a for a in part.accounts if a.account_id not in seen
                ]
                seen.update(a.account_id for a in part.accounts)
                extras.update(part.extra_tables)
    except EtlError as exc:
        store.delete(table_key)
        return StageOutcome(source.name, "failed", redact(str(exc), source.secrets()), snap)
    for name, table in extras.items():
        staging.put_table(store, table_key.replace("balances.parquet", f"{name}.parquet"), table)
    staging.put_table(store, staging.accounts_key(source.name, report_date), accounts_table(listed))
    received = sum(a.status == "received" for a in listed)
    details = {
        **snap,
        "rows": rows,
        "rejected": [dataclasses.asdict(r) for r in rejected],
        "accounts_received": received,
        "accounts_failed": len(listed) - received,
        "extra_tables": sorted(extras),
    }
    return StageOutcome(source.name, "ok", None, details)
