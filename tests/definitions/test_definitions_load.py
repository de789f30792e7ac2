"""The code location loads with every job, schedule, sensor and check resolved; the schedules
and the alert sensor evaluate as the daemon evaluates them."""

from __future__ import annotations

import warnings
from datetime import UTC, datetime
from pathlib import Path

import dagster as dg
import pytest

from assets.alerting import ASSET_GRAPH_JOB, FAILURE_SENSOR_NAME
from assets.definitions import DEFAULT_CONFIG, FRESHNESS_JOB_NAME, JOB_NAME, build_definitions
from assets.schedules import FRESHNESS_SCHEDULE_NAME
from etl_project.errors import ConfigError
from tests.conftest import Receiver

REPO = Path(__file__).resolve().parents[2]


def test_workspace_module_loads_demo_config() -> None:
    import assets

    defs = assets.defs()
    defs.resolve_all_job_defs()
    job = defs.resolve_job_def(JOB_NAME)
    keys = {node.key.to_user_string() for node in defs.resolve_asset_graph().asset_nodes}
    sources = ["kraken_demo", "saxo_demo", "platform_demo", "settlement_platform_demo"]
    assert keys == {
        *(f"{s}__{stage}" for s in sources for stage in ("raw_snapshot", "balances")),
        "settlement_balance_report",
        "settlement_balance_files",
        "settlement_balance_warehouse",
    }
    assert job.partitions_def is not None
    checks = {
        (key.asset_key.to_user_string(), key.name)
        for key in defs.resolve_asset_graph().asset_check_keys
    }
    assert checks == {
        *((f"{s}__balances", "source_delivered") for s in sources),
        ("settlement_balance_report", "report_schema"),
        ("settlement_balance_report", "completeness"),
        ("settlement_balance_warehouse", "movement"),
        ("settlement_balance_warehouse", "row_count"),
        ("settlement_balance_warehouse", "freshness"),
    }
    # The daily job runs every per-date check; freshness has its own job and schedule.
    assert {k.name for k in job.asset_layer.asset_graph.asset_check_keys} == checks_without(
        checks, "freshness"
    )
    freshness_job = defs.resolve_job_def(FRESHNESS_JOB_NAME)
    assert freshness_job.partitions_def is None
    assert {k.name for k in freshness_job.asset_layer.asset_graph.asset_check_keys} == {"freshness"}
    assert [s.name for s in defs.get_repository_def().sensor_defs] == [FAILURE_SENSOR_NAME]


def test_schedule_requests_yesterday() -> None:
    import assets

    schedule = assets.defs().resolve_schedule_def("daily_settlement_report_schedule")
    assert schedule.cron_schedule == "0 2 * * *"
    assert schedule.execution_timezone == "UTC"
    context = dg.build_schedule_context(
        scheduled_execution_time=datetime(2026, 11, 21, 2, 0, tzinfo=UTC),
        repository_def=assets.defs().get_repository_def(),
    )
    requests = schedule.evaluate_tick(context).run_requests
    assert requests is not None and len(requests) == 1
    assert requests[0].partition_key == "2026-11-20"


def checks_without(checks: set[tuple[str, str]], name: str) -> set[str]:
    return {check for _, check in checks if check != name}


def test_freshness_schedule_runs_the_freshness_job_at_the_deadline() -> None:
    import assets

    schedule = assets.defs().resolve_schedule_def(FRESHNESS_SCHEDULE_NAME)
    assert (schedule.cron_schedule, schedule.execution_timezone) == ("0 6 * * *", "UTC")
    assert schedule.job_name == FRESHNESS_JOB_NAME
    context = dg.build_schedule_context(
        scheduled_execution_time=datetime(2026, 11, 21, 6, 0, tzinfo=UTC),
        repository_def=assets.defs().get_repository_def(),
    )
    requests = schedule.evaluate_tick(context).run_requests
    assert requests is not None and len(requests) == 1
    assert requests[0].partition_key is None


