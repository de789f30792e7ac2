"""The warehouse half of publishing: the commit transaction and the rows it writes.

The report's rows arrive as a stream of record batches (the staged file read once, inside
the transaction), so the commit holds a batch in memory, not the report."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import sqlalchemy as sa

from etl_project import failpoints, staging
from etl_project.model import Rejected
from etl_project.sinks.account_registry import record_listing
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
from etl_project.sinks.warehouse import Warehouse
from etl_project.sinks.warehouse_loaders import Rows
from etl_project.sinks.warehouse_rows import quarantine_rows, sql_named
from etl_project.sinks.warehouse_tables import QUARANTINE_TABLE, REPORT_TABLE

PUBLISHING = "publishing"


def commit(
    store: ObjectStore,
    warehouse: Warehouse,
    report: Rows,
    details: dict[str, Any],
    status: dict[str, Any],
    prefix: str,
) -> Restatement:
    """The commit point: every warehouse table of the date in one transaction. `report` is
    the report's rows (REPORT_SCHEMA names), a table or a stream of record batches."""
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
        record_listing(conn, report_date, run_id, listed_accounts(completeness))
        failpoints.hit("publish.in_transaction")

    completeness = staging.read_parquet(store, staging.completeness_key(report_date))
    items = warehouse_items(store, report, details, status, now, completeness)
    warehouse.replace_all(report_date, items, before=before, after=after)
    return result[0]


def warehouse_items(
    store: ObjectStore,
    report: Rows,
    details: dict[str, Any],
    status: dict[str, Any],
    now: datetime,
    completeness: pa.Table,
) -> list[tuple[sa.Table, Rows, None]]:
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
    items: list[tuple[sa.Table, Rows, None]] = [
        (REPORT_TABLE, sql_named(report), None),
        (QUARANTINE_TABLE, quarantine_rows(rejected, run_id), None),
        (COMPLETENESS_TABLE, _with_run_id(completeness, run_id), None),
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


def listed_accounts(completeness: pa.Table) -> pa.Table:
    """The accounts the venues listed today (received or failed; not vanished, not `*`)."""
    keep = pc.and_(
        completeness.column("listed"), pc.not_equal(completeness.column("account_id"), "*")
    )
    return completeness.filter(keep).select(["source", "venue", "account_id", "account_name"])


def _with_run_id(completeness: pa.Table, run_id: str) -> pa.Table:
    """Completeness rows as the warehouse table has them (without `listed`, with run_id)."""
    rows = completeness.drop_columns(["listed"])
    return rows.append_column("run_id", pa.repeat(pa.scalar(run_id, pa.string()), rows.num_rows))
