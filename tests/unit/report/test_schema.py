"""The pandera models of spec §1: their shape, and one bad row per rule through split_valid."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import pyarrow as pa
import pytest

from etl_project.report.columns import (
    AMOUNT_COLUMNS,
    BALANCES_SCHEMA,
    COLUMNS,
    REPORT_SCHEMA,
    SQL_NAMES,
)
from etl_project.report.schema import BalancesModel, ReportModel, check_names
from etl_project.report.validate import split_valid


def _uuid(n: int) -> str:
    return str(uuid.UUID(int=n))


def balance_row(n: int, **changes: Any) -> dict[str, Any]:
    """A valid balances row; `n` makes its UUIDs unique."""
    row: dict[str, Any] = {
        "userUUID": _uuid(1000 + n),
        "accountUUID": _uuid(2000 + n),
        "Account Group UUID": "29ffc2ce-9936-4f9b-9b56-c1e1d22906e1",
        "Account Group": "Default",
        "User": f"user{n}",
        "Email": f"user{n}@example.com",
        "mainType": "Client",
        "subMainType": "Holding account",
        "Ccy": "BTC",
        "Account in Ledger": True,
        "System Account": False,
        **{name: Decimal(0) for name in AMOUNT_COLUMNS},
        "Total": Decimal("5.77"),
        "source": "kraken_main",
        "venue": "kraken_futures",
        "venue_account_id": f"acct-{n}",
        "wallet": "holding",
    }
    row.update(changes)
    return row


def report_row(n: int, **changes: Any) -> dict[str, Any]:
    row = balance_row(n)
    row.update(
        report_date=date(2024, 5, 1),
        snapshot_at=datetime(2024, 5, 1, 23, 59, tzinfo=UTC),
        run_id="run-1",
    )
    row.update(changes)
    return row


def balances(*rows: dict[str, Any]) -> pa.Table:
    return pa.Table.from_pylist(list(rows), schema=BALANCES_SCHEMA)


# ------------------------------------------------------------------------------ model shape


def test_models_have_exactly_the_arrow_schemas_columns_in_order() -> None:
    assert list(BalancesModel.to_schema().columns) == BALANCES_SCHEMA.names
    assert list(ReportModel.to_schema().columns) == REPORT_SCHEMA.names
    assert len(BalancesModel.to_schema().columns) == 37
    assert BalancesModel.to_schema().strict is True
    assert BalancesModel.to_schema().ordered is True
    assert ReportModel.to_schema().strict is True


def test_field_names_are_snake_case_sql_names_aliased_to_report_names() -> None:
    attributes = [a for a in BalancesModel.__annotations__ if not a.startswith("_")]
    assert attributes[:33] == [SQL_NAMES[c.name] for c in COLUMNS]
    assert attributes[33:] == ["source", "venue", "venue_account_id", "wallet"]
    assert ReportModel.__annotations__.keys() >= {"report_date", "snapshot_at", "run_id"}


def test_every_field_has_a_description_from_the_contract() -> None:
    columns = ReportModel.to_schema().columns
    assert all(column.description for column in columns.values())
    for contract in COLUMNS:
        assert columns[contract.name].description == contract.description


def test_dtypes_and_nullability() -> None:
    columns = ReportModel.to_schema().columns
    for name in AMOUNT_COLUMNS:
        assert str(columns[name].dtype) == "Decimal(precision=38, scale=20)"
    assert str(columns["Account in Ledger"].dtype) == "Boolean"
    assert str(columns["System Account"].dtype) == "Boolean"
    assert str(columns["report_date"].dtype) == "Date"
    assert str(columns["snapshot_at"].dtype) == "Datetime(time_unit='us', time_zone='UTC')"
    assert [name for name, column in columns.items() if column.nullable] == ["Email"]


def test_custom_checks_have_their_quarantine_names_in_both_models() -> None:
    for model in (BalancesModel, ReportModel):
        names = check_names(model)
        assert names["userUUID"] == ["canonical_uuid"]
        assert names["Email"] == ["email_address"]
        assert names["Ccy"] == ["ccy_code", "ccy_normalised"]
        assert names["Account in Ledger"] == ["account_in_ledger_true"]
        assert names["Margin Interest"] == ["retired_column_zero"]
        assert names["wallet"] == ["non_blank_text"]
        assert "unique_account_ccy" in names[""]
    assert check_names(ReportModel)[""] == ["one_report_date", "unique_account_ccy"]
    assert check_names(ReportModel)["run_id"] == ["non_blank_text"]


# ----------------------------------------------------------------- one bad row per rule

RULES = [
    ("bad uuid", {"userUUID": "not-a-uuid"}, "canonical_uuid", "userUUID", '"not-a-uuid"'),
    (
        "upper-case uuid",
        {"accountUUID": "0D0BE8D3-F8F7-48C6-9C79-4B9493C821A1"},
        "canonical_uuid",
        "accountUUID",
        '"0D0BE8D3-F8F7-48C6-9C79-4B9493C821A1"',
    ),
    (
        "uuid without dashes",
        {"Account Group UUID": "29ffc2ce99364f9b9b56c1e1d22906e1"},
        "canonical_uuid",
        "Account Group UUID",
        '"29ffc2ce99364f9b9b56c1e1d22906e1"',
    ),
    ("null uuid", {"userUUID": None}, "not_nullable", "userUUID", "null"),
    ("empty User", {"User": ""}, "non_blank_text", "User", '""'),
    ("whitespace mainType", {"mainType": " \t "}, "non_blank_text", "mainType", '" \\t "'),
    ("empty Account Group", {"Account Group": ""}, "non_blank_text", "Account Group", '""'),
    ("empty subMainType", {"subMainType": "  "}, "non_blank_text", "subMainType", '"  "'),
    ("bad Email", {"Email": "alice.example.com"}, "email_address", "Email", '"alice.example.com"'),
    ("Email with space", {"Email": "a b@x.com"}, "email_address", "Email", '"a b@x.com"'),
    ("lower-case Ccy", {"Ccy": "btc"}, "ccy_code", "Ccy", '"btc"'),
    ("XBT not normalised", {"Ccy": "XBT"}, "ccy_normalised", "Ccy", '"XBT"'),
    ("XDG not normalised", {"Ccy": "XDG"}, "ccy_normalised", "Ccy", '"XDG"'),
    ("Ccy too long", {"Ccy": "A" * 16}, "ccy_code", "Ccy", f'"{"A" * 16}"'),
    ("Ccy too short", {"Ccy": "B"}, "ccy_code", "Ccy", '"B"'),
    (
        "Account in Ledger False",
        {"Account in Ledger": False},
        "account_in_ledger_true",
        "Account in Ledger",
        "false",
    ),
    ("System Account null", {"System Account": None}, "not_nullable", "System Account", "null"),
    ("retired Order", {"Order": Decimal("0.5")}, "retired_column_zero", "Order", "0.5"),
    (
        "retired Margin Interest",
        {"Margin Interest": Decimal("-3.46e-9")},
        "retired_column_zero",
        "Margin Interest",
        "-0.00000000346",
    ),
    ("null amount", {"Hold": None}, "not_nullable", "Hold", "null"),
    ("empty trace column", {"wallet": ""}, "non_blank_text", "wallet", '""'),
]


@pytest.mark.parametrize(
    ("changes", "check", "column", "shown"),
    [pytest.param(*rule[1:], id=rule[0]) for rule in RULES],
)
def test_rule_rejects_the_bad_row_and_keeps_the_good_ones(
    changes: dict[str, Any], check: str, column: str, shown: str
) -> None:
    table = balances(balance_row(1), balance_row(2, **changes), balance_row(3))

    valid, rejected = split_valid(table, BalancesModel)

    assert valid.equals(table.take([0, 2]))
    assert valid.schema.equals(BALANCES_SCHEMA)
    assert len(rejected) == 1
    assert rejected[0].check == check
    assert rejected[0].reason == f"{column}: {check} failed for {shown}"
    assert rejected[0].source == "kraken_main"
    assert rejected[0].record["accountUUID"] == balance_row(2, **changes)["accountUUID"]


def test_duplicate_account_and_ccy_rejects_every_row_of_the_key() -> None:
    first = balance_row(1, Total=Decimal("1"))
    twin = balance_row(2, accountUUID=first["accountUUID"], Total=Decimal("2"))
    other_ccy = balance_row(3, accountUUID=first["accountUUID"], Ccy="ETH")
    table = balances(first, twin, other_ccy, balance_row(4))

    valid, rejected = split_valid(table, BalancesModel)

    assert valid.equals(table.take([2, 3]))
    assert [r.check for r in rejected] == ["unique_account_ccy"] * 2
    assert [r.record["Total"] for r in rejected] == ["1", "2"]
    assert [r.reason for r in rejected] == [
        "duplicate (accountUUID, Ccy): listed 2 times by the venue"
    ] * 2


@pytest.mark.parametrize(
    "changes",
    [
        {"Email": None},
        {"Email": "first.last+tag@sub.example.co.uk"},
        {"Ccy": "1INCH"},
        {"Ccy": "USDT"},
        {"Ccy": "DOGE"},
        {"System Account": True},
        {"Total": Decimal("-0.0009056832839642471")},
        {"Total": Decimal("123456789012345678.12345678901234567891")},
        {"User": "Ünïcødé name"},
    ],
)
def test_valid_values_pass(changes: dict[str, Any]) -> None:
    table = balances(balance_row(1, **changes))
    valid, rejected = split_valid(table, BalancesModel)
    assert rejected == []
    assert valid.equals(table)


def test_report_model_rejects_blank_run_id_and_accepts_a_report() -> None:
    table = pa.Table.from_pylist(
        [report_row(1), report_row(2, run_id=" "), report_row(3)], schema=REPORT_SCHEMA
    )
    valid, rejected = split_valid(table, ReportModel)
    assert valid.equals(table.take([0, 2]))
    assert [(r.check, r.reason) for r in rejected] == [
        ("non_blank_text", 'run_id: non_blank_text failed for " "')
    ]
    assert rejected[0].record["report_date"] == "2024-05-01"
    assert rejected[0].record["snapshot_at"] == "2024-05-01T23:59:00+00:00"
