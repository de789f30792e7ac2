"""Stage 2: a source's canonical balances, validated; bad rows go to quarantine."""

from __future__ import annotations

import dataclasses
from datetime import date
from typing import Any

from etl_project import raw, staging
from etl_project.config import SourceConfig, redact
from etl_project.errors import EtlError
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
    snapshot = raw.RawSnapshot.from_bytes(store.get(snap["snapshot_key"]))
    try:
        parsed = connector_for(source.kind).parse(snapshot, source)
    except EtlError as exc:
        return StageOutcome(source.name, "failed", redact(str(exc), source.secrets()), snap)
    valid, rejected = split_valid(parsed.balances, BalancesModel)
    staging.put_table(store, table_key, valid)
    for name, table in parsed.extra_tables.items():
        staging.put_table(store, table_key.replace("balances.parquet", f"{name}.parquet"), table)
    accounts = accounts_table(parsed.accounts)
    staging.put_table(store, staging.accounts_key(source.name, report_date), accounts)
    received = sum(a.status == "received" for a in parsed.accounts)
    details = {
        **snap,
        "rows": valid.num_rows,
        "rejected": [dataclasses.asdict(r) for r in (*parsed.rejected, *rejected)],
        "accounts_received": received,
        "accounts_failed": len(parsed.accounts) - received,
        "extra_tables": sorted(parsed.extra_tables),
    }
    return StageOutcome(source.name, "ok", None, details)
