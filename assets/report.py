"""The report assets: stage + audit (`settlement_balance_report`), then publish to files and
the warehouse. The blocking schema check sits between stage and publish."""

from collections.abc import Sequence

import dagster as dg

from assets.partitions import partition_date
from assets.resources import EtlConfigResource, ObjectStoreResource, WarehouseResource
from etl_project import pipeline, publish
from etl_project.report.summary import markdown_table, totals_by

REPORT_KEY = dg.AssetKey("settlement_balance_report")
FILES_KEY = dg.AssetKey("settlement_balance_files")
WAREHOUSE_KEY = dg.AssetKey("settlement_balance_warehouse")


def report_assets(
    balances_keys: Sequence[dg.AssetKey], partitions_def: dg.PartitionsDefinition
) -> list[dg.AssetsDefinition]:
    @dg.asset(
        key=REPORT_KEY,
        deps=list(balances_keys),
        partitions_def=partitions_def,
        group_name="report",
        kinds={"python"},
        description="The day's settlement balance report, staged and not yet published.",
    )
    def settlement_balance_report(
        context: dg.AssetExecutionContext,
        etl_config: EtlConfigResource,
        object_store: ObjectStoreResource,
    ) -> dg.MaterializeResult:
        config = etl_config.load()
        store = object_store.open()
        report_date = partition_date(context)
        outcome = pipeline.stage_report(config, store, report_date, context.run_id)
        if not outcome.ok:
            raise dg.Failure(description=outcome.reason)
        details = outcome.details
        gaps = details["gaps"]
        if gaps and config.report.on_source_failure == "fail":
            raise dg.Failure(
                description="report incomplete: " + "; ".join(g["reason"] for g in gaps)
            )
        report, _ = pipeline.staged_report(store, report_date)
        return dg.MaterializeResult(
            metadata={
                "rows": details["rows"],
                "completeness": details["completeness"],
                "gaps": dg.MetadataValue.md(
                    "\n".join(f"- **{g['source']}**: {g['reason']}" for g in gaps) or "none"
                ),
                "rejected_rows": len(details["rejected"]),
                "totals_by_venue_and_ccy": dg.MetadataValue.md(
                    markdown_table(totals_by(report, ["venue", "Ccy"]))
                ),
            }
        )

    @dg.asset(
        key=FILES_KEY,
        deps=[REPORT_KEY],
        partitions_def=partitions_def,
        group_name="report",
        kinds={"csv", "parquet"},
        description="CSV, JSON and Parquet of the audited report in the object store.",
    )
    def settlement_balance_files(
        context: dg.AssetExecutionContext, object_store: ObjectStoreResource
    ) -> dg.MaterializeResult:
        store = object_store.open()
        uris = publish.publish_files(store, partition_date(context))
        details = pipeline.staged_details(store, partition_date(context))
        return dg.MaterializeResult(
            metadata={
                "rows": details["rows"],
                "completeness": details["completeness"],
                **{fmt: dg.MetadataValue.path(uri) for fmt, uri in uris.items()},
            }
        )

    @dg.asset(
        key=WAREHOUSE_KEY,
        deps=[REPORT_KEY],
        partitions_def=partitions_def,
        group_name="report",
        kinds={"sql"},
        description="Table settlement_balance_report: the date's rows replaced in one transaction.",
    )
    def settlement_balance_warehouse(
        context: dg.AssetExecutionContext,
        object_store: ObjectStoreResource,
        warehouse: WarehouseResource,
    ) -> dg.MaterializeResult:
        store = object_store.open()
        wh = warehouse.open()
        try:
            rows = publish.publish_warehouse(wh, store, partition_date(context))
        finally:
            wh.dispose()
        details = pipeline.staged_details(store, partition_date(context))
        return dg.MaterializeResult(
            metadata={
                "rows": rows,
                "completeness": details["completeness"],
                "rejected_rows": len(details["rejected"]),
                "table": "settlement_balance_report",
            }
        )

    return [settlement_balance_report, settlement_balance_files, settlement_balance_warehouse]
