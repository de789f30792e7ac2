"""The daily schedule: yesterday's report at a configurable UTC time."""

from datetime import timedelta
from typing import Any

import dagster as dg


def daily_schedule(job: Any, schedule_utc: str) -> dg.ScheduleDefinition:
    """`job` is the (unresolved) asset job of the definitions."""
    hour, minute = (int(p) for p in schedule_utc.split(":"))

    @dg.schedule(
        job=job,
        cron_schedule=f"{minute} {hour} * * *",
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
