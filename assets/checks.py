"""Asset checks. Each wraps a plain function of `etl_project.quality_runs`, records its outcome
in the warehouse's `settlement_check_results` (what BI reads) and, when it fails, posts an
alert. `report_schema` is blocking: when it fails nothing is published."""

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

import dagster as dg

from assets.alerting import AlertResource
from assets.partitions import partition_date
from assets.report import REPORT_KEY, WAREHOUSE_KEY
from assets.resources import EtlConfigResource, ObjectStoreResource, WarehouseResource
from etl_project import checks, quality_runs
from etl_project.alerts import AlertError, format_check_failure
from etl_project.config import ReportSettings
from etl_project.sinks.object_store import ObjectStore
from etl_project.sinks.warehouse import Warehouse

FRESHNESS_CHECK = dg.AssetCheckKey(WAREHOUSE_KEY, "freshness")


def conclude_check(
    context: dg.AssetCheckExecutionContext | dg.AssetExecutionContext,
    *,
    asset: dg.AssetKey,
    name: str,
    report_date: date,
    outcome: checks.CheckOutcome,
    severity: dg.AssetCheckSeverity,
    warehouse: Warehouse,
    alert: AlertResource | None,
) -> dg.AssetCheckResult:
    """Record `outcome` in the warehouse, alert on a new failure, and return it as Dagster's
    result.

    A failure identical to the one already recorded for the date (a re-run, or the freshness
    check running inside every run of a backfill) is not alerted again. An alert that cannot be
    delivered is logged and shown in the check's metadata; it never turns a verdict into an
    error."""
    previous = quality_runs.record(
        warehouse, report_date, asset.to_user_string(), name, outcome, context.run.run_id
    )
    delivery = "not needed"
    if not outcome.passed and not quality_runs.is_new_failure(outcome, previous):
        delivery = "already sent for this failure"
    elif not outcome.passed and alert is not None:
        text = format_check_failure(
            name, asset.to_user_string(), report_date.isoformat(), outcome.summary
        )
        try:
            delivery = "sent" if alert.send(text) else f"${alert.webhook_env} not set"
        except AlertError as exc:
            context.log.error(str(exc))
            delivery = f"failed: {exc}"
    metadata: dict[str, Any] = {
        key: dg.MetadataValue.md(value) if key == "top_breaches" else value
        for key, value in outcome.metadata.items()
    }
    return dg.AssetCheckResult(
        asset_key=asset,
        check_name=name,
        passed=outcome.passed,
        severity=severity,
        description=outcome.summary,
        metadata={**metadata, "report_date": report_date.isoformat(), "alert": delivery},
    )


@dataclass(frozen=True)
class CheckInputs:
    """What a check may read: the staged/published outputs and the report settings."""

    store: ObjectStore
    warehouse: Warehouse
    report: ReportSettings
    day: date | None  # the partition's report date; None for an unpartitioned check


#: A check's rule: the report date it judged and its outcome.
Rule = Callable[[CheckInputs], tuple[date, checks.CheckOutcome]]


def _partition(inputs: CheckInputs) -> date:
    assert inputs.day is not None, "a per-date check runs for a partition"
    return inputs.day


def _schema(i: CheckInputs) -> tuple[date, checks.CheckOutcome]:
    return _partition(i), checks.report_schema(i.store, _partition(i))


def _completeness(i: CheckInputs) -> tuple[date, checks.CheckOutcome]:
    return _partition(i), quality_runs.completeness(i.store, _partition(i))


def _movement(i: CheckInputs) -> tuple[date, checks.CheckOutcome]:
    day = _partition(i)
    return day, quality_runs.movement(i.warehouse, day, i.report.movement_threshold_pct)


def _row_count(i: CheckInputs) -> tuple[date, checks.CheckOutcome]:
    day = _partition(i)
    return day, quality_runs.row_count(i.warehouse, day, i.report.row_count_threshold_pct)


def _freshness(i: CheckInputs) -> tuple[date, checks.CheckOutcome]:
    return quality_runs.freshness(i.warehouse, datetime.now(UTC), i.report.freshness_utc)


def _asset_check(
    asset: dg.AssetKey,
    name: str,
    rule: Rule,
    severity: dg.AssetCheckSeverity,
    description: str,
    partitions_def: dg.PartitionsDefinition | None,
    *,
    blocking: bool = False,
) -> dg.AssetChecksDefinition:
    """One asset check: run `rule`, then record and alert through `conclude_check`."""

    @dg.asset_check(
        asset=asset,
        name=name,
        blocking=blocking,
        partitions_def=partitions_def,
        description=description,
    )
    def _check(
        context: dg.AssetCheckExecutionContext,
        etl_config: EtlConfigResource,
        object_store: ObjectStoreResource,
        warehouse: WarehouseResource,
        alert: AlertResource,
    ) -> dg.AssetCheckResult:
        day = partition_date(context) if partitions_def is not None else None
        with warehouse.session() as wh:
            inputs = CheckInputs(object_store.open(), wh, etl_config.load().report, day)
            judged, outcome = rule(inputs)
            return conclude_check(
                context,
                asset=asset,
                name=name,
                report_date=judged,
                outcome=outcome,
                severity=severity,
                warehouse=wh,
                alert=alert,
            )

    return _check


def report_checks(partitions_def: dg.PartitionsDefinition) -> list[dg.AssetChecksDefinition]:
    """The checks of the report assets (all per report date, except freshness)."""
    error, warn = dg.AssetCheckSeverity.ERROR, dg.AssetCheckSeverity.WARN
    return [
        _asset_check(
            REPORT_KEY,
            "report_schema",
            _schema,
            error,
            "The staged report satisfies every rule of the report contract; blocks publishing "
            "when it does not.",
            partitions_def,
            blocking=True,
        ),
        _asset_check(
            REPORT_KEY,
            "completeness",
            _completeness,
            warn,
            "Every account each source listed made it into the report; names the gaps.",
            partitions_def,
        ),
        _asset_check(
            WAREHOUSE_KEY,
            "movement",
            _movement,
            warn,
            "No (accountUUID, Ccy) Total moved more than report.movement_threshold_pct percent "
            "since the previous day's published report.",
            partitions_def,
        ),
        _asset_check(
            WAREHOUSE_KEY,
            "row_count",
            _row_count,
            warn,
            "The row count moved at most report.row_count_threshold_pct percent against the "
            "previous day's published report.",
            partitions_def,
        ),
        _asset_check(
            WAREHOUSE_KEY,
            "freshness",
            _freshness,
            error,
            "Yesterday's report is published by report.freshness_utc (UTC). Runs on its own "
            "schedule at that time; not per partition, since it judges 'yesterday'.",
            None,
        ),
    ]