@pytest.mark.parametrize(
    ("job_name", "shown"),
    [
        (JOB_NAME, JOB_NAME),
        # Launched from the asset graph: Dagster names the run after its implicit asset job.
        (ASSET_GRAPH_JOB, f"{ASSET_GRAPH_JOB} (assets materialised from the asset graph)"),
    ],
)
def test_failure_sensor_posts_a_failed_runs_reason(
    tmp_path: Path, webhook: Receiver, job_name: str, shown: str
) -> None:
    """The sensor as the daemon runs it: a tick sets the cursor, a run fails, the next tick
    posts the run's job and the failed step's one-line reason to the webhook. Every job of the
    location is watched, runs launched from the asset graph (`__ASSET_JOB`) included."""
    path = tmp_path / "c.yaml"
    path.write_text(
        f"storage: {tmp_path / 'lake'}\n"
        f"warehouse: duckdb:///{tmp_path / 'wh.duckdb'}\n"
        "sources:\n  - name: kraken_main\n    kind: kraken_futures\n"
        "    base_url: http://127.0.0.1:9/derivatives/api/v3\n"
        "    api_key: k\n    api_secret: c2VjcmV0\n"
        "report:\n  venue_retries: 0\n"
    )
    defs = build_definitions(path)
    sensor = defs.resolve_sensor_def(FAILURE_SENSOR_NAME)
    job = defs.get_repository_def().get_job(job_name)
    assets = list(defs.resolve_asset_graph().materializable_asset_keys)
    with dg.instance_for_test() as instance:
        first = sensor.evaluate_tick(
            dg.build_sensor_context(instance=instance, definitions=defs, resources=defs.resources)
        )
        run = job.execute_in_process(
            partition_key="2026-02-01",
            instance=instance,
            raise_on_error=False,
            asset_selection=assets if job_name == ASSET_GRAPH_JOB else None,
        )
        assert not run.success
        assert webhook.posts == []
        sensor.evaluate_tick(
            dg.build_sensor_context(
                instance=instance,
                definitions=defs,
                resources=defs.resources,
                cursor=first.cursor,
            )
        )
    assert webhook.texts() == [
        f":rotating_light: Run failed: {shown} for 2026-02-01 (run {run.run_id})\n"
        "• settlement_balance_report: no source produced balances: kraken_main: no stored "
        "snapshot for 2026-02-01 and its live window closed at 2026-02-02T06:00:00+00:00"
    ]


def test_every_job_runs_its_steps_in_the_run_process() -> None:
    """The daily job, the freshness job and the asset graph's implicit job all execute their
    steps in threads of the run worker (as the CLI does), never a process per step."""
    import assets

    jobs = assets.defs().get_repository_def().get_all_jobs()
    assert {job.name for job in jobs} >= {JOB_NAME, FRESHNESS_JOB_NAME, ASSET_GRAPH_JOB}
    assert {job.name: job.executor_def.name for job in jobs} == {
        job.name: "threaded_in_process" for job in jobs
    }


def test_definitions_load_without_warnings() -> None:
    """Loading the code location (the code server, each run worker, the daemon do) warns of
    nothing: no preview or deprecation warning in every `dagster dev` log."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        build_definitions(DEFAULT_CONFIG)
    assert [f"{w.category.__name__}: {w.message}" for w in caught] == []


def test_workspace_yaml_points_at_the_code_location() -> None:
    text = (REPO / "workspace.yaml").read_text()
    assert "module_name: assets" in text


def test_unknown_kind_is_refused_at_load(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("sources:\n  - name: x\n    kind: nope\n")
    with pytest.raises(ConfigError, match="unknown kind 'nope'"):
        build_definitions(path)


def test_importing_the_code_location_reads_no_config(monkeypatch: pytest.MonkeyPatch) -> None:
    """Definitions are built when Dagster loads the location, from ETL_CONFIG read then: an
    import (the CLI's, a test's, an installed wheel's) never touches a config file."""
    import importlib

    import assets.definitions
    from etl_project.errors import ConfigError

    monkeypatch.setenv("ETL_CONFIG", "/nonexistent.yaml")
    module = importlib.reload(assets.definitions)
    with pytest.raises(ConfigError, match=r"/nonexistent\.yaml"):
        module.defs()
    monkeypatch.delenv("ETL_CONFIG")
    assert module.DEFAULT_CONFIG.is_file()  # the demo config ships inside the package
    assert module.defs().resolve_job_def(JOB_NAME).name == JOB_NAME
