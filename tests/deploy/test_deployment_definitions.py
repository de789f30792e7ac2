"""The production code location and instance file, without starting anything: what
assets/deployment.py builds (Celery executor, backfill policy, multi-date steps) and that
deploy/dagster.yaml is a valid Dagster instance configuration with the project's limits.

A run over a date range goes through the same definitions in process (Dagster's in-process
executor instead of Celery): each date is published, with its own metadata, and each check is
one verdict for the range."""

from __future__ import annotations

import os
import shutil
import warnings
from datetime import date, timedelta
from pathlib import Path

import dagster as dg
import pytest

from etl_project.simulator import DEFAULT_KRAKEN_API_KEY, DEFAULT_KRAKEN_API_SECRET, Simulator
from etl_project.sinks.files import report_keys
from etl_project.sinks.object_store import open_store
from tests.deploy.stack import DEPLOY
from tests.integration.helpers import store_past_snapshots

DATES = [date(2026, 3, 1) + timedelta(days=i) for i in range(3)]
RANGE_START = "dagster/asset_partition_range_start"
RANGE_END = "dagster/asset_partition_range_end"


@pytest.fixture()
def config_path(simulator: Simulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("TEST_KRAKEN_KEY", DEFAULT_KRAKEN_API_KEY)
    monkeypatch.setenv("TEST_KRAKEN_SECRET", DEFAULT_KRAKEN_API_SECRET)
    monkeypatch.setenv("TEST_SAXO_TOKEN", simulator.config.saxo_access_token)
    path = tmp_path / "config.yaml"
    path.write_text(
        f"storage: {tmp_path / 'lake'}\n"
        f"warehouse: duckdb:///{tmp_path / 'wh.duckdb'}\n"
        "sources:\n"
        "  - name: kraken_main\n"
        "    kind: kraken_futures\n"
        f"    base_url: {simulator.kraken_base_url}\n"
        "    api_key: ${TEST_KRAKEN_KEY}\n"
        "    api_secret: ${TEST_KRAKEN_SECRET}\n"
        "  - name: saxo_main\n"
        "    kind: saxo\n"
        f"    base_url: {simulator.saxo_base_url}\n"
        "    access_token: ${TEST_SAXO_TOKEN}\n"
        "report:\n"
        "  start_date: '2026-01-01'\n"
        "  venue_retries: 0\n"
        "  venue_retry_delay_seconds: 0\n",
        encoding="utf-8",
    )
    monkeypatch.setenv("ETL_CONFIG", str(path))
    return path


def _defs(policy: str | None = None) -> dg.Definitions:
    from assets.deployment import backfill_policy, deployment_definitions

    return deployment_definitions(os.environ["ETL_CONFIG"], backfill_policy(policy))


def test_every_job_runs_on_celery_with_single_run_backfills(config_path: Path) -> None:
    from assets.deployment import defs

    loaded = defs()
    job = loaded.resolve_job_def("daily_settlement_report")
    assert job.executor_def.name == "celery"
    assert job.backfill_policy == dg.BackfillPolicy.single_run()
    assert loaded.resolve_implicit_global_asset_job_def().executor_def.name == "celery"
    graph = loaded.resolve_asset_graph()
    pools = {node.key.to_user_string(): node.pools for node in graph.asset_nodes}
    assert pools["kraken_main__raw_snapshot"] == {"venue_kraken_futures"}
    assert pools["saxo_main__raw_snapshot"] == {"venue_saxo"}
    assert defs() is loaded  # built once per config version (each Celery step loads it)


@pytest.mark.parametrize(
    ("setting", "expected"),
    [
        ("per-date", dg.BackfillPolicy.multi_run(max_partitions_per_run=1)),  # a run per date
        ("10", dg.BackfillPolicy.multi_run(max_partitions_per_run=10)),
        ("single-run", dg.BackfillPolicy.single_run()),
    ],
)
def test_backfill_policy_setting(
    config_path: Path, setting: str, expected: dg.BackfillPolicy | None
) -> None:
    job = _defs(setting).resolve_job_def("daily_settlement_report")
    assert job.backfill_policy == expected


def test_bad_backfill_policy_is_named() -> None:
    from assets.deployment import backfill_policy

    with pytest.raises(ValueError, match="ETL_BACKFILL_POLICY='weekly'"):
        backfill_policy("weekly")


def test_a_range_run_publishes_each_date_with_its_own_metadata(config_path: Path) -> None:
    for source in ("kraken_main", "saxo_main"):
        store_past_snapshots(config_path, DATES, source=source)
    job = (
        _defs().resolve_job_def("daily_settlement_report").with_executor_def(dg.in_process_executor)
    )
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=dg.PreviewWarning)
        result = job.execute_in_process(
            tags={RANGE_START: DATES[0].isoformat(), RANGE_END: DATES[-1].isoformat()},
            instance=dg.DagsterInstance.ephemeral(),
            raise_on_error=False,
        )
    assert result.success, [e.message for e in result.all_events if e.is_step_failure]

    store = open_store(str(config_path.parent / "lake"))
    files = {}
    for event in result.get_asset_materialization_events():
        materialization = event.materialization
        if materialization.asset_key == dg.AssetKey("settlement_balance_files"):
            files[materialization.partition] = materialization.metadata
    assert sorted(files) == [d.isoformat() for d in DATES]
    for day in DATES:
        metadata = files[day.isoformat()]
        assert metadata["run_id"].value == result.run_id
        assert metadata["rows"].value > 0
        assert store.get(report_keys(day)["csv"])  # published

    checks = {e.check_name: e for e in result.get_asset_check_evaluations()}
    assert checks["report_schema"].passed
    assert checks["report_schema"].description == f"passed on all {len(DATES)} report dates"
    assert checks["report_schema"].metadata["failed_dates"].value == "none"


def test_instance_file_is_valid_and_sets_the_limits(tmp_path: Path) -> None:
    from dagster._core.instance.config import dagster_instance_config

    shutil.copy(DEPLOY / "dagster.yaml", tmp_path / "dagster.yaml")
    config, _ = dagster_instance_config(str(tmp_path))
    assert set(config["storage"]) == {"postgres"}
    postgres = config["storage"]["postgres"]["postgres_db"]
    assert {k: v for k, v in postgres.items() if isinstance(v, dict)} == {
        "hostname": {"env": "DAGSTER_PG_HOST"},
        "port": {"env": "DAGSTER_PG_PORT"},
        "db_name": {"env": "DAGSTER_PG_DB"},
        "username": {"env": "DAGSTER_PG_USER"},
        "password": {"env": "DAGSTER_PG_PASSWORD"},
    }  # credentials only from the environment
    assert config["run_coordinator"]["class"] == "QueuedRunCoordinator"
    limits = config["concurrency"]["runs"]["tag_concurrency_limits"]
    per_date = {"key": "dagster/partition", "value": {"applyLimitPerUniqueValue": True}, "limit": 1}
    assert per_date in limits
    assert config["concurrency"]["pools"]["default_limit"] == 1
    assert config["run_retries"]["enabled"] and config["run_retries"]["max_retries"] > 0
    assert config["run_monitoring"]["enabled"]
    assert config["run_monitoring"]["max_runtime_seconds"] > 0
