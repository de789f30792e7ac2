"""Run the data-quality checks of one report date against what was staged and published.

`quality` holds the pure rules; this module fetches their inputs (the staged manifest, the
warehouse's totals and status rows) and records each outcome in `settlement_check_results`,
so BI sees the same verdicts as the Dagster UI. Nothing here knows about Dagster. Callers
pass a warehouse whose tables exist (`Warehouse.ensure_schema`, once per check).
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Any

from etl_project import quality
from etl_project.checks import CheckOutcome
from etl_project.errors import EtlError
from etl_project.sinks.object_store import ObjectStore
from etl_project.sinks.operational_tables import CHECK_RESULTS_TABLE, REPORT_RUNS_TABLE
from etl_project.sinks.warehouse import Warehouse
from etl_project.stages.report import staged_details


def published_status(warehouse: Warehouse, report_date: date) -> dict[str, Any] | None:
    """The `settlement_report_status` row of a published date, else None (also while the date
    is being published or after publishing failed half-way: that is not published)."""
    rows = warehouse.read_table(REPORT_RUNS_TABLE.name, report_date)
    published = [r for r in rows if r["completeness"] in ("complete", "partial")]
    return published[0] if published else None


def completeness(store: ObjectStore, report_date: date) -> CheckOutcome:
    """Every expected account of every source made it into the staged report."""
    try:
        details = staged_details(store, report_date)
    except EtlError as exc:
        return CheckOutcome(False, str(exc))
    return quality.completeness(details)


def movement(warehouse: Warehouse, report_date: date, threshold_pct: float) -> CheckOutcome:
    """Day-over-day movement of Total per (accountUUID, Ccy) against the previous published
    report; passes with a note when there is none (first date, or a gap in the history)."""
    previous = report_date - timedelta(days=1)
    if published_status(warehouse, report_date) is None:
        return CheckOutcome(False, f"report for {report_date} is not published")
    before = warehouse.read_totals(previous) if published_status(warehouse, previous) else None
    outcome = quality.movement(warehouse.read_totals(report_date), before, threshold_pct)
    metadata = {**outcome.metadata, "previous_report_date": previous.isoformat()}
    return CheckOutcome(outcome.passed, outcome.summary, metadata)


def row_count(warehouse: Warehouse, report_date: date, threshold_pct: float) -> CheckOutcome:
    """The published row count against the previous date's."""
    today = published_status(warehouse, report_date)
    if today is None:
        return CheckOutcome(False, f"report for {report_date} is not published")
    before = published_status(warehouse, report_date - timedelta(days=1))
    previous_rows = None if before is None else int(before["report_rows"])
    return quality.row_count(int(today["report_rows"]), previous_rows, threshold_pct)


def freshness(warehouse: Warehouse, now: datetime, deadline_utc: str) -> tuple[date, CheckOutcome]:
    """Whether yesterday's report (relative to `now`, UTC) is published by `deadline_utc`;
    returns the date it judged and the outcome."""
    yesterday = quality.freshness_date(now)
    exists = published_status(warehouse, yesterday) is not None
    return yesterday, quality.freshness(exists, now, deadline_utc)


def record(
    warehouse: Warehouse,
    report_date: date,
    asset: str,
    check_name: str,
    outcome: CheckOutcome,
    run_id: str,
) -> CheckOutcome | None:
    """Replace the (date, asset, check) row of `settlement_check_results` by `outcome`;
    returns the verdict it replaced (None when there was none)."""
    scope = {"asset": asset, "check_name": check_name}
    before = [
        row
        for row in warehouse.read_table(CHECK_RESULTS_TABLE.name, report_date)
        if row["asset"] == asset and row["check_name"] == check_name
    ]
    rows = quality.check_results_rows({check_name: outcome}, run_id, asset=asset)
    warehouse.replace(CHECK_RESULTS_TABLE, rows, report_date, scope=scope)
    return CheckOutcome(before[0]["passed"], before[0]["summary"]) if before else None


def is_new_failure(outcome: CheckOutcome, previous: CheckOutcome | None) -> bool:
    """Alert-worthy: a failure that is not the very failure already recorded for the date, so
    re-runs and backfills do not repeat an alert that was already sent."""
    if outcome.passed:
        return False
    return previous is None or previous.passed or previous.summary != outcome.summary
