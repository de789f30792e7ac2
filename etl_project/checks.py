"""Data-quality checks as plain functions; Dagster asset checks wrap them."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from typing import Any

import pandera.errors
import polars as pl
from pandera.config import ValidationDepth, config_context

from etl_project.errors import EtlError
from etl_project.report.schema import ReportModel
from etl_project.sinks.object_store import ObjectStore
from etl_project.stages.report import staged_report


@dataclass(frozen=True)
class CheckOutcome:
    passed: bool
    summary: str
    metadata: dict[str, Any] = field(default_factory=dict)


def report_schema(store: ObjectStore, report_date: date) -> CheckOutcome:
    """Audit the staged report against the contract's schema before anything is published."""
    try:
        report, _ = staged_report(store, report_date)
    except EtlError as exc:
        return CheckOutcome(False, str(exc))
    try:
        # Forced on: an environment's PANDERA_VALIDATION_ENABLED=False must not pass the audit.
        with config_context(
            validation_enabled=True, validation_depth=ValidationDepth.SCHEMA_AND_DATA
        ):
            ReportModel.validate(pl.DataFrame(report), lazy=True)
    except pandera.errors.SchemaErrors as exc:
        cases = exc.failure_cases
        checks = sorted({str(c) for c in cases["check"].to_list()})
        return CheckOutcome(
            False,
            f"{cases.height} schema failure(s): {', '.join(checks)}",
            {"failures": cases.height},
        )
    return CheckOutcome(
        True, f"{report.num_rows} rows satisfy the report contract", {"rows": report.num_rows}
    )
