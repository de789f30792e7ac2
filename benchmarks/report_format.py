"""The settlement platform report's 33 column names (seed 000), shared by the bench scripts.

Duplicated from `etl_project.report.columns` on purpose: the generator and the baselines
describe the *venue's* file and must not change when the product does, and a baseline that
imported the product (Dagster, polars, …) would pay its import time and memory.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path

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


def run_cli(doc: str | None, run: Callable[[Path, Path], dict[str, float]]) -> None:
    """`script FILE OUTDIR`: run a baseline and print its step times on stderr."""
    parser = argparse.ArgumentParser(description=(doc or "").split("\n\n")[0])
    parser.add_argument("file", type=Path)
    parser.add_argument("outdir", type=Path)
    args = parser.parse_args()
    steps = run(args.file, args.outdir)
    print(" ".join(f"{name}={seconds:.2f}s" for name, seconds in steps.items()), file=sys.stderr)
