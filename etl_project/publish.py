"""Stage 4 of the daily job: publish the audited report to files and the warehouse.

Runs only after the blocking schema check passed on the staged report (stage -> audit ->
publish). Both sinks read the same staged report and manifest, so the files and the warehouse
always hold the same run's rows.
"""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from typing import Any

import pyarrow as pa

from etl_project import staging
from etl_project.pipeline import staged_report
from etl_project.report.columns import SQL_NAMES
from etl_project.sinks.files import publish_report_files, write_quarantine
from etl_project.sinks.object_store import ObjectStore
from etl_project.sinks.operational_tables import (
    COMPLETENESS_TABLE,
    POSITIONS_TABLE,
    REPORT_RUNS_TABLE,
)
from etl_project.sinks.warehouse import Warehouse, quarantine_rows
from etl_project.sinks.warehouse_tables import QUARANTINE_TABLE, REPORT_TABLE
from etl_project.venues.base import Rejected


def _rejected(details: dict[str, Any]) -> list[Rejected]:
    return [Rejected(**r) for r in details.get("rejected", [])]


def status_key(report_date: date) -> str:
    """Sidecar of the published files: completeness and named gaps of the date."""
    return f"reports/settlement_balance/date={report_date.isoformat()}/_status.json"


def publish_files(store: ObjectStore, report_date: date) -> dict[str, str]:
    """Publish the audited report's CSV/JSON/Parquet, its status sidecar and quarantine file."""
    report, details = staged_report(store, report_date)
    uris = publish_report_files(store, report, report_date)
    uris["quarantine"] = write_quarantine(store, _rejected(details), report_date, details["run_id"])
    staging.put_json(store, status_key(report_date), _status(report_date, details))
    uris["status"] = store.uri(status_key(report_date))
    return uris


def publish_warehouse(warehouse: Warehouse, store: ObjectStore, report_date: date) -> int:
    """Replace D's report, quarantine, completeness, status and positions in ONE transaction."""
    report, details = staged_report(store, report_date)
    run_id = details["run_id"]
    warehouse.ensure_schema()
    status = _status(report_date, details)
    items: list[tuple[Any, pa.Table, None]] = [
        (
            REPORT_TABLE,
            report.rename_columns([SQL_NAMES.get(n, n) for n in report.column_names]),
            None,
        ),
        (QUARANTINE_TABLE, quarantine_rows(_rejected(details), run_id), None),
        (COMPLETENESS_TABLE, _completeness_table(details["completeness_rows"], run_id), None),
        (
            REPORT_RUNS_TABLE,
            pa.Table.from_pylist(
                [
                    {
                        "completeness": status["completeness"],
                        "gaps": json.dumps(status["gaps"]),
                        "report_rows": status["rows"],
                        "rejected_rows": status["rejected_rows"],
                        "run_id": run_id,
                        "published_at": datetime.now(UTC),
                    }
                ]
            ),
            None,
        ),
    ]
    positions = [
        staging.read_parquet(store, key)
        for key in details.get("extra_tables", {}).get("positions", [])
    ]
    if positions:
        table = pa.concat_tables(positions, promote_options="permissive")
        items.append(
            (
                POSITIONS_TABLE,
                table.append_column("run_id", pa.array([run_id] * table.num_rows)),
                None,
            )
        )
    else:
        items.append((POSITIONS_TABLE, pa.table({"run_id": pa.array([], pa.string())}), None))
    return warehouse.replace_all(report_date, items)[0]


def _status(report_date: date, details: dict[str, Any]) -> dict[str, Any]:
    return {
        "report_date": report_date.isoformat(),
        "run_id": details["run_id"],
        "completeness": details["completeness"],
        "gaps": details["gaps"],
        "rows": details["rows"],
        "rejected_rows": len(details.get("rejected", [])),
        "sources": details.get("sources", {}),
    }


def _completeness_table(rows: list[dict[str, Any]], run_id: str) -> pa.Table:
    schema = pa.schema(
        [
            ("source", pa.string()),
            ("venue", pa.string()),
            ("account_id", pa.string()),
            ("expected", pa.bool_()),
            ("received", pa.bool_()),
            ("failed", pa.bool_()),
            ("reason", pa.string()),
            ("run_id", pa.string()),
        ]
    )
    return pa.Table.from_pylist([{**r, "run_id": run_id} for r in rows], schema=schema)
