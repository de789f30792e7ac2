"""Report-date partitions: one per UTC day, including today (balances are end-of-day D)."""

from __future__ import annotations

from datetime import date

import dagster as dg


def daily_partitions(start_date: str) -> dg.DailyPartitionsDefinition:
    # end_offset=1 exposes today's partition: the demo and intraday runs build "today so far".
    return dg.DailyPartitionsDefinition(start_date=start_date, timezone="UTC", end_offset=1)


def partition_date(context: dg.AssetExecutionContext | dg.AssetCheckExecutionContext) -> date:
    return date.fromisoformat(context.partition_key)
