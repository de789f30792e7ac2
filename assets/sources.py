"""Per-source assets: `<source>__raw_snapshot` -> `<source>__balances`.

One pair of assets per configured source, so a venue outage fails (and retries) only its own
assets: the other sources' snapshots still materialise, and the report names the gap. The
venue call carries a Dagster `RetryPolicy` (exponential backoff with jitter) and runs in a
per-venue concurrency pool.

Each source has ONE time budget (`report.source_timeout_seconds`) for all its retries, HTTP and
Dagster alike: it starts at the step's first attempt in the run, and a `SourceTimeout` is final.
"""

import time
from datetime import UTC, datetime

import dagster as dg

from assets.checks import conclude_check
from assets.partitions import partition_date
from assets.resources import EtlConfigResource, ObjectStoreResource, WarehouseResource
from etl_project.checks import CheckOutcome
from etl_project.config import ReportSettings, SourceLayout
from etl_project.errors import FinalVenueError
from etl_project.http import Deadline
from etl_project.stages import balances as balances_stage
from etl_project.stages import snapshot as snapshot_stage


def venue_retry(report: ReportSettings) -> dg.RetryPolicy:
    """Retries of a venue call: exponential backoff with jitter, sized by the config."""
    return dg.RetryPolicy(
        max_retries=report.venue_retries,
        delay=report.venue_retry_delay_seconds,
        backoff=dg.Backoff.EXPONENTIAL,
        jitter=dg.Jitter.PLUS_MINUS,
    )


def source_deadline(context: dg.AssetExecutionContext, budget_seconds: float) -> Deadline:
    """When this source's time budget ends in this run.

    It starts at the step's FIRST attempt, read back from the run's event log on a retry
    (which may run in another process), so Dagster's retries share the budget, never reset it.
    """
    start = time.time()
    if context.retry_number > 0:
        start = first_attempt_start(context) or start
    return Deadline.after(budget_seconds, start=start)


def first_attempt_start(context: dg.AssetExecutionContext) -> float | None:
    """Epoch seconds of the step's first attempt in this run.

    Only the first attempt logs STEP_START (retries log STEP_RESTARTED), and the step stats'
    `start_time` is that event's time. Without it, the run's start: earlier, so never longer.
    """
    step_key = context.get_step_execution_context().step.key
    stats = context.instance.get_run_step_stats(context.run_id, step_keys=[step_key])
    starts = [s.start_time for s in stats if s.step_key == step_key and s.start_time is not None]
    if starts:
        return min(starts)
    record = context.instance.get_run_record_by_id(context.run_id)
    return record.start_time if record is not None else None


#: Between a source's name and its stage in an asset key. The Dagster UI labels a graph node
#: with the key's LAST path component only, so `[source, "raw_snapshot"]` showed as
#: "raw_snapshot" on every source's node. A one-component key carries the source into the label,
#: and is what the step key (and so the CLI's failure line) already was: `<source>__raw_snapshot`.
KEY_SEPARATOR = "__"


def snapshot_key(source: str) -> dg.AssetKey:
    return dg.AssetKey(f"{source}{KEY_SEPARATOR}raw_snapshot")


def balances_key(source: str) -> dg.AssetKey:
    return dg.AssetKey(f"{source}{KEY_SEPARATOR}balances")


def source_assets(
    layout: SourceLayout, partitions_def: dg.PartitionsDefinition, report: ReportSettings
) -> list[dg.AssetsDefinition]:
    """The snapshot and balances assets of one configured source."""
    name = layout.name
    retry = venue_retry(report)

    @dg.asset(
        key=snapshot_key(name),
        partitions_def=partitions_def,
        group_name="sources",
        kinds={"python"},
        tags={"venue": layout.kind},
        retry_policy=retry,
        pool=f"venue_{layout.kind}",
        description=f"Verbatim venue responses of {name} ({layout.kind}) for the report date: "
        "fetched live inside the date's window, else replayed from the stored snapshot.",
    )
    def raw_snapshot(
        context: dg.AssetExecutionContext,
        etl_config: EtlConfigResource,
        object_store: ObjectStoreResource,
    ) -> dg.MaterializeResult:
        config = etl_config.load()
        deadline = source_deadline(context, config.report.source_timeout_seconds)
        try:
            outcome = snapshot_stage.take_snapshot(
                config.source(name),
                object_store.open(),
                partition_date(context),
                now=datetime.now(UTC),
                cutoff_hours=config.report.live_cutoff_hours,
                final_attempt=context.retry_number >= retry.max_retries,
                deadline=deadline,
            )
        except FinalVenueError as exc:
            # E.g. the budget is spent for this run: a retry would only find it spent again.
            raise dg.Failure(description=str(exc), allow_retries=False) from None
        if not outcome.ok:
            context.log.error(outcome.reason)
        return dg.MaterializeResult(
            metadata={
                "status": outcome.status,
                "reason": outcome.reason or "",
                "mode": outcome.details.get("mode", ""),
                "snapshot": outcome.details.get("snapshot_key", ""),
                "responses": outcome.details.get("responses", 0),
            }
        )

    @dg.asset(
        key=balances_key(name),
        deps=[snapshot_key(name)],
        partitions_def=partitions_def,
        group_name="sources",
        kinds={"python"},
        tags={"venue": layout.kind},
        check_specs=[
            dg.AssetCheckSpec(
                "source_delivered",
                asset=balances_key(name),
                description="The source delivered its balances.",
            )
        ],
        description=f"Canonical balances of {name}, validated (bad rows go to quarantine).",
    )
    def balances(
        context: dg.AssetExecutionContext,
        etl_config: EtlConfigResource,
        object_store: ObjectStoreResource,
        warehouse: WarehouseResource,
    ) -> dg.MaterializeResult:
        config = etl_config.load()
        report_date = partition_date(context)
        outcome = balances_stage.stage_balances(
            config.source(name), object_store.open(), report_date
        )
        details = outcome.details
        valid, quarantined = details.get("rows", 0), len(details.get("rejected", []))
        delivered = CheckOutcome(
            outcome.ok,
            f"{name}: delivered {valid + quarantined} rows ({valid} valid, {quarantined} "
            "quarantined; all-zero rows are dropped from the report)"
            if outcome.ok
            else outcome.reason or f"{name}: failed",
            {"reason": outcome.reason or "ok"},
        )
        with warehouse.session() as wh:
            # No alert of its own: the report's completeness check names every gap at once.
            check = conclude_check(
                context,
                asset=balances_key(name),
                name="source_delivered",
                report_date=report_date,
                outcome=delivered,
                severity=dg.AssetCheckSeverity.ERROR,
                warehouse=wh,
                alert=None,
            )
        return dg.MaterializeResult(
            metadata={
                "status": outcome.status,
                "reason": outcome.reason or "",
                "rows": details.get("rows", 0),
                "rejected_rows": len(details.get("rejected", [])),
                "accounts_received": details.get("accounts_received", 0),
                "accounts_failed": details.get("accounts_failed", 0),
            },
            check_results=[check],
        )

    return [raw_snapshot, balances]
