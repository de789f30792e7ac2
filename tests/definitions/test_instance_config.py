"""dagster.yaml, as the Dagster daemon reads it: run retries, one run per report date at a time
(the schedule and a backfill of the same date queue instead of mixing), per-venue pools and a
run queue read every second."""

from __future__ import annotations

import shutil
from pathlib import Path

import dagster as dg

REPO = Path(__file__).resolve().parents[2]


def test_dagster_yaml_limits_runs_per_date_and_calls_per_venue(tmp_path: Path) -> None:
    shutil.copy(REPO / "dagster.yaml", tmp_path / "dagster.yaml")
    instance = dg.DagsterInstance.from_config(str(tmp_path))
    try:
        assert type(instance.run_coordinator).__name__ == "QueuedRunCoordinator"
        # A run launched from the UI leaves the queue within a second (Dagster's default: 5 s).
        assert instance.run_coordinator.dequeue_interval_seconds == 1  # type: ignore[attr-defined]
        assert (instance.run_retries_enabled, instance.run_retries_max_retries) == (True, 2)
        # What the run queue daemon enforces (it reads the instance's concurrency config).
        config = instance.get_concurrency_config()
        queue = config.run_queue_config
        assert queue is not None
        assert queue.max_concurrent_runs == 4
        assert queue.tag_concurrency_limits == [
            {"key": "dagster/partition", "value": {"applyLimitPerUniqueValue": True}, "limit": 1}
        ]
        # Each venue asset runs in pool venue_<kind>: one call per venue at a time.
        assert config.pool_config.default_pool_limit == 1
    finally:
        instance.dispose()
