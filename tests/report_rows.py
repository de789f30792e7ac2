"""Test helper: report rows (REPORT_SCHEMA) with plain defaults, changed per test."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import pyarrow as pa

from etl_project.report.columns import AMOUNT_COLUMNS, REPORT_SCHEMA


def row(n: int, **changes: Any) -> dict[str, Any]:
    """Row `n` of a report: distinct user and account per n, all amounts 0, then `changes`."""
    values: dict[str, Any] = {
        "userUUID": str(uuid.UUID(int=n)),
        "accountUUID": str(uuid.UUID(int=100 + n)),
        "Account Group UUID": str(uuid.UUID(int=999)),
        "Account Group": "Default",
        "User": f"user{n}",
        "Email": None,
        "mainType": "Client",
        "subMainType": "Holding account",
        "Ccy": "BTC",
        "Account in Ledger": True,
        "System Account": False,
        **{name: Decimal(0) for name in AMOUNT_COLUMNS},
        "source": "kraken",
        "venue": "kraken_futures",
        "venue_account_id": f"acct-{n}",
        "wallet": "holding",
        "report_date": date(2024, 5, 1),
        "snapshot_at": datetime(2024, 5, 1, 23, 59, 1, 250000, tzinfo=UTC),
        "run_id": "run-1",
    }
    values.update(changes)
    return values


def report(*rows: dict[str, Any]) -> pa.Table:
    return pa.Table.from_pylist(list(rows), schema=REPORT_SCHEMA)
