"""The code location: assets built from the config's source list, resources, checks, the two
schedules (report, freshness) and the run-failure alert sensor.

The config path comes from `ETL_CONFIG` (default: the demo config). Only names and kinds are
read here; secrets are resolved by the resources when a run starts.

Every run of this location (the schedule's, a UI launch, a backfill's) executes its steps in
threads of its one run-worker process (`threaded_executor`), as `etl-balances run` does: Dagster's
default executor starts a process per step, each loading this code location again, which made a
UI run of one date ~10x slower than the CLI's.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import dagster as dg

from assets.alerting import AlertResource, run_failure_alert
from assets.checks import FRESHNESS_CHECK, report_checks
from assets.partitions import daily_partitions
from assets.report import report_assets
from assets.resources import EtlConfigResource, ObjectStoreResource, WarehouseResource
from assets.schedules import daily_schedule, freshness_schedule
from assets.sources import balances_key, source_assets
from assets.threaded_executor import threaded_executor
from etl_project.config import read_layout

JOB_NAME = "daily_settlement_report"
FRESHNESS_JOB_NAME = "settlement_report_freshness"
DEFAULT_CONFIG = Path(__file__).resolve().parent / "demo.yaml"  # package data


def build_definitions(config_path: str | os.PathLike[str]) -> dg.Definitions:
    """All definitions for one config file (tests build their own from a temp config)."""
    layout = read_layout(config_path)
    partitions = daily_partitions(layout.report.start_date)
    all_assets: list[dg.AssetsDefinition] = []
    for source in layout.sources:
        all_assets.extend(source_assets(source, partitions, layout.report))
    all_assets.extend(report_assets([balances_key(s.name) for s in layout.sources], partitions))
    with warnings.catch_warnings():
        # Per-date checks need `partitions_def` on an asset check, a Dagster "preview" feature
        # (PreviewWarning at every load: code server, run worker, daemon). Known and chosen
        # (docs/ui.md), so not repeated in every operator's `dagster dev` output.
        warnings.filterwarnings(
            "ignore",
            message="Specifying a partitions_def on an AssetCheckSpec",
            category=dg.PreviewWarning,
        )
        checks = report_checks(partitions)
    freshness = dg.AssetSelection.checks(FRESHNESS_CHECK)
    # Partitioned by report date: every asset it selects is (the freshness check, the only
    # unpartitioned definition, has its own job).
    job = dg.define_asset_job(
        JOB_NAME,
        selection=dg.AssetSelection.all() - freshness,
        description="Snapshot every source, build, audit and publish.",
    )
    freshness_job = dg.define_asset_job(
        FRESHNESS_JOB_NAME,
        selection=freshness,
        description="Is yesterday's report published? (runs at report.freshness_utc)",
    )
    return dg.Definitions(
        assets=all_assets,
        asset_checks=checks,
        jobs=[job, freshness_job],
        schedules=[
            daily_schedule(job, layout.report.schedule_utc),
            freshness_schedule(freshness_job, layout.report.freshness_utc),
        ],
        sensors=[run_failure_alert],
        # Every job's default, the implicit asset job's (`__ASSET_JOB`) included.
        executor=threaded_executor,
        resources={
            "etl_config": EtlConfigResource(config_path=str(config_path)),
            "object_store": ObjectStoreResource(location=layout.storage),
            "warehouse": WarehouseResource(url=layout.warehouse),
            "alert": AlertResource(),
        },
    )


@dg.definitions
def defs() -> dg.Definitions:
    """The code location's definitions, built when Dagster loads it (not at import): the config
    comes from `ETL_CONFIG`, read only here, else the demo config shipped with the package."""
    return build_definitions(os.environ.get("ETL_CONFIG") or DEFAULT_CONFIG)
