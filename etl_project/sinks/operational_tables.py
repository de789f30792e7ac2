"""Warehouse tables beyond the report: completeness, run status, venue positions, checks.

The first three are per-date tables replaced with the report in one transaction, so BI always
sees one consistent run per date. Check results are replaced per (date, asset, check) as each
check runs, so they also record checks that stopped a publish.
"""

from __future__ import annotations

import sqlalchemy as sa

from etl_project.sinks.warehouse_tables import AMOUNT, TIMESTAMPTZ, dated_table, lineage_column

COMPLETENESS_TABLE = dated_table(
    "settlement_source_completeness",
    "Per report date, source and venue account: expected (listed by the venue) vs received vs "
    "failed, with the venue's reason. A failed account is never reported as a zero balance.",
    lineage_column("source"),
    lineage_column("venue"),
    sa.Column(
        "account_id",
        sa.Text(),
        nullable=False,
        comment="Venue account id; '*' for a source that failed as a whole",
    ),
    sa.Column(
        "account_name",
        sa.Text(),
        nullable=True,
        comment="The venue's display name of the account, where it gives one",
    ),
    sa.Column(
        "expected",
        sa.Boolean(),
        nullable=False,
        comment="The venue's listing named this account (or the source was configured)",
    ),
    sa.Column(
        "received",
        sa.Boolean(),
        nullable=False,
        comment="Balances for this account arrived and were mapped",
    ),
    sa.Column(
        "failed",
        sa.Boolean(),
        nullable=False,
        comment="The account (or whole source) failed, or vanished from the venue's listing "
        "since a recent published date; see reason",
    ),
    sa.Column("reason", sa.Text(), nullable=True, comment="The venue's reason for a failure"),
    lineage_column("run_id"),
    primary_key=("source", "account_id"),
)

REPORT_RUNS_TABLE = dated_table(
    "settlement_report_status",
    "One row per report date: completeness of the published report and its named gaps",
    sa.Column(
        "completeness",
        sa.Text(),
        nullable=False,
        comment="complete or partial once published; publishing while the files are being "
        "promoted; failed when publishing stopped half-way (see cause)",
    ),
    sa.Column(
        "gaps",
        sa.Text(),
        nullable=False,
        comment="JSON list of {source, account_id, reason} missing from the report",
    ),
    sa.Column("report_rows", sa.BigInteger(), nullable=False, comment="Rows in the report"),
    sa.Column(
        "rejected_rows",
        sa.BigInteger(),
        nullable=False,
        comment="Rows sent to quarantine for this date",
    ),
    lineage_column("run_id"),
    sa.Column("published_at", TIMESTAMPTZ, nullable=False, comment="When it was published (UTC)"),
    sa.Column(
        "cause",
        sa.Text(),
        nullable=True,
        comment="Why publishing failed (completeness = failed); NULL otherwise",
    ),
    primary_key=(),
)

POSITIONS_TABLE = dated_table(
    "venue_positions",
    "Derivative positions reported by venues (platform asset_type = position); not in the report",
    lineage_column("source"),
    lineage_column("venue"),
    sa.Column("account_id", sa.Text(), nullable=False, comment="Venue account id"),
    sa.Column("account_name", sa.Text(), nullable=False, comment="Venue account display name"),
    sa.Column("exchange_name", sa.Text(), nullable=False, comment="Exchange of the account"),
    sa.Column("wallet_type", sa.Text(), nullable=False, comment="Wallet holding the position"),
    sa.Column("symbol", sa.Text(), nullable=False, comment="Position symbol, e.g. BTC:PERP-USDT"),
    sa.Column(
        "settlement_ccy",
        sa.Text(),
        nullable=True,
        comment="Settlement currency (after '-' in the symbol)",
    ),
    sa.Column("amount", AMOUNT, nullable=False, comment="Position size (negative = short)"),
    sa.Column("initial_margin", AMOUNT, nullable=True, comment="Initial margin requirement"),
    sa.Column("maint_margin", AMOUNT, nullable=True, comment="Maintenance margin requirement"),
    sa.Column("unrealized_profit", AMOUNT, nullable=True, comment="Unrealised profit/loss"),
    sa.Column("notional", AMOUNT, nullable=True, comment="Notional value of the position"),
    sa.Column("leverage", AMOUNT, nullable=True, comment="Leverage of the position"),
    sa.Column("margin_mode", sa.Text(), nullable=True, comment="CROSS, ISOLATED, …"),
    lineage_column("run_id"),
)

CHECK_RESULTS_TABLE = dated_table(
    "settlement_check_results",
    "Latest outcome of every data-quality check of a report date (one row per asset and check)",
    sa.Column(
        "asset",
        sa.Text(),
        nullable=False,
        comment="Dagster asset the check is on, e.g. settlement_balance_report",
    ),
    sa.Column("check_name", sa.Text(), nullable=False, comment="Name of the data-quality check"),
    sa.Column("passed", sa.Boolean(), nullable=False, comment="The check passed"),
    sa.Column(
        "summary", sa.Text(), nullable=False, comment="One-line human-readable result of the check"
    ),
    lineage_column("run_id"),
    sa.Column("checked_at", TIMESTAMPTZ, nullable=False, comment="When the check ran (UTC)"),
    primary_key=("asset", "check_name"),
)
