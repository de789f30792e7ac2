"""The settlement platform report's 33 column names (seed 000), shared by the bench scripts.

Duplicated from `etl_project.report.columns` on purpose: the generator and the baselines
describe the *venue's* file and must not change when the product does, and a baseline that
imported the product (Dagster, polars, …) would pay its import time and memory.
"""

from __future__ import annotations

HEAD_COLUMNS: tuple[str, ...] = (
    "userUUID",
    "accountUUID",
    "Account Group UUID",
    "Account Group",
    "User",
    "Email",
    "mainType",
    "subMainType",
    "Ccy",
    "Account in Ledger",
    "System Account",
)
AMOUNT_COLUMNS: tuple[str, ...] = (
    "Total",
    "Total Prefunding",
    "Available",
    "Brokerage",
    "Hold",
    "Suspense",
    "Order",
    "Trade Ahead",
    "Pending Withdrawal",
    "Exchange",
    "Leverage",
    "Collateral",
    "Unsettle Buy",
    "Unsettle Sell",
    "Unprocessed Deposit",
    "Unprocessed Withdrawal",
    "Margin",
    "Margin Long",
    "Margin Short",
    "Margin Interest",
    "Unconfirmed",
    "custody",
)
COLUMNS: tuple[str, ...] = HEAD_COLUMNS + AMOUNT_COLUMNS
#: Seed 000: "No longer in use" columns, always 0 (the report contract checks it).
RETIRED: frozenset[str] = frozenset(
    {"Order", "Leverage", "Margin", "Margin Long", "Margin Short", "Margin Interest"}
)
UUID_COLUMNS: tuple[str, ...] = ("userUUID", "accountUUID", "Account Group UUID")
FLAG_COLUMNS: tuple[str, ...] = ("Account in Ledger", "System Account")

assert len(COLUMNS) == 33 and len(AMOUNT_COLUMNS) == 22
