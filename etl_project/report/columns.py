"""The report contract (spec §1): the 33 columns, their warehouse names and descriptions.

Every other module takes column names from here, so the order and spelling exist once.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import pyarrow as pa

Kind = Literal["uuid", "text", "email", "ccy", "bool", "amount"]

#: Exact decimal type of every amount, in Arrow, Parquet and the warehouse (NUMERIC(38,20)).
AMOUNT_PRECISION = 38
AMOUNT_SCALE = 20
AMOUNT_TYPE = pa.decimal128(AMOUNT_PRECISION, AMOUNT_SCALE)


@dataclass(frozen=True)
class Column:
    """One report column: its contract name, its SQL name and what it holds."""

    name: str
    sql: str
    kind: Kind
    description: str
    retired: bool = False


_C = Column
COLUMNS: tuple[Column, ...] = (
    _C("userUUID", "user_uuid", "uuid", "Identifier of the user (venue UUID or uuid5 of its id)"),
    _C("accountUUID", "account_uuid", "uuid", "Identifier of one wallet of one venue account"),
    _C("Account Group UUID", "account_group_uuid", "uuid", "Identifier of the account group"),
    _C("Account Group", "account_group", "text", "Label of the account group"),
    _C("User", "user_name", "text", "Name or username of the user"),
    _C("Email", "email", "email", "E-mail address of the user, null when the venue gives none"),
    _C("mainType", "main_type", "text", "Broad account category; Client unless configured"),
    _C("subMainType", "sub_main_type", "text", "Wallet type of the account at the venue"),
    _C("Ccy", "ccy", "ccy", "Upper-case currency code (XBT->BTC, XDG->DOGE)"),
    _C("Account in Ledger", "account_in_ledger", "bool", "Account is in the ledger; always TRUE"),
    _C("System Account", "system_account", "bool", "Account is a configured system account"),
    _C("Total", "total", "amount", "Total balance including all funding"),
    _C("Total Prefunding", "total_prefunding", "amount", "Balance of funded assets only"),
    _C("Available", "available", "amount", "Balance available for trading or withdrawal"),
    _C("Brokerage", "brokerage", "amount", "Fees/costs to close positions"),
    _C("Hold", "hold", "amount", "Amount held for pending transactions"),
    _C("Suspense", "suspense", "amount", "Amount held for investigation"),
    _C("Order", "order_balance", "amount", "Retired column, always 0", retired=True),
    _C("Trade Ahead", "trade_ahead", "amount", "Amount covering open positions"),
    _C(
        "Pending Withdrawal", "pending_withdrawal", "amount", "Withdrawals requested, not processed"
    ),
    _C("Exchange", "exchange", "amount", "Amount currently used for trading"),
    _C("Leverage", "leverage", "amount", "Retired column, always 0", retired=True),
    _C("Collateral", "collateral", "amount", "Amount used as collateral for margin"),
    _C("Unsettle Buy", "unsettle_buy", "amount", "Purchased, not yet settled (DVP)"),
    _C("Unsettle Sell", "unsettle_sell", "amount", "Sold, not yet settled (DVP)"),
    _C("Unprocessed Deposit", "unprocessed_deposit", "amount", "Deposited, not yet processed"),
    _C("Unprocessed Withdrawal", "unprocessed_withdrawal", "amount", "Withdrawal not processed"),
    _C("Margin", "margin", "amount", "Retired column, always 0", retired=True),
    _C("Margin Long", "margin_long", "amount", "Retired column, always 0", retired=True),
    _C("Margin Short", "margin_short", "amount", "Retired column, always 0", retired=True),
    _C("Margin Interest", "margin_interest", "amount", "Retired column, always 0", retired=True),
    _C("Unconfirmed", "unconfirmed", "amount", "Part of an unconfirmed transaction"),
    _C("custody", "custody", "amount", "Amount held in custody for the user"),
)

REPORT_COLUMNS: tuple[str, ...] = tuple(c.name for c in COLUMNS)
AMOUNT_COLUMNS: tuple[str, ...] = tuple(c.name for c in COLUMNS if c.kind == "amount")
RETIRED_COLUMNS: tuple[str, ...] = tuple(c.name for c in COLUMNS if c.retired)
TEXT_COLUMNS: tuple[str, ...] = tuple(
    c.name for c in COLUMNS if c.kind in ("uuid", "text", "email", "ccy")
)
BOOL_COLUMNS: tuple[str, ...] = tuple(c.name for c in COLUMNS if c.kind == "bool")
SQL_NAMES: dict[str, str] = {c.name: c.sql for c in COLUMNS}
SORT_KEY: tuple[str, ...] = ("userUUID", "accountUUID", "Ccy")

#: Traceability columns every connector fills (spec §3); kept in the warehouse, not the files.
TRACE_COLUMNS: tuple[str, ...] = ("source", "venue", "venue_account_id", "wallet")
#: Lineage columns on the Parquet file and the warehouse table (spec §1).
LINEAGE_COLUMNS: tuple[str, ...] = ("report_date", "source", "snapshot_at", "run_id")

assert len(COLUMNS) == 33 and len(AMOUNT_COLUMNS) == 22


def arrow_type(column: Column) -> pa.DataType:
    """Arrow type of a report column: exact decimals for amounts, booleans for flags."""
    if column.kind == "amount":
        return AMOUNT_TYPE
    if column.kind == "bool":
        return pa.bool_()
    return pa.string()


#: Arrow schema of canonical balances (the connectors' output): report columns + trace columns.
BALANCES_SCHEMA = pa.schema(
    [pa.field(c.name, arrow_type(c), nullable=(c.kind == "email")) for c in COLUMNS]
    + [pa.field(name, pa.string(), nullable=False) for name in TRACE_COLUMNS]
)

#: Arrow schema of the staged report: report columns + trace + lineage.
REPORT_SCHEMA = (
    BALANCES_SCHEMA.append(pa.field("report_date", pa.date32(), nullable=False))
    .append(pa.field("snapshot_at", pa.timestamp("us", tz="UTC"), nullable=False))
    .append(pa.field("run_id", pa.string(), nullable=False))
)
