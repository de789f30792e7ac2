"""Shared warehouse test data: a report with tricky decimals and CSV-hostile text, and the
exact read-back assertion (used by the DuckDB and the PostgreSQL warehouse tests)."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime
from decimal import Decimal

import pyarrow as pa
import pytest
import sqlalchemy as sa

from etl_project.report.columns import COLUMNS, REPORT_SCHEMA, SQL_NAMES
from etl_project.sinks.warehouse import Warehouse
from etl_project.sinks.warehouse_tables import REPORT_TABLE, arrow_schema

D = date(2024, 3, 31)
D2 = date(2024, 3, 30)
TRICKY = (
    Decimal("-0.0009056832839642471"),
    Decimal("0.00000000346"),
    Decimal("100634324.36"),
    Decimal("0"),
    Decimal("-999999999999999999.99999999999999999999"),
)
NS = uuid.UUID("83cdf801-2fb2-5c54-a351-239c47006e82")


def sample_report(report_date: date, n: int = 4, run: str = "run-a") -> pa.Table:
    """n report rows (REPORT_SCHEMA): tricky decimals, null vs empty e-mail, CSV-hostile text."""
    emails = [None, "a@b.example", "", "d@e.example"]
    rows = []
    for i in range(n):
        row: dict[str, object] = {
            c.name: TRICKY[(i + j) % len(TRICKY)]
            for j, c in enumerate(COLUMNS)
            if c.kind == "amount"
        }
        row |= {
            "userUUID": str(uuid.uuid5(NS, f"{run}:user:{i % 2}")),
            "accountUUID": str(uuid.uuid5(NS, f"{run}:account:{i}")),
            "Account Group UUID": str(uuid.uuid5(NS, "group")),
            "Account Group": 'Desk, "Alpha"',
            "User": f'O\'Brien, "Bob"\nline {i} \\. ü',
            "Email": emails[i % len(emails)],
            "mainType": "Client",
            "subMainType": "Holding account",
            "Ccy": ("BTC", "USD", "DOGE", "EUR")[i % 4],
            "Account in Ledger": True,
            "System Account": i == 3,
            "source": "kraken_main",
            "venue": "kraken_futures",
            "venue_account_id": f"acc-{i}",
            "wallet": "holding",
            "report_date": report_date,
            "snapshot_at": datetime(2024, 3, 31, 23, 59, 59, 123456, tzinfo=UTC),
            "run_id": run,
        }
        rows.append(row)
    return pa.Table.from_pylist(rows, schema=REPORT_SCHEMA)


def expected(report: pa.Table) -> pa.Table:
    """What read_report must give back for `report`: SQL names, table order, sorted."""
    renamed = report.rename_columns([SQL_NAMES.get(n, n) for n in report.column_names])
    schema = arrow_schema(REPORT_TABLE)
    return (
        renamed.select(schema.names)
        .cast(schema)
        .sort_by([("user_uuid", "ascending"), ("account_uuid", "ascending"), ("ccy", "ascending")])
    )


def assert_report(wh: Warehouse, report_date: date, report: pa.Table) -> None:
    got = wh.read_report(report_date)
    assert got.to_pylist() == expected(report).to_pylist()
    assert got.equals(expected(report))
    # The decimals are the very values sent, not merely close (Decimal equality is exact).
    sent = {v for c in COLUMNS if c.kind == "amount" for v in report.column(c.name).to_pylist()}
    back = {v for c in COLUMNS if c.kind == "amount" for v in got.column(c.sql).to_pylist()}
    assert back == sent
    if report.num_rows:
        assert sent == set(TRICKY)


def assert_failed_load_rolls_back(wh: Warehouse, breakage: str) -> None:
    """A load that breaks a constraint half-way leaves the date's previous rows exactly as they
    were, and the warehouse usable afterwards."""
    before = sample_report(D, run="run-a")
    wh.replace_report(before, D)
    bad = sample_report(D, n=3, run="run-b")
    if breakage == "duplicate key":
        bad = pa.concat_tables([bad, bad.slice(2, 1)])
    elif breakage == "null in not-null column":
        bad = bad.set_column(
            bad.schema.get_field_index("Account Group"),
            pa.field("Account Group", pa.string()),
            pa.array(["g", "g", None]),
        )
    else:
        raise ValueError(f"unknown breakage {breakage!r}")
    with pytest.raises(sa.exc.IntegrityError):
        wh.replace_report(bad, D)
    assert_report(wh, D, before)
    assert wh.replace_report(sample_report(D, run="run-c"), D) == 4  # usable afterwards
