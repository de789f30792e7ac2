"""The report assets: stage + audit (`settlement_balance_report`), then publish to files and
the warehouse. The blocking schema check sits between stage and publish."""

from collections.abc import Iterator, Sequence

import dagster as dg

from assets.partitions import partition_date
from assets.resources import EtlConfigResource, ObjectStoreResource, WarehouseResource
from etl_project.day_page.write import write_day_page
from etl_project.report.batches import report_batches
from etl_project.report.summary import markdown_table, totals_by
from etl_project.sinks.account_registry import expected_accounts
from etl_project.stages import publish
from etl_project.stages import report as report_stage

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
        warehouse: WarehouseResource,
    ) -> dg.MaterializeResult:
        config = etl_config.load()
        store = object_store.open()
        report_date = partition_date(context)
        with warehouse.session() as wh, wh.transaction() as conn:
            expected = {
                source.name: expected_accounts(
                    conn, source.name, report_date, config.report.account_lookback_days
                )
                for source in config.sources
            }
        outcome = report_stage.stage_report(config, store, report_date, context.run_id, expected)
        if not outcome.ok:
            raise dg.Failure(description=outcome.reason)
        details = outcome.details
        gaps = details["gaps"]
        if gaps and config.report.on_source_failure == "fail":
            raise dg.Failure(
                description="report incomplete: " + "; ".join(g["reason"] for g in gaps)
            )
        with report_stage.staged_report_file(store, report_date) as (parquet, _):
            # Read batch by batch, 3 columns only: memory is a batch, not the report.
            totals = totals_by(report_batches(parquet, ["venue", "Ccy", "Total"]), ["venue", "Ccy"])
        return dg.MaterializeResult(
            metadata={
                "rows": details["rows"],
                "completeness": details["completeness"],
                "gaps": dg.MetadataValue.md(
                    "\n".join(
                        f"- **{g['source']}**: "
                        + ("" if g["account_id"] == "*" else f"{g.get('account')}: ")
                        + g["reason"]
                        for g in gaps
                    )
                    or "none"
                ),
                "rejected_rows": len(details["rejected"]),
                "rows_by_source": dg.MetadataValue.md(
                    markdown_table(report_stage.accounting_rows(details))
                ),
                "totals_by_venue_and_ccy": dg.MetadataValue.md(markdown_table(totals)),
            }
        )

    @dg.multi_asset(
        specs=[
            dg.AssetSpec(
                FILES_KEY,
                deps=[REPORT_KEY],
                group_name="report",
                kinds={"csv", "parquet"},
                description="CSV, JSON and Parquet of the audited report in the object store "
                "(every version kept under versions/run=<run_id>/).",
            ),
            dg.AssetSpec(
                WAREHOUSE_KEY,
                deps=[REPORT_KEY],
                group_name="report",
                kinds={"sql"},
                description="Table settlement_balance_report with the date's versions, history "
                "and restatements, replaced in one transaction.",
            ),
        ],
        name="publish_settlement_balance",
        partitions_def=partitions_def,
        description="Publish the date as one unit: files and warehouse, one commit point.",
    )
    def publish_settlement_balance(
        context: dg.AssetExecutionContext,
        object_store: ObjectStoreResource,
        warehouse: WarehouseResource,
    ) -> Iterator[dg.MaterializeResult]:
        report_date = partition_date(context)
        store = object_store.open()
        with warehouse.session() as wh:
            try:
                published = publish.publish_report(store, wh, report_date)
            except publish.PublishError as exc:
                raise dg.Failure(description=str(exc)) from None
            try:  # after the commit: the page reads what was published
                day_page = store.uri(write_day_page(wh.engine, store, report_date))
            except Exception as exc:  # a picture is never a reason to fail a published date
                context.log.warning(f"day page of {report_date} not written: {exc}")
                day_page = None
        common: dict[str, dg.RawMetadataValue] = {
            "run_id": published.run_id,
            "rows": published.rows,
            "completeness": published.completeness,
        }
        yield dg.MaterializeResult(
            asset_key=FILES_KEY,
            metadata={
                **common,
                **{fmt: dg.MetadataValue.path(uri) for fmt, uri in published.uris.items()},
                "version": dg.MetadataValue.path(published.version_prefix),
                **({"day_page": dg.MetadataValue.path(day_page)} if day_page else {}),
            },
        )
        restatement = published.restatement
        yield dg.MaterializeResult(
            asset_key=WAREHOUSE_KEY,
            metadata={
                **common,
                "rejected_rows": published.rejected_rows,
                "table": "settlement_balance_report",
                "previous_run_id": restatement.previous_run_id or "",
                "restated_rows": restatement.rows,
                "restatements": dg.MetadataValue.md(publish.restatement_markdown(published)),
            },
        )

    return [settlement_balance_report, publish_settlement_balance]
