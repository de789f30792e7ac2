"""Data-quality checks as plain functions; Dagster asset checks wrap them."""

from __future__ import annotations

import copy
import tempfile
from dataclasses import dataclass, field
from datetime import date
from typing import Any

import duckdb
import pandera.errors
import polars as pl
import pyarrow.compute as pc
import pyarrow.parquet as pq
from pandera.config import ValidationDepth, config_context

from etl_project.errors import EtlError
from etl_project.report.batches import report_batches
from etl_project.report.schema import (
    CHECK_ONE_REPORT_DATE,
    CHECK_UNIQUE_KEY,
    KEY_COLUMNS,
    ReportModel,
)
from etl_project.sinks.object_store import ObjectStore
from etl_project.stages.report import staged_report_file

#: The report contract without its rules across rows, which a batch cannot judge alone; the
#: audit checks those over the whole file (`_whole_file_failures`).
_WHOLE_FILE = (CHECK_ONE_REPORT_DATE, CHECK_UNIQUE_KEY)
_SCHEMA = ReportModel.to_schema()
assert sorted(str(c.name) for c in _SCHEMA.checks) == sorted(_WHOLE_FILE), (
    "a new frame-level rule of ReportModel: decide whether a batch can judge it (checks.py)"
)
_PER_BATCH = copy.deepcopy(_SCHEMA)
_PER_BATCH.checks = []
#: Memory DuckDB may use for the uniqueness count before it spills to disk.
_DUCKDB_MEMORY = "256MB"


@dataclass(frozen=True)
class CheckOutcome:
    passed: bool
    summary: str
    metadata: dict[str, Any] = field(default_factory=dict)


def report_schema(store: ObjectStore, report_date: date) -> CheckOutcome:
    """Audit the staged report against the contract's schema before anything is published.

    Read batch by batch (memory is a batch, not the report): each batch is validated with the
    pandera model's per-row rules, and the rules across rows (one report date, unique
    (accountUUID, Ccy)) are counted over the whole file, as pandera counts them on one frame:
    one failure per row of a repeated key, one for more than one report date."""
    try:
        with staged_report_file(store, report_date) as (parquet, _):
            rows = parquet.metadata.num_rows
            failures, checks = _batch_failures(parquet)
            for name, count in _whole_file_failures(parquet).items():
                if count:
                    failures += count
                    checks.add(name)
    except EtlError as exc:
        return CheckOutcome(False, str(exc))
    if failures:
        return CheckOutcome(
            False,
            f"{failures} schema failure(s): {', '.join(sorted(checks))}",
            {"failures": failures},
        )
    return CheckOutcome(True, f"{rows} rows satisfy the report contract", {"rows": rows})


def _batch_failures(parquet: pq.ParquetFile) -> tuple[int, set[str]]:
    """(failure cases, names of the failed checks) of the per-row rules over every batch.
    A failure of the frame itself (a column, a dtype) is the same in every batch: counted
    once."""
    count, checks = 0, set[str]()
    frame_level: set[tuple[str, str, str]] = set()
    # Forced on: an environment's PANDERA_VALIDATION_ENABLED=False must not pass the audit.
    with config_context(validation_enabled=True, validation_depth=ValidationDepth.SCHEMA_AND_DATA):
        for batch in report_batches(parquet):
            try:
                _PER_BATCH.validate(pl.DataFrame(batch), lazy=True)
            except pandera.errors.SchemaErrors as exc:
                cases = exc.failure_cases
                per_row = cases.filter(pl.col("index").is_not_null())
                count += per_row.height
                checks.update(str(c) for c in cases["check"].to_list())
                for case in cases.filter(pl.col("index").is_null()).iter_rows(named=True):
                    frame_level.add(
                        (str(case["check"]), str(case["column"]), str(case["failure_case"]))
                    )
    return count + len(frame_level), checks


def _whole_file_failures(parquet: pq.ParquetFile) -> dict[str, int]:
    """Failure cases of the rules across rows, over the whole file: rows whose (accountUUID,
    Ccy) occurs more than once (DuckDB's aggregate, spilling to disk past `_DUCKDB_MEMORY`, so
    memory stays bounded for any number of keys), and 1 if there is more than one report
    date."""
    dates: set[object] = set()
    for batch in report_batches(parquet, ["report_date"]):
        dates.update(pc.unique(batch.column(0)).to_pylist())
    keys = report_batches(parquet, list(KEY_COLUMNS))
    account, ccy = (f'"{name}"' for name in KEY_COLUMNS)
    with tempfile.TemporaryDirectory() as spill, duckdb.connect() as db:
        db.execute(f"SET memory_limit = '{_DUCKDB_MEMORY}'")
        db.execute(f"SET temp_directory = '{spill}'")
        db.register("report_keys", keys)
        repeated = db.execute(
            f"SELECT coalesce(sum(n), 0) FROM (SELECT count(*) AS n FROM report_keys "
            f"GROUP BY {account}, {ccy} HAVING count(*) > 1)"
        ).fetchone()
    return {
        CHECK_UNIQUE_KEY: int(repeated[0]) if repeated else 0,
        CHECK_ONE_REPORT_DATE: int(len(dates) > 1),
    }
