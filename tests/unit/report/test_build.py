"""build_report: zero rows, sort order, lineage, exact decimals, quarantine; and the summary."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import polars as pl
import pyarrow as pa
import pytest

from etl_project.report.build import build_report
from etl_project.report.columns import AMOUNT_COLUMNS, BALANCES_SCHEMA, REPORT_SCHEMA
from etl_project.report.summary import markdown_table, totals_by
from etl_project.report.validate import SchemaViolation

D = date(2024, 5, 1)
KRAKEN_AT = datetime(2024, 5, 1, 23, 59, 30, 123456, tzinfo=UTC)
SAXO_AT = datetime(2024, 5, 2, 1, 0, tzinfo=timezone(timedelta(hours=2)))  # 23:00 UTC
SNAPSHOTS = {"kraken": KRAKEN_AT, "saxo": SAXO_AT}


def u(n: int) -> str:
    return str(uuid.UUID(int=n))


def row(source: str, user: int, account: int, ccy: str, **amounts: Any) -> dict[str, Any]:
    values: dict[str, Any] = {
        "userUUID": u(user),
        "accountUUID": u(account),
        "Account Group UUID": u(99),
        "Account Group": "Default",
        "User": f"user{user}",
        "Email": None,
        "mainType": "Client",
        "subMainType": "Holding account",
        "Ccy": ccy,
        "Account in Ledger": True,
        "System Account": False,
        **{name: Decimal(0) for name in AMOUNT_COLUMNS},
        "source": source,
        "venue": source,
        "venue_account_id": f"{source}-{account}",
        "wallet": "holding",
    }
    values.update({name.replace("_", " "): Decimal(v) for name, v in amounts.items()})
    return values


def table(*rows: dict[str, Any]) -> pa.Table:
    return pa.Table.from_pylist(list(rows), schema=BALANCES_SCHEMA)


def build(*tables: pa.Table, **kwargs: Any) -> tuple[pa.Table, list[Any]]:
    return build_report(
        list(tables), report_date=D, run_id="run-42", snapshot_at=SNAPSHOTS, **kwargs
    )


def keys(report: pa.Table) -> list[tuple[str, str, str]]:
    return list(
        zip(*(report.column(c).to_pylist() for c in ("source", "accountUUID", "Ccy")), strict=True)
    )


def test_all_zero_rows_are_dropped_by_default() -> None:
    kraken = table(row("kraken", 1, 10, "BTC", Total="1"), row("kraken", 1, 11, "BTC"))
    saxo = table(row("saxo", 2, 20, "USD"), row("saxo", 2, 21, "USD", Hold="-2"))

    report, rejected = build(kraken, saxo)

    assert keys(report) == [("kraken", u(10), "BTC"), ("saxo", u(21), "USD")]
    assert rejected == []


def test_keep_zero_sources_keeps_that_sources_zero_rows_only() -> None:
    kraken = table(row("kraken", 1, 10, "BTC", Total="1"), row("kraken", 1, 11, "BTC"))
    saxo = table(row("saxo", 2, 20, "USD"))

    report, _ = build(kraken, saxo, keep_zero_sources={"kraken"})

    assert keys(report) == [("kraken", u(10), "BTC"), ("kraken", u(11), "BTC")]


def test_rows_are_sorted_by_user_account_ccy_across_sources() -> None:
    kraken = table(
        row("kraken", 3, 30, "ETH", Total="1"),
        row("kraken", 1, 12, "USDT", Total="1"),
        row("kraken", 1, 12, "BTC", Total="1"),
    )
    saxo = table(
        row("saxo", 2, 20, "USD", Total="1"),
        row("saxo", 1, 11, "EUR", Total="1"),
        row("saxo", 1, 12, "ETH", Total="1"),
    )

    report, _ = build(kraken, saxo)

    assert keys(report) == [
        ("saxo", u(11), "EUR"),
        ("kraken", u(12), "BTC"),
        ("saxo", u(12), "ETH"),
        ("kraken", u(12), "USDT"),
        ("saxo", u(20), "USD"),
        ("kraken", u(30), "ETH"),
    ]


def test_lineage_and_schema() -> None:
    kraken = table(row("kraken", 1, 10, "BTC", Total="1"))
    saxo = table(row("saxo", 2, 20, "USD", Total="2"))

    report, _ = build(kraken, saxo)

    assert report.schema.equals(REPORT_SCHEMA)
    assert report.column("report_date").to_pylist() == [D, D]
    assert report.column("run_id").to_pylist() == ["run-42", "run-42"]
    assert report.column("snapshot_at").to_pylist() == [
        KRAKEN_AT,
        datetime(2024, 5, 1, 23, 0, tzinfo=UTC),
    ]


def test_exact_decimals_survive() -> None:
    values = ["-0.0009056832839642471", "3.46e-9", "16187.33210488726"]
    rows = [row("kraken", 1, 10 + n, "BTC", Total=v) for n, v in enumerate(values)]
    rows.append(
        row(
            "kraken",
            1,
            20,
            "ETH",
            Available="0.00000000000000000001",
            Total="999999999999999999.99999999999999999999",
        )
    )

    report, _ = build(table(*rows))

    assert report.column("Total").to_pylist() == [
        Decimal("-0.0009056832839642471"),
        Decimal("0.00000000346"),
        Decimal("16187.33210488726"),
        Decimal("999999999999999999.99999999999999999999"),
    ]
    assert report.column("Available").to_pylist()[3] == Decimal("1E-20")


def test_invalid_rows_are_quarantined_with_lineage_in_the_record() -> None:
    good = row("kraken", 1, 10, "BTC", Total="1")
    bad = row("saxo", 2, 20, "XBT", Total="2")
    twin_a = row("saxo", 3, 30, "USD", Total="3")
    twin_b = row("kraken", 4, 30, "USD", Total="4")

    report, rejected = build(table(good, twin_b), table(bad, twin_a))

    assert keys(report) == [("kraken", u(10), "BTC")]
    by_check = {(r.source, r.check): r for r in rejected}
    assert set(by_check) == {
        ("saxo", "ccy_normalised"),
        ("saxo", "unique_account_ccy"),
        ("kraken", "unique_account_ccy"),
    }
    record = by_check[("saxo", "ccy_normalised")].record
    assert record["report_date"] == "2024-05-01"
    assert record["snapshot_at"] == "2024-05-01T23:00:00+00:00"
    assert record["run_id"] == "run-42"
    assert record["Total"] == "2"


def test_duplicates_in_the_report_stage_are_all_quarantined_with_one_reason() -> None:
    """One rule in both stages: every row of a repeated (accountUUID, Ccy) is quarantined,
    never summed, never first-wins; the run goes on with the other rows."""
    kraken = table(
        row("kraken", 1, 10, "BTC", Total="1"),
        row("kraken", 1, 10, "BTC", Total="1"),  # the venue listed it twice
        row("kraken", 1, 10, "ETH", Total="2"),
        row("kraken", 1, 10, "USD"),  # all zero: dropped before validation, not quarantined
        row("kraken", 1, 10, "USD"),
    )
    saxo = table(row("saxo", 2, 10, "ETH", Total="5"), row("saxo", 2, 20, "EUR", Total="7"))

    report, rejected = build(kraken, saxo)

    assert keys(report) == [("saxo", u(20), "EUR")]
    assert [(r.source, r.check, r.reason, r.record["Ccy"], r.record["Total"])
            for r in rejected] == [
        ("kraken", "unique_account_ccy",
         "duplicate (accountUUID, Ccy): listed 2 times by the venue", "BTC", "1"),
        ("kraken", "unique_account_ccy",
         "duplicate (accountUUID, Ccy): listed 2 times by the venue", "BTC", "1"),
        ("kraken", "unique_account_ccy",
         "duplicate (accountUUID, Ccy): listed 2 times, by sources kraken, saxo", "ETH", "2"),
        ("saxo", "unique_account_ccy",
         "duplicate (accountUUID, Ccy): listed 2 times, by sources kraken, saxo", "ETH", "5"),
    ]  # fmt: skip
    assert {r.record["report_date"] for r in rejected} == {"2024-05-01"}


def test_many_duplicates_do_not_slow_or_break_the_build() -> None:
    rows = [row("kraken", 1, n // 2, "BTC", Total=str(n + 1)) for n in range(20_000)]
    rows.append(row("kraken", 1, 99_999, "BTC", Total="1"))

    report, rejected = build(table(*rows))

    assert keys(report) == [("kraken", u(99_999), "BTC")]
    assert len(rejected) == 20_000
    assert {r.reason for r in rejected} == {
        "duplicate (accountUUID, Ccy): listed 2 times by the venue"
    }


def test_empty_input_gives_an_empty_report_with_the_schema() -> None:
    for inputs in ([], [BALANCES_SCHEMA.empty_table()], [table(row("kraken", 1, 1, "BTC"))]):
        report, rejected = build_report(inputs, report_date=D, run_id="r", snapshot_at=SNAPSHOTS)
        assert report.num_rows == 0
        assert report.schema.equals(REPORT_SCHEMA)
        assert rejected == []


def test_snapshot_time_is_required_for_every_source_and_must_be_aware() -> None:
    data = table(row("kraken", 1, 10, "BTC", Total="1"))
    with pytest.raises(ValueError, match=r"no time for source\(s\) \['kraken'\]"):
        build_report([data], report_date=D, run_id="r", snapshot_at={"saxo": SAXO_AT})
    with pytest.raises(ValueError, match="not timezone-aware"):
        build_report(
            [data], report_date=D, run_id="r", snapshot_at={"kraken": datetime(2024, 5, 1)}
        )


def test_balances_with_float_amounts_are_refused() -> None:
    data = table(row("kraken", 1, 10, "BTC", Total="1"))
    floats = data.set_column(11, pa.field("Total", pa.float64()), pa.array([1.0]))
    with pytest.raises(SchemaViolation, match="Total: wrong dtype double"):
        build(floats)


def test_polars_flavoured_balances_are_accepted() -> None:
    data = table(row("kraken", 1, 10, "BTC", Total="1"))
    from_polars = pl.from_arrow(data).to_arrow()  # type: ignore[union-attr]
    assert not from_polars.schema.equals(BALANCES_SCHEMA)
    report, _ = build(from_polars)
    assert report.schema.equals(REPORT_SCHEMA)
    assert report.num_rows == 1


# ------------------------------------------------------------------------------- summary


def test_totals_by_ccy_and_by_source_are_exact_and_sorted() -> None:
    report, _ = build(
        table(
            row("kraken", 1, 10, "BTC", Total="0.1"),
            row("kraken", 1, 11, "BTC", Total="0.2"),
            row("kraken", 1, 12, "ETH", Total="-0.0009056832839642471"),
        ),
        table(
            row("saxo", 2, 20, "BTC", Total="900000000000000000.5"),
            row("saxo", 2, 21, "BTC", Total="900000000000000000.5"),
        ),
    )

    assert totals_by(report, ["Ccy"]) == [
        {"Ccy": "BTC", "rows": 4, "Total": Decimal("1800000000000000001.3")},
        {"Ccy": "ETH", "rows": 1, "Total": Decimal("-0.0009056832839642471")},
    ]
    assert totals_by(report, ["source", "Ccy"]) == [
        {"source": "kraken", "Ccy": "BTC", "rows": 2, "Total": Decimal("0.3")},
        {"source": "kraken", "Ccy": "ETH", "rows": 1, "Total": Decimal("-0.0009056832839642471")},
        {"source": "saxo", "Ccy": "BTC", "rows": 2, "Total": Decimal("1800000000000000001")},
    ]
    assert totals_by(report, []) == [
        {"rows": 5, "Total": Decimal("1800000000000000001.2990943167160357529")}
    ]


def test_markdown_table() -> None:
    rows: list[dict[str, object]] = [
        {"Ccy": "BTC", "rows": 2, "Total": Decimal("0.00000000346")},
        {"Ccy": "A|B", "rows": 10, "Total": Decimal("100")},
    ]
    assert markdown_table(rows) == (
        "| Ccy | rows | Total |\n"
        "|---|---:|---:|\n"
        "| BTC | 2 | 0.00000000346 |\n"
        "| A\\|B | 10 | 100 |\n"
    )
    assert markdown_table([]) == "_no rows_\n"
