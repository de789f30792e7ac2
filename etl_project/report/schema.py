"""Pandera (polars) models of the report stages: the rules of spec §1, one model per stage.

- `BalancesModel`: canonical balances as every connector produces them (`BALANCES_SCHEMA`):
  the 33 report columns followed by the trace columns `source, venue, venue_account_id, wallet`.
- `ReportModel`: the staged report (`REPORT_SCHEMA`): the balances plus the lineage columns
  `report_date, snapshot_at, run_id`, one report date per frame.

Field names are the warehouse (snake_case) names; each field's `alias` is the report column
name, which is what the frames carry. Every custom check has a short, stable `name`: it is
what a rejected row's quarantine entry names as the failed check. Row-level checks return one
boolean per row so that `report.validate.split_valid` can reject exactly the failing rows;
frame-level rules (column set and order, dtypes, one report date) fail the whole frame.

Exactness of the amounts is the dtype's job: `Decimal(38, 20)` cannot hold a float, a NaN, an
infinity or more than 20 fractional digits, so no value check is needed for those.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any, TypeVar

import pandera.polars as pa
import polars as pl

from etl_project.identity import CCY_ALIASES
from etl_project.report.columns import (
    AMOUNT_PRECISION,
    AMOUNT_SCALE,
    BALANCES_SCHEMA,
    COLUMNS,
    REPORT_SCHEMA,
    RETIRED_COLUMNS,
)

#: Canonical lower-case UUID text (spec §1, §2).
UUID_PATTERN = r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$"
#: An e-mail address: one `@`, a dotted domain, no whitespace.
EMAIL_PATTERN = r"^[^@\s]+@[^@\s]+\.[^@\s.]+$"
#: A currency code after normalisation (spec §1).
CCY_PATTERN = r"^[A-Z0-9]{2,15}$"

#: Check names, as they appear in quarantine entries.
CHECK_CANONICAL_UUID = "canonical_uuid"
CHECK_NON_BLANK = "non_blank_text"
CHECK_EMAIL = "email_address"
CHECK_CCY_CODE = "ccy_code"
CHECK_CCY_NORMALISED = "ccy_normalised"
CHECK_IN_LEDGER = "account_in_ledger_true"
CHECK_RETIRED_ZERO = "retired_column_zero"
CHECK_UNIQUE_KEY = "unique_account_ccy"
CHECK_ONE_REPORT_DATE = "one_report_date"
#: pandera's own name for a null in a non-nullable column.
CHECK_NOT_NULL = "not_nullable"

#: The natural key of a report row within one report date.
KEY_COLUMNS: tuple[str, str] = ("accountUUID", "Ccy")

UUID_COLUMNS = ("userUUID", "accountUUID", "Account Group UUID")
LABEL_COLUMNS = ("Account Group", "User", "mainType", "subMainType")
TRACE_TEXT_COLUMNS = ("source", "venue", "venue_account_id", "wallet")

#: Polars dtype annotation of every amount: exact NUMERIC(38,20).
Amount = Annotated[pl.Decimal, AMOUNT_PRECISION, AMOUNT_SCALE]
#: Polars dtype annotation of `snapshot_at`.
UtcMicros = Annotated[pl.Datetime, "us", "UTC"]

_F = TypeVar("_F", bound=Callable[..., Any])

_DESCRIPTIONS = {c.name: c.description for c in COLUMNS}


def _f(name: str, *, nullable: bool = False) -> Any:
    """A field aliased to the report column `name`, with its contract description."""
    return pa.Field(alias=name, description=_DESCRIPTIONS[name], nullable=nullable)


def _named(name: str) -> Callable[[_F], _F]:
    """Give a check function its quarantine name.

    pandera 0.35 takes a check's name from `@check(name=...)` only for the first model built
    from the check (it pops the keyword), and from the function's `__name__` after that, so a
    subclass (`ReportModel`) would see the method names. Naming the function itself is stable.
    """

    def rename(fn: _F) -> _F:
        fn.__name__ = name
        return fn

    return rename


def _non_blank(data: pa.PolarsData) -> pl.LazyFrame:
    return data.lazyframe.select(pl.col(data.key).str.strip_chars().str.len_bytes() > 0)


class BalancesModel(pa.DataFrameModel):
    """Canonical balances of one or more sources: exactly `BALANCES_SCHEMA`, in its order."""

    user_uuid: pl.String = _f("userUUID")
    account_uuid: pl.String = _f("accountUUID")
    account_group_uuid: pl.String = _f("Account Group UUID")
    account_group: pl.String = _f("Account Group")
    user_name: pl.String = _f("User")
    email: pl.String = _f("Email", nullable=True)
    main_type: pl.String = _f("mainType")
    sub_main_type: pl.String = _f("subMainType")
    ccy: pl.String = _f("Ccy")
    account_in_ledger: pl.Boolean = _f("Account in Ledger")
    system_account: pl.Boolean = _f("System Account")
    total: Amount = _f("Total")
    total_prefunding: Amount = _f("Total Prefunding")
    available: Amount = _f("Available")
    brokerage: Amount = _f("Brokerage")
    hold: Amount = _f("Hold")
    suspense: Amount = _f("Suspense")
    order_balance: Amount = _f("Order")
    trade_ahead: Amount = _f("Trade Ahead")
    pending_withdrawal: Amount = _f("Pending Withdrawal")
    exchange: Amount = _f("Exchange")
    leverage: Amount = _f("Leverage")
    collateral: Amount = _f("Collateral")
    unsettle_buy: Amount = _f("Unsettle Buy")
    unsettle_sell: Amount = _f("Unsettle Sell")
    unprocessed_deposit: Amount = _f("Unprocessed Deposit")
    unprocessed_withdrawal: Amount = _f("Unprocessed Withdrawal")
    margin: Amount = _f("Margin")
    margin_long: Amount = _f("Margin Long")
    margin_short: Amount = _f("Margin Short")
    margin_interest: Amount = _f("Margin Interest")
    unconfirmed: Amount = _f("Unconfirmed")
    custody: Amount = _f("custody")
    source: pl.String = pa.Field(description="Configured source (connector instance) of the row")
    venue: pl.String = pa.Field(description="Venue kind of the source, e.g. kraken_futures")
    venue_account_id: pl.String = pa.Field(description="The venue's own id of the account")
    wallet: pl.String = pa.Field(description="The venue's own name of the wallet")

    class Config:
        name = "balances"
        strict = True
        ordered = True

    @pa.check(*UUID_COLUMNS)
    @classmethod
    @_named(CHECK_CANONICAL_UUID)
    def _canonical_uuid(cls, data: pa.PolarsData) -> pl.LazyFrame:
        """Canonical lower-case UUID text."""
        return data.lazyframe.select(pl.col(data.key).str.contains(UUID_PATTERN))

    @pa.check(*LABEL_COLUMNS, *TRACE_TEXT_COLUMNS)
    @classmethod
    @_named(CHECK_NON_BLANK)
    def _non_blank_text(cls, data: pa.PolarsData) -> pl.LazyFrame:
        """Non-empty text that is not whitespace only."""
        return _non_blank(data)

    @pa.check("Email")
    @classmethod
    @_named(CHECK_EMAIL)
    def _email_address(cls, data: pa.PolarsData) -> pl.LazyFrame:
        """An e-mail address (null passes: the venue gave none)."""
        return data.lazyframe.select(pl.col(data.key).str.contains(EMAIL_PATTERN))

    @pa.check("Ccy")
    @classmethod
    @_named(CHECK_CCY_CODE)
    def _ccy_code(cls, data: pa.PolarsData) -> pl.LazyFrame:
        """Upper-case currency code of 2 to 15 letters or digits."""
        return data.lazyframe.select(pl.col(data.key).str.contains(CCY_PATTERN))

    @pa.check("Ccy")
    @classmethod
    @_named(CHECK_CCY_NORMALISED)
    def _ccy_normalised(cls, data: pa.PolarsData) -> pl.LazyFrame:
        """Not a legacy venue alias that normalisation maps (XBT -> BTC, XDG -> DOGE)."""
        return data.lazyframe.select(~pl.col(data.key).is_in(sorted(CCY_ALIASES)))

    @pa.check("Account in Ledger")
    @classmethod
    @_named(CHECK_IN_LEDGER)
    def _account_in_ledger(cls, data: pa.PolarsData) -> pl.LazyFrame:
        """Every produced row is in the ledger."""
        return data.lazyframe.select(pl.col(data.key))

    @pa.check(*RETIRED_COLUMNS)
    @classmethod
    @_named(CHECK_RETIRED_ZERO)
    def _retired_zero(cls, data: pa.PolarsData) -> pl.LazyFrame:
        """Retired columns are always 0."""
        return data.lazyframe.select(pl.col(data.key) == 0)

    @pa.dataframe_check
    @classmethod
    @_named(CHECK_UNIQUE_KEY)
    def _unique_account_ccy(cls, data: pa.PolarsData) -> pl.LazyFrame:
        """(accountUUID, Ccy) is unique: every row of a repeated key fails, not just repeats."""
        return data.lazyframe.select(pl.len().over(KEY_COLUMNS) == 1)


class ReportModel(BalancesModel):
    """The staged report of one report date: exactly `REPORT_SCHEMA`, in its order."""

    report_date: pl.Date = pa.Field(description="Report date D (UTC calendar day)")
    snapshot_at: UtcMicros = pa.Field(
        description="When the source's venue snapshot behind the row was taken (UTC)"
    )
    run_id: pl.String = pa.Field(description="Identifier of the run that built the report")

    class Config:
        name = "report"
        strict = True
        ordered = True

    @pa.check("run_id")
    @classmethod
    @_named(CHECK_NON_BLANK)
    def _run_id_non_blank(cls, data: pa.PolarsData) -> pl.LazyFrame:
        """Non-empty run id."""
        return _non_blank(data)

    @pa.dataframe_check
    @classmethod
    @_named(CHECK_ONE_REPORT_DATE)
    def _one_report_date(cls, data: pa.PolarsData) -> bool:
        """A report frame holds a single report date (frame-level rule)."""
        distinct: int = data.lazyframe.select(pl.col("report_date").n_unique()).collect().item()
        return distinct <= 1


def model_columns(model: type[pa.DataFrameModel]) -> list[str]:
    """The column names a model expects, in order."""
    return list(model.to_schema().columns)


assert model_columns(BalancesModel) == BALANCES_SCHEMA.names, "BalancesModel != BALANCES_SCHEMA"
assert model_columns(ReportModel) == REPORT_SCHEMA.names, "ReportModel != REPORT_SCHEMA"


def check_names(model: type[pa.DataFrameModel]) -> dict[str, list[str]]:
    """Names of the custom checks per column ("" for frame checks), as quarantine shows them."""
    schema = model.to_schema()
    names = {col: [str(c.name) for c in column.checks] for col, column in schema.columns.items()}
    names[""] = [str(c.name) for c in schema.checks]
    return names


assert check_names(ReportModel)["Order"] == [CHECK_RETIRED_ZERO], "check names not stable"
assert check_names(ReportModel)[""] == [CHECK_ONE_REPORT_DATE, CHECK_UNIQUE_KEY]
