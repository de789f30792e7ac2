"""The data-quality checks against a real warehouse (DuckDB and PostgreSQL): exact totals from
the database, previous-day comparisons, freshness from the status table, recorded verdicts."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime
from decimal import Decimal

import pyarrow as pa
import pytest

from etl_project import quality, quality_runs
from etl_project.checks import CheckOutcome
from etl_project.report.columns import SQL_NAMES
from etl_project.sinks.operational_tables import REPORT_RUNS_TABLE
from etl_project.sinks.warehouse import Warehouse
from etl_project.sinks.warehouse_tables import REPORT_TABLE
from tests.warehouse_sample import D2, D, sample_report


@pytest.fixture(params=["duckdb", "postgresql"])
def wh(request: pytest.FixtureRequest, tmp_path) -> Iterator[Warehouse]:
    if request.param == "duckdb":
        url = f"duckdb:///{tmp_path / 'wh.duckdb'}"
    else:
        url = request.getfixturevalue("pg_schema")
    warehouse = Warehouse(url)
    warehouse.ensure_schema()
    try:
        yield warehouse
    finally:
        warehouse.dispose()


def publish(wh: Warehouse, day: date, report: pa.Table) -> None:
    """What publish_warehouse writes that the checks read: the rows and the status row."""
    status = {
        "completeness": "complete",
        "gaps": "[]",
        "report_rows": report.num_rows,
        "rejected_rows": 0,
        "run_id": "run-a",
        "published_at": datetime(2024, 4, 1, 2, 5, tzinfo=UTC),
    }
    renamed = report.rename_columns([SQL_NAMES.get(n, n) for n in report.column_names])
    wh.replace_all(
        day,
        [(REPORT_TABLE, renamed, None), (REPORT_RUNS_TABLE, pa.Table.from_pylist([status]), None)],
    )


def with_total(report: pa.Table, row: int, total: Decimal) -> pa.Table:
    totals = report.column("Total").to_pylist()
    totals[row] = total
    index = report.column_names.index("Total")
    return report.set_column(index, "Total", pa.array(totals, report.schema.field("Total").type))


def test_read_totals_is_exact_per_account_and_ccy(wh: Warehouse) -> None:
    report = sample_report(D)
    publish(wh, D, report)
    got = wh.read_totals(D)
    expected = sorted(
        zip(
            report.column("accountUUID").to_pylist(),
            report.column("Ccy").to_pylist(),
            report.column("Total").to_pylist(),
            strict=True,
        )
    )
    assert [(r["account_uuid"], r["ccy"], r["total"]) for r in got.to_pylist()] == expected
    assert Decimal("-999999999999999999.99999999999999999999") in got.column("total").to_pylist()


def test_unpublished_date_fails_movement_and_row_count(wh: Warehouse) -> None:
    missing = CheckOutcome(False, f"report for {D} is not published")
    assert quality_runs.movement(wh, D, 50) == missing
    assert quality_runs.row_count(wh, D, 50) == missing


def test_first_date_has_nothing_to_compare_with(wh: Warehouse) -> None:
    publish(wh, D, sample_report(D))
    movement = quality_runs.movement(wh, D, 50)
    assert (movement.passed, movement.summary) == (True, "no previous report to compare with")
    row_count = quality_runs.row_count(wh, D, 50)
    assert (row_count.passed, row_count.summary) == (True, "no previous report to compare with")


def test_movement_and_row_count_against_the_previous_day(wh: Warehouse) -> None:
    before = sample_report(D2, n=4)
    publish(wh, D2, before)
    # Row 1's Total goes 100634324.36 -> 150951486.54 (+50% exactly: not beyond 50%) and
    # row 0's 0.00000000346 -> 0.00000000520 (+50.29%: beyond).
    today = with_total(sample_report(D, n=4), 1, Decimal("150951486.54"))
    today = with_total(today, 0, Decimal("0.00000000520"))
    assert before.column("Total").to_pylist()[0:2] == [
        Decimal("0.00000000346"),
        Decimal("100634324.36"),
    ]
    publish(wh, D, today)

    movement = quality_runs.movement(wh, D, 50)
    assert not movement.passed
    assert movement.summary == (
        "1 of 4 (accountUUID, Ccy) pairs moved more than 50% since the previous report"
    )
    account = today.column("accountUUID").to_pylist()[0]
    assert movement.metadata["top_breaches"].split("\n")[2:] == [
        f"| {account} | BTC | 0.00000000346 | 0.0000000052 | +50.29 |"
    ]
    assert movement.metadata["previous_report_date"] == D2.isoformat()

    row_count = quality_runs.row_count(wh, D, 50)
    assert (row_count.passed, row_count.summary) == (
        True,
        "4 rows vs 4 in the previous report (+0.00%, within 50%)",
    )
    publish(wh, D, sample_report(D, n=1))
    row_count = quality_runs.row_count(wh, D, 50)
    assert (row_count.passed, row_count.summary) == (
        False,
        "1 rows vs 4 in the previous report (-75.00%, exceeds 50%)",
    )


@pytest.mark.parametrize("threshold", [0.0, 1e-9, 0.5, 50.0, 1e6])
def test_movement_in_the_warehouse_says_what_the_totals_comparison_says(
    wh: Warehouse, threshold: float
) -> None:
    """The database joins and narrows the two days; the verdict equals the pure comparison of
    the two days' full totals (pairs added, removed, from 0, to 0, huge, tiny)."""
    before, today = sample_report(D2, n=12), sample_report(D, n=12)
    totals = [Decimal(v) for v in ("0", "1", "-1", "1e-20", "99999999999999999.5", "7.77")]
    changed = ["0", "1.000000001", "-1.5", "0", "-99999999999999999.5", "7.77"]
    for row, (old, new) in enumerate(zip(totals, changed, strict=True)):
        before = with_total(before, row, old)
        today = with_total(today, row, Decimal(new))
    before = before.slice(0, 10)  # today's last two pairs are new, before's are its own
    today = pa.concat_tables([today.slice(0, 8), today.slice(10)])
    publish(wh, D2, before)
    publish(wh, D, today)
    got = quality_runs.movement(wh, D, threshold)
    want = quality.movement(wh.read_totals(D), wh.read_totals(D2), threshold)
    assert (got.passed, got.summary) == (want.passed, want.summary)
    assert {k: v for k, v in got.metadata.items() if k != "previous_report_date"} == want.metadata


