"""Run the data-quality checks of one report date against what was staged and published.

`quality` holds the pure rules; this module fetches their inputs (the staged manifest, the
warehouse's totals and status rows) and records each outcome in `settlement_check_results`,
so BI sees the same verdicts as the Dagster UI. Nothing here knows about Dagster. Callers
pass a warehouse whose tables exist (`Warehouse.ensure_schema`, once per check).
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Any

import pyarrow as pa
import sqlalchemy as sa

from etl_project import quality
from etl_project.checks import CheckOutcome
from etl_project.errors import EtlError
from etl_project.sinks.object_store import ObjectStore
from etl_project.sinks.operational_tables import CHECK_RESULTS_TABLE, REPORT_RUNS_TABLE
from etl_project.sinks.warehouse import Warehouse
from etl_project.sinks.warehouse_tables import REPORT_TABLE, arrow_schema
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
    report; passes with a note when there is none (first date, or a gap in the history).

    The warehouse sums, joins and narrows the two days' totals (`_movement_candidates`): only
    the pairs that may breach reach Python, where `quality.movement_verdict` decides exactly,
    so memory does not grow with the report."""
    previous = report_date - timedelta(days=1)
    if published_status(warehouse, report_date) is None:
        return CheckOutcome(False, f"report for {report_date} is not published")
    if published_status(warehouse, previous) is None:
        outcome = quality.movement_verdict(None, 0, threshold_pct)
    else:
        candidates, pairs = _movement_candidates(warehouse, report_date, previous, threshold_pct)
        outcome = quality.movement_verdict(candidates, pairs, threshold_pct)
    metadata = {**outcome.metadata, "previous_report_date": previous.isoformat()}
    return CheckOutcome(outcome.passed, outcome.summary, metadata)


def _movement_candidates(
    warehouse: Warehouse, today: date, previous: date, threshold_pct: float
) -> tuple[pa.Table, int]:
    """(the (account, ccy) pairs whose Total may have moved more than `threshold_pct` %, with
    `total_t`/`total_p`; how many pairs the two dates have). The database sums each pair
    exactly (NUMERIC), full-outer-joins the dates and narrows in double precision with the
    same safety margin as `quality._candidates`, so no breach is missed."""
    table = REPORT_TABLE

    def totals(day: date) -> sa.Subquery:
        return (
            sa.select(table.c.account_uuid, table.c.ccy, sa.func.sum(table.c.total).label("total"))
            .where(table.c.report_date == day)
            .group_by(table.c.account_uuid, table.c.ccy)
            .subquery()
        )

    t, p = totals(today), totals(previous)
    same = sa.and_(t.c.account_uuid == p.c.account_uuid, t.c.ccy == p.c.ccy)
    joined = sa.select(
        sa.func.coalesce(t.c.account_uuid, p.c.account_uuid).label("account"),
        sa.func.coalesce(t.c.ccy, p.c.ccy).label("ccy"),
        t.c.total.label("total_t"),
        p.c.total.label("total_p"),
    ).select_from(t.join(p, same, full=True))
    if threshold_pct >= quality.FLOAT_NARROWING_MIN_PCT:
        today_f: sa.ColumnElement[float] = sa.cast(sa.func.coalesce(t.c.total, 0), sa.Double())
        before_f: sa.ColumnElement[float] = sa.cast(sa.func.coalesce(p.c.total, 0), sa.Double())
        margin = threshold_pct * (1 - quality.FLOAT_NARROWING_MIN_PCT)
        joined = joined.where(
            sa.or_(
                before_f == 0,
                sa.func.abs(today_f - before_f) * 100 >= sa.func.abs(before_f) * margin,
            )
        )
    amount = arrow_schema(table).field("total").type
    schema = pa.schema(
        [("account", pa.string()), ("ccy", pa.string()), ("total_t", amount), ("total_p", amount)]
    )
    candidates = warehouse.read_arrow(joined, schema)
    count = sa.select(sa.func.count()).select_from(t.join(p, same, full=True))
    with warehouse.transaction() as conn:
        pairs = int(conn.execute(count).scalar_one())
    return candidates, pairs


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
