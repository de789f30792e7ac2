"""Asset checks. Each wraps a plain function of `etl_project.quality_runs`, records its outcome
in the warehouse's `settlement_check_results` (what BI reads) and, when it fails, posts an
alert. `report_schema` is blocking: when it fails nothing is published."""

from datetime import UTC, date, datetime
from typing import Any

import dagster as dg

from assets.alerting import AlertResource
from assets.partitions import partition_date
from assets.report import REPORT_KEY, WAREHOUSE_KEY
from assets.resources import EtlConfigResource, ObjectStoreResource, WarehouseResource
from etl_project import checks, quality_runs
from etl_project.alerts import AlertError, format_check_failure

FRESHNESS_CHECK = dg.AssetCheckKey(WAREHOUSE_KEY, "freshness")


def conclude_check(
    context: dg.AssetCheckExecutionContext | dg.AssetExecutionContext,
    *,
    asset: dg.AssetKey,
    name: str,
    report_date: date,
    outcome: checks.CheckOutcome,
    severity: dg.AssetCheckSeverity,
    warehouse: WarehouseResource,
    alert: AlertResource | None,
) -> dg.AssetCheckResult:
    """Record `outcome` in the warehouse, alert on failure, and return it as Dagster's result.

    An alert that cannot be delivered is logged and shown in the check's metadata; it never
    turns a data verdict into an error."""
    wh = warehouse.open()
    try:
        quality_runs.record(
            wh, report_date, asset.to_user_string(), name, outcome, context.run.run_id
        )
    finally:
        wh.dispose()
    delivery = "not needed"
    if not outcome.passed and alert is not None:
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


def report_checks(partitions_def: dg.PartitionsDefinition) -> list[dg.AssetChecksDefinition]:
    """The checks of the report assets (all per report date, except freshness)."""

    @dg.asset_check(
        asset=REPORT_KEY,
        blocking=True,
        partitions_def=partitions_def,
        description="The staged report satisfies every rule of the report contract; blocks "
        "publishing when it does not.",
    )
    def report_schema(
        context: dg.AssetCheckExecutionContext,
        object_store: ObjectStoreResource,
        warehouse: WarehouseResource,
        alert: AlertResource,
    ) -> dg.AssetCheckResult:
        day = partition_date(context)
        return conclude_check(
            context,
            asset=REPORT_KEY,
            name="report_schema",
            report_date=day,
            outcome=checks.report_schema(object_store.open(), day),
            severity=dg.AssetCheckSeverity.ERROR,
            warehouse=warehouse,
            alert=alert,
        )

    @dg.asset_check(
        asset=REPORT_KEY,
        partitions_def=partitions_def,
        description="Every account each source listed made it into the report; names the gaps.",
    )
    def completeness(
        context: dg.AssetCheckExecutionContext,
        object_store: ObjectStoreResource,
        warehouse: WarehouseResource,
        alert: AlertResource,
    ) -> dg.AssetCheckResult:
        day = partition_date(context)
        return conclude_check(
            context,
            asset=REPORT_KEY,
            name="completeness",
            report_date=day,
            outcome=quality_runs.completeness(object_store.open(), day),
            severity=dg.AssetCheckSeverity.WARN,
            warehouse=warehouse,
            alert=alert,
        )

    @dg.asset_check(
        asset=WAREHOUSE_KEY,
        partitions_def=partitions_def,
        description="No (accountUUID, Ccy) Total moved more than report.movement_threshold_pct "
        "percent since the previous day's published report.",
    )
    def movement(
        context: dg.AssetCheckExecutionContext,
        etl_config: EtlConfigResource,
        warehouse: WarehouseResource,
        alert: AlertResource,
    ) -> dg.AssetCheckResult:
        day, threshold = partition_date(context), etl_config.load().report.movement_threshold_pct
        wh = warehouse.open()
        try:
            outcome = quality_runs.movement(wh, day, threshold)
        finally:
            wh.dispose()
        return conclude_check(
            context,
            asset=WAREHOUSE_KEY,
            name="movement",
            report_date=day,
            outcome=outcome,
            severity=dg.AssetCheckSeverity.WARN,
            warehouse=warehouse,
            alert=alert,
        )

    @dg.asset_check(
        asset=WAREHOUSE_KEY,
        partitions_def=partitions_def,
        description="The row count moved at most report.row_count_threshold_pct percent "
        "against the previous day's published report.",
    )
    def row_count(
        context: dg.AssetCheckExecutionContext,
        etl_config: EtlConfigResource,
        warehouse: WarehouseResource,
        alert: AlertResource,
    ) -> dg.AssetCheckResult:
        day, threshold = partition_date(context), etl_config.load().report.row_count_threshold_pct
        wh = warehouse.open()
        try:
            outcome = quality_runs.row_count(wh, day, threshold)
        finally:
            wh.dispose()
        return conclude_check(
            context,
            asset=WAREHOUSE_KEY,
            name="row_count",
            report_date=day,
            outcome=outcome,
            severity=dg.AssetCheckSeverity.WARN,
            warehouse=warehouse,
            alert=alert,
        )

    @dg.asset_check(
        asset=WAREHOUSE_KEY,
        description="Yesterday's report is published by report.freshness_utc (UTC). Runs on "
        "its own schedule at that time; not per partition, since it judges 'yesterday'.",
    )
    def freshness(
        context: dg.AssetCheckExecutionContext,
        etl_config: EtlConfigResource,
        warehouse: WarehouseResource,
        alert: AlertResource,
    ) -> dg.AssetCheckResult:
        deadline = etl_config.load().report.freshness_utc
        wh = warehouse.open()
        try:
            day, outcome = quality_runs.freshness(wh, datetime.now(UTC), deadline)
        finally:
            wh.dispose()
        return conclude_check(
            context,
            asset=WAREHOUSE_KEY,
            name="freshness",
            report_date=day,
            outcome=outcome,
            severity=dg.AssetCheckSeverity.ERROR,
            warehouse=warehouse,
            alert=alert,
        )

    return [report_schema, completeness, movement, row_count, freshness]
