"""Schedules: yesterday's report at `report.schedule_utc`, its freshness check at
`report.freshness_utc` (both UTC)."""

from datetime import timedelta
from typing import Any

import dagster as dg

FRESHNESS_SCHEDULE_NAME = "settlement_report_freshness_schedule"


def _cron(hh_mm: str) -> str:
    hour, minute = (int(p) for p in hh_mm.split(":"))
    return f"{minute} {hour} * * *"


def daily_schedule(job: Any, schedule_utc: str) -> dg.ScheduleDefinition:
    """`job` is the (unresolved) asset job of the definitions."""

    @dg.schedule(
        job=job,
        cron_schedule=_cron(schedule_utc),
        execution_timezone="UTC",
        name="daily_settlement_report_schedule",
        description=f"Builds yesterday's report every day at {schedule_utc} UTC.",
    )
    def _schedule(context: dg.ScheduleEvaluationContext) -> dg.RunRequest:
        tick = context.scheduled_execution_time
        report_date = (tick - timedelta(days=1)).date().isoformat()
        return dg.RunRequest(
            run_key=report_date, partition_key=report_date, tags={"report_date": report_date}
        )

    return _schedule


def freshness_schedule(job: Any, freshness_utc: str) -> dg.ScheduleDefinition:
    """Runs the freshness check at its deadline; a missing report then fails it and alerts."""
    return dg.ScheduleDefinition(
        name=FRESHNESS_SCHEDULE_NAME,
        job=job,
        cron_schedule=_cron(freshness_utc),
        execution_timezone="UTC",
        description=f"Checks every day at {freshness_utc} UTC that yesterday's report is "
        "published.",
    )
