"""split_valid: frame-level failures raise SchemaViolation; failing rows go to quarantine."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import polars as pl
import pyarrow as pa
import pytest

from etl_project.errors import EtlError
from etl_project.model import Rejected
from etl_project.report.columns import AMOUNT_COLUMNS, BALANCES_SCHEMA, REPORT_SCHEMA
from etl_project.report.schema import BalancesModel, ReportModel
from etl_project.report.validate import SchemaViolation, quarantine_shadowed, split_valid


def row(n: int, **changes: Any) -> dict[str, Any]:
    values: dict[str, Any] = {
        "userUUID": str(uuid.UUID(int=1000 + n)),
        "accountUUID": str(uuid.UUID(int=2000 + n)),
        "Account Group UUID": "29ffc2ce-9936-4f9b-9b56-c1e1d22906e1",
        "Account Group": "Default",
        "User": f"user{n}",
        "Email": None,
        "mainType": "Client",
        "subMainType": "Flex account",
        "Ccy": "USD",
        "Account in Ledger": True,
        "System Account": False,
        **{name: Decimal(0) for name in AMOUNT_COLUMNS},
        "source": f"source{n % 2}",
        "venue": "saxo",
        "venue_account_id": f"acct-{n}",
        "wallet": "Normal",
    }
    values.update(changes)
    return values


def table_of(*rows: dict[str, Any], schema: pa.Schema = BALANCES_SCHEMA) -> pa.Table:
    return pa.Table.from_pylist(list(rows), schema=schema)


def with_column(table: pa.Table, name: str, values: pa.Array) -> pa.Table:
    index = table.schema.get_field_index(name)
    return table.set_column(index, pa.field(name, values.type), values)


# ------------------------------------------------------------------------- frame level


def test_float64_amount_column_is_a_schema_violation() -> None:
    table = table_of(row(1), row(2))
    floats = with_column(table, "Total", pa.array([1.5, 2.5], pa.float64()))

    with pytest.raises(SchemaViolation) as caught:
        split_valid(floats, BalancesModel)

    assert str(caught.value) == (
        "balances: Total: wrong dtype Float64, expected Decimal(precision=38, scale=20)"
    )
    assert caught.value.problems == [
        "Total: wrong dtype Float64, expected Decimal(precision=38, scale=20)"
    ]
    assert isinstance(caught.value, EtlError)
    assert "\n" not in str(caught.value)


def test_decimal_with_another_scale_is_a_schema_violation() -> None:
    table = table_of(row(1))
    narrow = with_column(table, "Hold", pa.array([Decimal("1.5")], pa.decimal128(38, 10)))
    with pytest.raises(
        SchemaViolation, match=r"Hold: wrong dtype Decimal\(precision=38, scale=10\)"
    ):
        split_valid(narrow, BalancesModel)


def test_missing_column_is_a_schema_violation() -> None:
    table = table_of(row(1)).drop_columns(["Hold"])
    with pytest.raises(SchemaViolation) as caught:
        split_valid(table, BalancesModel)
    assert caught.value.problems == ["Hold: column missing"]


def test_extra_column_is_a_schema_violation() -> None:
    table = table_of(row(1)).append_column("Bonus", pa.array(["x"]))
    with pytest.raises(SchemaViolation) as caught:
        split_valid(table, BalancesModel)
    assert caught.value.problems == ["Bonus: column not in the schema"]


def test_columns_out_of_order_is_a_schema_violation() -> None:
    table = table_of(row(1))
    names = table.column_names
    swapped = table.select([names[1], names[0], *names[2:]])
    with pytest.raises(SchemaViolation, match="column out of order"):
        split_valid(swapped, BalancesModel)


def test_naive_snapshot_at_is_a_schema_violation() -> None:
    report = table_of(
        row(
            1,
            report_date=date(2024, 5, 1),
            snapshot_at=datetime(2024, 5, 1, tzinfo=UTC),
            run_id="r",
        ),
        schema=REPORT_SCHEMA,
    )
    naive = with_column(
        report, "snapshot_at", report.column("snapshot_at").cast(pa.timestamp("us"))
    )
    with pytest.raises(SchemaViolation, match="snapshot_at: wrong dtype Datetime"):
        split_valid(naive, ReportModel)


def test_two_report_dates_in_one_frame_is_a_schema_violation() -> None:
    lineage = {"snapshot_at": datetime(2024, 5, 1, tzinfo=UTC), "run_id": "r"}
    report = table_of(
        row(1, report_date=date(2024, 5, 1), **lineage),
        row(2, report_date=date(2024, 5, 2), **lineage),
        schema=REPORT_SCHEMA,
    )
    with pytest.raises(SchemaViolation) as caught:
        split_valid(report, ReportModel)
    assert str(caught.value) == "report: one_report_date failed"
    assert caught.value.problems == ["one_report_date failed"]


# --------------------------------------------------------------------------- row level


def test_clean_table_comes_back_as_is() -> None:
    table = table_of(row(1), row(2))
    valid, rejected = split_valid(table, BalancesModel)
    assert valid is table
    assert rejected == []


def test_empty_table_is_valid() -> None:
    valid, rejected = split_valid(BALANCES_SCHEMA.empty_table(), BalancesModel)
    assert valid.num_rows == 0 and rejected == []


def test_row_failing_several_checks_is_rejected_once_naming_each() -> None:
    bad = row(2, userUUID="X", User=" ", Ccy="xbt", Margin=Decimal("-0.0009056832839642471"))
    table = table_of(row(1), bad, row(3), row(4, Email="nope"))

    valid, rejected = split_valid(table, BalancesModel)

    assert valid.equals(table.take([0, 2]))
    assert [r.check for r in rejected] == [
        "canonical_uuid, non_blank_text, ccy_code, retired_column_zero",
        "email_address",
    ]
    assert rejected[0].reason == (
        'userUUID: canonical_uuid failed for "X"; User: non_blank_text failed for " "; '
        'Ccy: ccy_code failed for "xbt"; '
        "Margin: retired_column_zero failed for -0.0009056832839642471"
    )
    assert [r.source for r in rejected] == ["source0", "source0"]


def test_rejected_record_is_json_friendly_with_exact_amount_text() -> None:
    bad = row(
        7,
        Ccy="XBT",
        Total=Decimal("3.46e-9"),
        Available=Decimal("16187.33210488726"),
        Hold=Decimal(100),
    )
    _, rejected = split_valid(table_of(bad), BalancesModel)

    record = rejected[0].record
    assert list(record) == BALANCES_SCHEMA.names
    assert record["Total"] == "0.00000000346"
    assert record["Available"] == "16187.33210488726"
    assert record["Hold"] == "100"
    assert record["Brokerage"] == "0"
    assert record["Email"] is None
    assert record["Account in Ledger"] is True
    assert record["source"] == "source1"
    assert json.loads(json.dumps(record)) == record


def test_valid_rows_keep_schema_and_order_and_revalidate_clean() -> None:
    rows = [row(n, Total=Decimal(n)) for n in range(10)]
    rows[3]["Ccy"] = "x"
    rows[8]["Suspense"] = None
    table = pa.concat_tables([table_of(*rows[:5]), table_of(*rows[5:])])  # two chunks

    valid, rejected = split_valid(table, BalancesModel)

    assert valid.schema.equals(BALANCES_SCHEMA)
    assert valid.column("Total").to_pylist() == [Decimal(n) for n in (0, 1, 2, 4, 5, 6, 7, 9)]
    assert [r.record["Total"] for r in rejected] == ["3", "8"]
    again, none = split_valid(valid, BalancesModel)
    assert none == [] and again.equals(valid)


def test_large_string_columns_from_polars_are_accepted() -> None:
    table = table_of(row(1), row(2, User=""))
    from_polars = pl.from_arrow(table).to_arrow()  # type: ignore[union-attr]
    valid, rejected = split_valid(from_polars, BalancesModel)
    assert valid.num_rows == 1 and valid.schema.equals(from_polars.schema)
    assert rejected[0].check == "non_blank_text"


# ------------------------------------------------------------------------- duplicates


def test_duplicate_key_rejects_every_row_in_the_balances_stage_with_one_reason() -> None:
    first = row(1, source="kraken_main", Total=Decimal("1"))
    second = row(2, accountUUID=first["accountUUID"], source="kraken_main", Total=Decimal("2"))
    third = row(3, accountUUID=first["accountUUID"], source="kraken_main", Total=Decimal("3"))
    table = table_of(first, row(4), second, third, row(5))

    valid, rejected = split_valid(table, BalancesModel)

    assert valid.equals(table.take([1, 4]))
    assert [(r.source, r.check, r.reason, r.record["Total"]) for r in rejected] == [
        ("kraken_main", "unique_account_ccy",
         "duplicate (accountUUID, Ccy): listed 3 times by the venue", total)
        for total in ("1", "2", "3")
    ]  # fmt: skip


def test_duplicate_key_across_sources_names_the_sources() -> None:
    first = row(1, source="saxo_b", Total=Decimal("1"))
    twin = row(2, accountUUID=first["accountUUID"], source="saxo_a", Total=Decimal("2"))
    table = table_of(
        first, twin, row(3, source=None, accountUUID=first["accountUUID"], Ccy="EUR"), row(4)
    )

    valid, rejected = split_valid(table, BalancesModel)

    assert valid.equals(table.take([3]))
    assert [(r.source, r.reason) for r in rejected] == [
        ("saxo_b", "duplicate (accountUUID, Ccy): listed 2 times, by sources saxo_a, saxo_b"),
        ("saxo_a", "duplicate (accountUUID, Ccy): listed 2 times, by sources saxo_a, saxo_b"),
        ("unknown", "source: not_nullable failed for null"),
    ]


def test_a_duplicate_that_also_fails_another_check_names_both() -> None:
    first = row(1, Ccy="XBT")
    twin = row(2, accountUUID=first["accountUUID"], source=first["source"], Ccy="XBT")

    valid, rejected = split_valid(table_of(first, twin), BalancesModel)

    assert valid.num_rows == 0
    assert [(r.check, r.reason) for r in rejected] == [
        ("ccy_normalised, unique_account_ccy",
         'Ccy: ccy_normalised failed for "XBT"; '
         "duplicate (accountUUID, Ccy): listed 2 times by the venue"),
    ] * 2  # fmt: skip


def test_rows_sharing_a_key_with_a_rejected_row_are_quarantined_too() -> None:
    first, second, third = row(1, Total=Decimal("1")), row(2), row(3, Ccy="EUR")
    table = table_of(first, second, third)
    bad = Rejected(
        "source1",
        "decimal",
        "amount 'abc' is not a decimal",
        {"accountUUID": first["accountUUID"], "Ccy": "USD", "amount": "abc"},
    )
    other_ccy = Rejected("source1", "decimal", "x", {"accountUUID": third["accountUUID"]})

    kept, moved = quarantine_shadowed(table, [bad, other_ccy])

    assert kept.equals(table.take([1, 2]))
    assert [(r.source, r.check, r.reason, r.record["Total"]) for r in moved] == [
        ("source1", "unique_account_ccy",
         "duplicate (accountUUID, Ccy): listed 2 times by the venue", "1"),
    ]  # fmt: skip
    assert quarantine_shadowed(table, []) == (table, [])
