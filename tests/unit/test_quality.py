"""Data-quality checks: exact verdicts, summaries and metadata; results land in DuckDB."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path

import pyarrow as pa
import pytest

from etl_project.checks import CheckOutcome
from etl_project.quality import (
    check_results_rows,
    completeness,
    freshness,
    movement,
    row_count,
)
from etl_project.report.columns import AMOUNT_TYPE
from etl_project.sinks.operational_tables import CHECK_RESULTS_TABLE
from etl_project.sinks.warehouse import Warehouse

BIG = Decimal("999999999999999999.99999999999999999999")  # the largest NUMERIC(38,20)


def totals(rows: list[tuple[str, str, str]]) -> pa.Table:
    """A report slice: accountUUID, Ccy, Total (decimal128(38,20), report column names)."""
    return pa.table(
        {
            "accountUUID": pa.array([r[0] for r in rows], pa.string()),
            "Ccy": pa.array([r[1] for r in rows], pa.string()),
            "Total": pa.array([Decimal(r[2]) for r in rows], AMOUNT_TYPE),
        }
    )


# -- completeness -----------------------------------------------------------------------------


def test_completeness_complete() -> None:
    outcome = completeness({"completeness": "complete", "gaps": [], "rows": 3})
    assert outcome == CheckOutcome(
        True, "complete: every expected account was received", {"gaps": 0}
    )


def test_completeness_partial_names_gaps() -> None:
    details = {
        "completeness": "partial",
        "gaps": [
            {"source": "platform_x", "account_id": "acc-1", "reason": "HTTP 503"},
            {"source": "kraken", "account_id": "*", "reason": "kraken: auth failed"},
        ],
    }
    assert completeness(details) == CheckOutcome(
        False,
        "partial: platform_x/acc-1: HTTP 503; kraken/*: kraken: auth failed",
        {"completeness": "partial", "gaps": 2},
    )


def test_completeness_missing_is_a_failure() -> None:
    outcome = completeness({})
    assert (outcome.passed, outcome.summary) == (False, "unknown: no gaps named")


# -- movement ---------------------------------------------------------------------------------


def test_movement_without_previous_passes() -> None:
    outcome = movement(totals([("a", "BTC", "1")]), None, 50.0)
    assert outcome == CheckOutcome(True, "no previous report to compare with", {"breaches": 0})


def test_movement_flags_exact_breaches() -> None:
    previous = totals(
        [
            ("a", "BTC", "100"),  # -> 150: exactly +50%, not a breach
            ("a", "USD", "100"),  # -> 150.00000000000000000001: breach by 1e-20
            ("b", "ETH", "0"),  # -> 5: previous 0, a breach ("new")
            ("c", "EUR", "200"),  # missing today: -100%
            ("d", "BTC", "0"),  # -> 0: no change
            ("e", "XRP", "-10"),  # -> -30: -200%
        ]
    )
    today = totals(
        [
            ("a", "BTC", "150"),
            ("a", "USD", "150.00000000000000000001"),
            ("b", "ETH", "5"),
            ("d", "BTC", "0"),
            ("e", "XRP", "-30"),
            ("f", "SOL", "0"),  # new but zero: no change
        ]
    )
    outcome = movement(today, previous, 50.0)
    assert outcome.passed is False
    assert outcome.summary == (
        "4 of 7 (accountUUID, Ccy) pairs moved more than 50% since the previous report"
    )
    assert outcome.metadata == {
        "breaches": 4,
        "pairs_compared": 7,
        "threshold_pct": 50.0,
        "top_breaches": "\n".join(
            [
                "| accountUUID | Ccy | previous Total | today Total | change % |",
                "|---|---|---|---|---|",
                "| b | ETH | 0 | 5 | new |",
                "| e | XRP | -10 | -30 | -200.00 |",
                "| c | EUR | 200 | 0 | -100.00 |",
                "| a | USD | 100 | 150.00000000000000000001 | +50.00 |",
            ]
        ),
    }


def test_movement_is_exact_at_the_decimal_limits() -> None:
    # Exact at both ends of NUMERIC(38,20): the smallest step and the largest magnitudes.
    previous = totals([("a", "BTC", "0.00000000000000000001"), ("b", "BTC", str(BIG))])
    today = totals([("a", "BTC", "0.00000000000000000002"), ("b", "BTC", f"-{BIG}")])
    outcome = movement(today, previous, 99.99)
    assert outcome.metadata["breaches"] == 2
    assert (
        "| b | BTC | 999999999999999999.99999999999999999999 | "
        in (outcome.metadata["top_breaches"])
    )
    assert (
        "| -999999999999999999.99999999999999999999 | -200.00 |"
        in (outcome.metadata["top_breaches"])
    )
    assert movement(today, previous, 200.0).metadata["breaches"] == 0


def test_movement_within_threshold_passes_and_reads_sql_names() -> None:
    sql_named = totals([("a", "BTC", "10"), ("b", "ETH", "-4")]).rename_columns(
        ["account_uuid", "ccy", "total"]
    )
    today = totals([("a", "BTC", "12"), ("b", "ETH", "-5")])
    outcome = movement(today, sql_named, 25.0)
    assert outcome == CheckOutcome(
        True,
        "no (accountUUID, Ccy) pair moved more than 25% (2 compared)",
        {"breaches": 0, "pairs_compared": 2, "threshold_pct": 25.0},
    )


def test_movement_top_ten_only() -> None:
    previous = totals([(f"acc{i:02}", "BTC", "1") for i in range(12)])
    today = totals([(f"acc{i:02}", "BTC", str(2 + i)) for i in range(12)])
    outcome = movement(today, previous, 10.0)
    lines = outcome.metadata["top_breaches"].splitlines()
    assert outcome.metadata["breaches"] == 12
    assert len(lines) == 2 + 10
    assert lines[2] == "| acc11 | BTC | 1 | 13 | +1200.00 |"
    assert lines[-1] == "| acc02 | BTC | 1 | 4 | +300.00 |"


def test_movement_rejects_negative_threshold() -> None:
    with pytest.raises(ValueError, match="threshold_pct"):
        movement(totals([]), totals([]), -1)


# -- row count --------------------------------------------------------------------------------


def test_row_count() -> None:
    assert row_count(10, None, 50) == CheckOutcome(
        True, "no previous report to compare with", {"today_rows": 10}
    )
    assert row_count(150, 100, 50) == CheckOutcome(
        True,
        "150 rows vs 100 in the previous report (+50.00%, within 50%)",
        {"today_rows": 150, "previous_rows": 100, "change_pct": 50.0},
    )
    assert row_count(49, 100, 50) == CheckOutcome(
        False,
        "49 rows vs 100 in the previous report (-51.00%, exceeds 50%)",
        {"today_rows": 49, "previous_rows": 100, "change_pct": -51.0},
    )
    assert row_count(3, 0, 50).passed is False
    assert row_count(3, 0, 50).summary == (
        "3 rows vs 0 in the previous report (from 0, exceeds 50%)"
    )
    assert row_count(0, 0, 50).passed is True


# -- freshness --------------------------------------------------------------------------------


def test_freshness() -> None:
    before = datetime(2024, 4, 1, 5, 59, tzinfo=UTC)
    after = datetime(2024, 4, 1, 6, 1, tzinfo=UTC)
    assert freshness(False, before, "06:00").passed is True
    late = freshness(False, after, "06:00")
    assert late == CheckOutcome(
        False,
        "report for 2024-03-31 is not published and the 06:00 UTC deadline passed",
        {
            "report_date": "2024-03-31",
            "deadline": "2024-04-01T06:00:00+00:00",
            "exists": False,
        },
    )
    assert freshness(True, after, "06:00").summary == "report for 2024-03-31 is published"
    # 07:30 at UTC+2 is 05:30 UTC: before the deadline.
    east = datetime(2024, 4, 1, 7, 30, tzinfo=timezone(timedelta(hours=2)))
    assert freshness(False, east, "06:00").passed is True
    # 23:30 on 31 March at UTC-6 is 05:30 UTC on 1 April: "yesterday" is 31 March (UTC).
    west = datetime(2024, 3, 31, 23, 30, tzinfo=timezone(timedelta(hours=-6)))
    assert freshness(False, west, "06:00").metadata["report_date"] == "2024-03-31"
    assert freshness(False, west, "06:00").passed is True
    # Exactly at the deadline is not past it; one microsecond later is.
    at_deadline = datetime(2024, 4, 1, 6, 0, tzinfo=UTC)
    assert freshness(False, at_deadline, "06:00").passed is True
    assert freshness(False, at_deadline + timedelta(microseconds=1), "06:00").passed is False
    with pytest.raises(ValueError, match="HH:MM"):
        freshness(False, after, "6:00")
    with pytest.raises(ValueError, match="timezone-aware"):
        freshness(False, datetime(2024, 4, 1, 7), "06:00")


# -- results table ----------------------------------------------------------------------------


def test_check_results_round_trip_duckdb(tmp_path: Path) -> None:
    at = datetime(2024, 4, 1, 6, 5, 1, 123456, tzinfo=UTC)
    results = {
        "row_count": row_count(150, 100, 50),
        "completeness": completeness({"completeness": "partial", "gaps": []}),
    }
    rows = check_results_rows(results, "run-1", asset="settlement_balance_report", checked_at=at)
    assert rows.column_names == [
        "asset",
        "check_name",
        "passed",
        "summary",
        "run_id",
        "checked_at",
    ]
    warehouse = Warehouse(f"duckdb:///{tmp_path / 'wh.duckdb'}")
    try:
        warehouse.ensure_schema()
        d = date(2024, 3, 31)
        assert warehouse.replace(CHECK_RESULTS_TABLE, rows, d) == 2
        # A rerun replaces the date's results instead of duplicating them.
        rerun = check_results_rows(
            {"row_count": row_count(1, 100, 50)},
            "run-2",
            asset="settlement_balance_report",
            checked_at=at,
        )
        assert warehouse.replace(CHECK_RESULTS_TABLE, rerun, d) == 1
        assert warehouse.replace(CHECK_RESULTS_TABLE, rows, date(2024, 3, 30)) == 2
        assert warehouse.read_table("settlement_check_results", d) == [
            {
                "report_date": d,
                "asset": "settlement_balance_report",
                "check_name": "row_count",
                "passed": False,
                "summary": "1 rows vs 100 in the previous report (-99.00%, exceeds 50%)",
                "run_id": "run-2",
                "checked_at": at,
            }
        ]
        earlier = warehouse.read_table("settlement_check_results", date(2024, 3, 30))
        assert [(r["check_name"], r["passed"], r["summary"]) for r in earlier] == [
            ("completeness", False, "partial: no gaps named"),
            ("row_count", True, "150 rows vs 100 in the previous report (+50.00%, within 50%)"),
        ]
    finally:
        warehouse.dispose()


def test_movement_sums_repeated_pairs_exactly() -> None:
    # Hand-built inputs may repeat a pair; its Totals are summed exactly (no Arrow overflow).
    previous = totals([("a", "BTC", str(BIG)), ("a", "BTC", str(BIG))])
    today = totals([("a", "BTC", str(BIG))])
    outcome = movement(today, previous, 49.0)
    assert outcome.metadata["pairs_compared"] == 1
    assert outcome.metadata["top_breaches"].split("\n")[2] == (
        "| a | BTC | 1999999999999999999.99999999999999999998 | "
        "999999999999999999.99999999999999999999 | -50.00 |"
    )
