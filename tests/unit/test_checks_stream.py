"""The schema audit reads the staged report batch by batch, yet says exactly what pandera says
about the whole report at once: same failure count, same check names, also when a repeated
(accountUUID, Ccy) or a second report date spans two batches."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from pathlib import Path

import pandera.errors
import polars as pl
import pyarrow as pa
import pytest
from pandera.config import ValidationDepth, config_context

from etl_project import checks, staging
from etl_project.report import batches
from etl_project.report.schema import ReportModel
from etl_project.sinks.object_store import LocalObjectStore
from etl_project.stages.outcome import StageOutcome, manifest
from tests.report_rows import report, row

D = date(2024, 5, 1)
OTHER_USER = "00000000-0000-0000-0000-000000000099"


def stage(tmp_path: Path, table: pa.Table) -> LocalObjectStore:
    store = LocalObjectStore(tmp_path / "lake")
    manifest_key, table_key = staging.report_keys(D)
    staging.put_table(store, table_key, table)
    outcome = StageOutcome("report", "ok", None, {"run_id": "run-1", "rows": table.num_rows})
    staging.put_json(store, manifest_key, manifest(outcome))
    return store


def whole_table_summary(table: pa.Table) -> str:
    """What the audit said when it validated the whole report as one polars frame."""
    with config_context(validation_enabled=True, validation_depth=ValidationDepth.SCHEMA_AND_DATA):
        try:
            ReportModel.validate(pl.DataFrame(table), lazy=True)
        except pandera.errors.SchemaErrors as exc:
            cases = exc.failure_cases
            names = sorted({str(c) for c in cases["check"].to_list()})
            return f"{cases.height} schema failure(s): {', '.join(names)}"
    return f"{table.num_rows} rows satisfy the report contract"


def rows(count: int) -> list[dict[str, object]]:
    return [row(n, Total=Decimal(n).scaleb(-3)) for n in range(1, count + 1)]


CASES = {
    "valid": rows(10),
    "repeat across batches": [*rows(10), row(2, userUUID=OTHER_USER)],
    "repeat thrice": [*rows(6), row(1, Ccy="BTC"), row(1, userUUID=OTHER_USER)],
    "two dates": [*rows(9), row(20, report_date=date(2024, 5, 2))],
    "row rules": [
        *rows(5),
        row(6, userUUID="NOT-A-UUID"),
        row(7, Ccy="xbt", Order=Decimal(1)),
        row(8, User="  "),
    ],
}


@pytest.mark.parametrize("batch_rows", [3, 4, 1000])
@pytest.mark.parametrize("case", list(CASES))
def test_audit_by_batches_says_what_the_whole_table_audit_says(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, case: str, batch_rows: int
) -> None:
    monkeypatch.setattr(batches, "BATCH_ROWS", batch_rows)
    table = report(*CASES[case])
    outcome = checks.report_schema(stage(tmp_path, table), D)
    assert outcome.summary == whole_table_summary(table)
    assert outcome.passed == (case == "valid")


def test_row_rules_and_both_rules_across_rows_at_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """pandera itself cannot report this mix on one frame (it fails to stack the bool failure
    case of one_report_date with the text ones), so the expectation is spelled out."""
    monkeypatch.setattr(batches, "BATCH_ROWS", 3)
    table = report(
        *rows(7), row(3, userUUID="bad"), row(8, report_date=date(2024, 4, 30), Ccy="XBT")
    )
    outcome = checks.report_schema(stage(tmp_path, table), D)
    assert outcome.summary == (
        "5 schema failure(s): canonical_uuid, ccy_normalised, one_report_date, unique_account_ccy"
    )


def test_failures_are_counted_in_the_metadata(tmp_path: Path) -> None:
    table = report(*rows(4), row(1, userUUID=OTHER_USER), row(1, userUUID=OTHER_USER))
    outcome = checks.report_schema(stage(tmp_path, table), D)
    assert outcome.summary == "3 schema failure(s): unique_account_ccy"
    assert outcome.metadata == {"failures": 3}


def test_a_date_not_staged_fails_with_the_reason(tmp_path: Path) -> None:
    outcome = checks.report_schema(LocalObjectStore(tmp_path / "lake"), D)
    assert not outcome.passed
    assert outcome.summary == "report 2024-05-01: report not staged"