def test_freshness_reads_the_published_status(wh: Warehouse) -> None:
    after_deadline = datetime(2024, 4, 1, 6, 30, tzinfo=UTC)  # judges D = 2024-03-31
    day, outcome = quality_runs.freshness(wh, after_deadline, "06:00")
    assert day == D
    assert (outcome.passed, outcome.summary) == (
        False,
        "report for 2024-03-31 is not published and the 06:00 UTC deadline passed",
    )
    publish(wh, D, sample_report(D))
    _, outcome = quality_runs.freshness(wh, after_deadline, "06:00")
    assert (outcome.passed, outcome.summary) == (True, "report for 2024-03-31 is published")


def test_record_keeps_the_latest_verdict_per_asset_and_check(wh: Warehouse) -> None:
    quality_runs.record(wh, D, "a", "row_count", CheckOutcome(False, "first"), "run-1")
    quality_runs.record(wh, D, "a", "row_count", CheckOutcome(True, "second"), "run-2")
    quality_runs.record(wh, D, "b", "row_count", CheckOutcome(True, "other asset"), "run-2")
    rows = wh.read_table("settlement_check_results", D)
    assert [
        (r["asset"], r["check_name"], r["passed"], r["summary"], r["run_id"]) for r in rows
    ] == [
        ("a", "row_count", True, "second", "run-2"),
        ("b", "row_count", True, "other asset", "run-2"),
    ]


def test_record_returns_the_verdict_it_replaced(wh: Warehouse) -> None:
    first = CheckOutcome(False, "2 schema failure(s): unique_account_ccy")
    assert quality_runs.record(wh, D, "a", "report_schema", first, "run-1") is None
    assert quality_runs.record(wh, D, "a", "report_schema", first, "run-2") == first
    assert quality_runs.record(wh, D2, "a", "report_schema", first, "run-2") is None


def test_only_a_new_failure_is_alert_worthy() -> None:
    failed = CheckOutcome(False, "partial: saxo_main/*: down")
    assert quality_runs.is_new_failure(failed, None)
    assert quality_runs.is_new_failure(failed, CheckOutcome(True, "complete"))
    assert quality_runs.is_new_failure(failed, CheckOutcome(False, "partial: kraken/*: down"))
    assert not quality_runs.is_new_failure(failed, failed)  # a re-run of the same failure
    assert not quality_runs.is_new_failure(CheckOutcome(True, "complete"), None)


def test_checks_on_an_empty_warehouse_answer_instead_of_erroring(wh: Warehouse) -> None:
    # Nothing published yet (a new deployment): a verdict, not an error. That the tables of a
    # brand-new warehouse get created first is WarehouseResource.session's job (see the
    # freshness job test in tests/integration/test_checks_and_alerts.py).
    day, outcome = quality_runs.freshness(wh, datetime(2024, 4, 1, 7, tzinfo=UTC), "06:00")
    assert (day, outcome.passed) == (D, False)
    assert quality_runs.row_count(wh, D, 50) == CheckOutcome(
        False, f"report for {D} is not published"
    )
