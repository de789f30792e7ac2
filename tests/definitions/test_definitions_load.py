"""The code location loads with every job, schedule and check resolved."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import dagster as dg
import pytest

from assets.definitions import JOB_NAME, build_definitions
from etl_project.errors import ConfigError

REPO = Path(__file__).resolve().parents[2]


def test_workspace_module_loads_demo_config() -> None:
    import assets

    defs = assets.defs
    defs.resolve_all_job_defs()
    job = defs.resolve_job_def(JOB_NAME)
    keys = {node.key.to_user_string() for node in defs.resolve_asset_graph().asset_nodes}
    sources = ["kraken_demo", "saxo_demo", "platform_demo", "settlement_platform_demo"]
    assert keys == {
        *(f"{s}/{stage}" for s in sources for stage in ("raw_snapshot", "balances")),
        "settlement_balance_report",
        "settlement_balance_files",
        "settlement_balance_warehouse",
    }
    assert job.partitions_def is not None
    checks = {key.name for key in defs.resolve_asset_graph().asset_check_keys}
    assert {"report_schema", "source_delivered"} <= checks


def test_schedule_requests_yesterday() -> None:
    import assets

    schedule = assets.defs.resolve_schedule_def("daily_settlement_report_schedule")
    assert schedule.cron_schedule == "0 2 * * *"
    assert schedule.execution_timezone == "UTC"
    context = dg.build_schedule_context(
        scheduled_execution_time=datetime(2026, 11, 21, 2, 0, tzinfo=UTC),
        repository_def=assets.defs.get_repository_def(),
    )
    requests = schedule.evaluate_tick(context).run_requests
    assert requests is not None and len(requests) == 1
    assert requests[0].partition_key == "2026-11-20"


def test_workspace_yaml_points_at_the_code_location() -> None:
    text = (REPO / "workspace.yaml").read_text()
    assert "module_name: assets" in text


def test_unknown_kind_is_refused_at_load(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("sources:\n  - name: x\n    kind: nope\n")
    with pytest.raises(ConfigError, match="unknown kind 'nope'"):
        build_definitions(path)
