"""The warehouse half of publishing: the commit transaction and the rows it writes."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from typing import Any

import pyarrow as pa
import sqlalchemy as sa

from etl_project import failpoints, staging
from etl_project.report.columns import SQL_NAMES
from etl_project.sinks.account_registry import record_listed
from etl_project.sinks.object_store import ObjectStore
from etl_project.sinks.operational_tables import (
    COMPLETENESS_TABLE,
    POSITIONS_TABLE,
    REPORT_RUNS_TABLE,
)
from etl_project.sinks.report_versions import (
    Restatement,
    archive_current,
    record_version,
)
from etl_project.sinks.warehouse import Warehouse, quarantine_rows
from etl_project.sinks.warehouse_tables import QUARANTINE_TABLE, REPORT_TABLE
from etl_project.venues.base import Rejected

PUBLISHING = "publishing"


def commit(
    store: ObjectStore,
    warehouse: Warehouse,
    report: pa.Table,
    details: dict[str, Any],
    status: dict[str, Any],
    prefix: str,
) -> Restatement:
    """The commit point: every warehouse table of the date in one transaction."""
    run_id = details["run_id"]
    report_date = date.fromisoformat(status["report_date"])
    now = datetime.now(UTC)
    warehouse.ensure_schema()
    previous: list[str | None] = [None]
    result: list[Restatement] = []

    def before(conn: sa.Connection) -> None:
        previous[0] = archive_current(conn, report_date, run_id, now)

    def after(conn: sa.Connection) -> None:
        result.append(
            record_version(
                conn,
                report_date,
                run_id=run_id,
                previous_run_id=previous[0],
                completeness=status["completeness"],
                report_rows=status["rows"],
                rejected_rows=status["rejected_rows"],
                files_prefix=prefix,
                now=now,
            )
        )
        record_listed(conn, report_date, run_id, listed_accounts(details))
        failpoints.hit("publish.in_transaction")

    items = warehouse_items(store, report, details, status, now)
    warehouse.replace_all(report_date, items, before=before, after=after)
    return result[0]


def warehouse_items(
    store: ObjectStore,
    report: pa.Table,
    details: dict[str, Any],
    status: dict[str, Any],
    now: datetime,
) -> list[tuple[sa.Table, pa.Table, None]]:
    run_id = details["run_id"]
    position_keys = details.get("extra_tables", {}).get("positions", [])
    rejected = [Rejected(**r) for r in details.get("rejected", [])]
    status_row = {
        "completeness": PUBLISHING,
        "gaps": json.dumps(status["gaps"]),
        "report_rows": status["rows"],
        "rejected_rows": status["rejected_rows"],
        "run_id": run_id,
        "published_at": now,
        "cause": None,
    }
    items: list[tuple[sa.Table, pa.Table, None]] = [
        (
            REPORT_TABLE,
            report.rename_columns([SQL_NAMES.get(n, n) for n in report.column_names]),
            None,
        ),
        (QUARANTINE_TABLE, quarantine_rows(rejected, run_id), None),
        (COMPLETENESS_TABLE, _completeness_table(details["completeness_rows"], run_id), None),
        (REPORT_RUNS_TABLE, pa.Table.from_pylist([status_row]), None),
    ]
    positions = [staging.read_parquet(store, key) for key in position_keys]
    if positions:
        table = pa.concat_tables(positions, promote_options="permissive")
        table = table.append_column("run_id", pa.repeat(pa.scalar(run_id), table.num_rows))
    else:
        table = pa.table({"run_id": pa.array([], pa.string())})
    items.append((POSITIONS_TABLE, table, None))
    return items


def set_warehouse_state(
    warehouse: Warehouse, report_date: date, completeness: str, cause: str | None
) -> None:
    table = REPORT_RUNS_TABLE
    with warehouse.transaction() as conn:
        conn.execute(
            table.update()
            .where(table.c.report_date == report_date)
            .values(completeness=completeness, cause=cause)
        )


def status_doc(report_date: date, details: dict[str, Any], prefix: str) -> dict[str, Any]:
    return {
        "report_date": report_date.isoformat(),
        "run_id": details["run_id"],
        "completeness": details["completeness"],
        "gaps": details["gaps"],
        "rows": details["rows"],
        "rejected_rows": len(details.get("rejected", [])),
        "sources": details.get("sources", {}),
        "version": prefix,
    }


def where(exc: BaseException, warehouse: Warehouse) -> str:
    return (
        f"warehouse {warehouse.safe_url}"
        if isinstance(exc, sa.exc.SQLAlchemyError)
        else ("object store")
    )


def listed_accounts(details: dict[str, Any]) -> list[tuple[str, str, str, str | None]]:
    """The accounts the venues listed today (received or failed, not vanished)."""
    return [
        (r["source"], r["venue"], r["account_id"], r.get("account_name"))
        for r in details["completeness_rows"]
        if r["account_id"] != "*" and r.get("listed", True)
    ]


def _completeness_table(rows: list[dict[str, Any]], run_id: str) -> pa.Table:
    schema = pa.schema(
        [
            ("source", pa.string()),
            ("venue", pa.string()),
            ("account_id", pa.string()),
            ("account_name", pa.string()),
            ("expected", pa.bool_()),
            ("received", pa.bool_()),
            ("failed", pa.bool_()),
            ("reason", pa.string()),
            ("run_id", pa.string()),
        ]
    )
    return pa.Table.from_pylist([{**r, "run_id": run_id} for r in rows], schema=schema)
