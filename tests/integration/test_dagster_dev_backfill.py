"""`dagster dev` as an operator uses it: the UI's view of the code location, and a UI backfill.

A real `dagster dev` (webserver + daemon + code server) runs against a temp DAGSTER_HOME holding
this repo's dagster.yaml (queued runs, tag limits, pools) and a config pointed at the venue
simulator. Everything is asked and launched through the GraphQL endpoint the UI uses; the
daemon, not the test, turns the backfill into runs. Past dates must replay stored snapshots.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import dagster as dg
import pytest

from assets.runner import run_report
from etl_project.config import load_config
from etl_project.report.serialise import read_csv_rows
from etl_project.simulator import (
    DEFAULT_KRAKEN_API_KEY,
    DEFAULT_KRAKEN_API_SECRET,
    Simulator,
    SimulatorConfig,
)
from etl_project.sinks.files import report_keys
from etl_project.sinks.object_store import ObjectStore, open_store
from tests.conftest import free_port
from tests.integration.dagster_dev import (
    BACKFILL_TERMINAL,
    LAUNCH_BACKFILL,
    DagsterDev,
    dagster_dev,
)
from tests.integration.helpers import store_past_snapshots, write_config

REPO = Path(__file__).resolve().parents[2]
LOCATION = "settlement_balances"
JOB = "daily_settlement_report"
SCHEDULE = "daily_settlement_report_schedule"
REPORT = "settlement_balance_report"
WAREHOUSE = "settlement_balance_warehouse"
GRAPH_ASSETS = [
    "kraken_main__raw_snapshot",
    "kraken_main__balances",
    REPORT,
    "settlement_balance_files",
    WAREHOUSE,
]
CHECKS = {
    ("kraken_main__balances", "source_delivered"),
    (REPORT, "report_schema"),
    (REPORT, "completeness"),
    (WAREHOUSE, "movement"),
    (WAREHOUSE, "row_count"),
    (WAREHOUSE, "freshness"),
}
SCHEDULES = {
    SCHEDULE: JOB,
    "settlement_report_freshness_schedule": "settlement_report_freshness",
}
SENSORS = ["settlement_run_failure_alert"]
PAST = [date(2026, 3, 1), date(2026, 3, 2), date(2026, 3, 3)]
READY_TIMEOUT = 120.0
# The backfill daemon wakes every 30 s (DEFAULT_DAEMON_INTERVAL_SECONDS in dagster 1.13's
# dagster/_daemon/backfill.py; no setting or env var), so a backfill takes at least two ticks:
# one to submit the runs, one to see them finished. The queued run coordinator dequeues every 5 s.
BACKFILL_TIMEOUT = 240.0

DEFINITIONS_QUERY = """
query Definitions($selector: RepositorySelector!) {
  repositoryOrError(repositorySelector: $selector) {
    __typename
    ... on Repository {
      jobs { name }
      partitionSets { name pipelineName }
      schedules { name pipelineName cronSchedule }
      sensors { name }
      assetNodes {
        assetKey { path }
        isPartitioned
        partitionDefinition { type description fmt }
        partitionKeys
        dependencyKeys { path }
        assetChecksOrError { __typename ... on AssetChecks { checks { name } } }
      }
    }
    ... on PythonError { message }
    ... on RepositoryNotFoundError { message }
  }
}
"""

# What the asset graph's "Materialize selected" -> "Launch backfill" sends (dagster-webserver
# 1.13: LaunchAssetChoosePartitionsDialog, target not a user job -> pure asset backfill:
# assetSelection + partitionNames, no selector). The daemon plans it from the asset graph and
# submits one run per date; a job backfill would instead need
# selector {partitionSetName: "daily_settlement_report_partition_set", repositorySelector}.

BACKFILL_STATUS = """
query BackfillStatus($backfillId: String!) {
  partitionBackfillOrError(backfillId: $backfillId) {
    __typename
    ... on PartitionBackfill {
      status
      isAssetBackfill
      error { message }
      runs { runId status tags { key value } }
    }
    ... on Error { message }
  }
}
"""

RUN_FAILURES = """
query RunFailures($runId: ID!) {
  logsForRun(runId: $runId) {
    ... on EventConnection {
      events {
        __typename
        ... on ExecutionStepFailureEvent { stepKey message error { message } }
        ... on RunFailureEvent { message }
      }
    }
  }
}
"""


@dataclass
class Stack:
    """The running system under test, shared by the module's tests (one `dagster dev` boot)."""

    dev: DagsterDev
    repository: str
    simulator: Simulator
    store: ObjectStore
    home: Path
    reference_rows: int


def _key(path: list[str]) -> str:
    return "/".join(path)


def _store_snapshots(config_path: Path) -> ObjectStore:
    store = open_store(load_config(config_path).storage)
    store_past_snapshots(config_path, PAST)
    return store


def _reference_rows(tmp: Path, kraken_url: str) -> int:
    """Rows of one past date built by the CLI's in-process run, in a lake of its own."""
    tmp.mkdir()
    config_path = write_config(
        tmp,
        storage=str(tmp / "lake"),
        warehouse=f"duckdb:///{tmp / 'wh.duckdb'}",
        kraken_url=kraken_url,
    )
    store = _store_snapshots(config_path)
    run_report(str(config_path), PAST[0])
    rows = read_csv_rows(store.get(report_keys(PAST[0])["csv"]))
    assert rows, "the reference run wrote an empty report"
    return len(rows)


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """Simulator + stored snapshots + `dagster dev` on a temp DAGSTER_HOME, torn down always."""
    tmp = tmp_path_factory.mktemp("dagster_dev")
    sim = Simulator(SimulatorConfig(seed=7))
    sim.start()
    try:
        with pytest.MonkeyPatch.context() as mp:
            secrets = {
                "TEST_KRAKEN_KEY": DEFAULT_KRAKEN_API_KEY,
                "TEST_KRAKEN_SECRET": DEFAULT_KRAKEN_API_SECRET,
            }
            for var, value in secrets.items():
                mp.setenv(var, value)
            mp.delenv("DAGSTER_HOME", raising=False)  # the reference run uses an ephemeral one
            config_path = write_config(
                tmp,
                storage=str(tmp / "lake"),
                warehouse=f"duckdb:///{tmp / 'wh.duckdb'}",
                kraken_url=sim.kraken_base_url,
            )
            store = _store_snapshots(config_path)
            home = tmp / "dagster_home"
            home.mkdir()
            shutil.copy(REPO / "dagster.yaml", home / "dagster.yaml")
            env = dict(os.environ, DAGSTER_HOME=str(home), ETL_CONFIG=str(config_path))
            env.pop("ETL_ALERT_WEBHOOK_URL", None)  # never post real alerts from a test
            with dagster_dev(
                workspace=REPO / "workspace.yaml",
                cwd=home,
                port=free_port(),
                env=env,
                log_path=tmp / "dagster_dev.log",
            ) as dev:
                # Built while `dagster dev` boots (it needs a while to load the location).
                reference = _reference_rows(tmp / "reference", sim.kraken_base_url)
                repository = dev.wait_for_location(LOCATION, READY_TIMEOUT)
                yield Stack(dev, repository, sim, store, home, reference)
    finally:
        sim.stop()


def _definitions(stack: Stack) -> dict[str, Any]:
    selector = {"repositoryLocationName": LOCATION, "repositoryName": stack.repository}
    repo = stack.dev.graphql(DEFINITIONS_QUERY, {"selector": selector})["repositoryOrError"]
    assert repo["__typename"] == "Repository", repo
    return repo


def _checks(repo: dict[str, Any]) -> set[tuple[str, str]]:
    found = set()
    for node in repo["assetNodes"]:
        checks = node["assetChecksOrError"]
        assert checks["__typename"] == "AssetChecks", checks
        found |= {(_key(node["assetKey"]["path"]), c["name"]) for c in checks["checks"]}
    return found


def test_code_location_lists_graph_jobs_schedules_sensor_and_checks(stack: Stack) -> None:
    """What the UI shows: daily-partitioned asset graph, the jobs, the schedules, the alert
    sensor and every check."""
    repo = _definitions(stack)
    nodes = {_key(n["assetKey"]["path"]): n for n in repo["assetNodes"]}
    assert set(GRAPH_ASSETS) <= set(nodes), sorted(nodes)
    assert [p["path"] for p in nodes["kraken_main__balances"]["dependencyKeys"]] == [
        ["kraken_main__raw_snapshot"]
    ]
    for key in GRAPH_ASSETS:
        node = nodes[key]
        assert node["isPartitioned"], key
        partitions = node["partitionDefinition"]
        assert partitions["type"] == "TIME_WINDOW" and partitions["fmt"] == "%Y-%m-%d", partitions
        assert "Daily" in partitions["description"], partitions
        assert {d.isoformat() for d in PAST} <= set(node["partitionKeys"]), key

    assert JOB in {j["name"] for j in repo["jobs"]}
    assert {"name": f"{JOB}_partition_set", "pipelineName": JOB} in repo["partitionSets"]
    assert {s["name"]: s["pipelineName"] for s in repo["schedules"]} == SCHEDULES
    assert [s["name"] for s in repo["sensors"]] == SENSORS
    assert _checks(repo) == CHECKS


def _run_failures(dev: DagsterDev, runs: list[dict[str, Any]]) -> str:
    """One line per failed step / run of the backfill's unsuccessful runs."""
    lines = []
    for run in runs:
        if run["status"] == "SUCCESS":
            continue
        lines.append(f"run {run['runId']} {run['status']}")
        events = dev.graphql(RUN_FAILURES, {"runId": run["runId"]})["logsForRun"]
        for event in events.get("events", []):
            if event["__typename"] == "ExecutionStepFailureEvent":
                error = (event.get("error") or {}).get("message", "").strip()
                lines.append(f"  {event['stepKey']}: {error or event['message']}")
            elif event["__typename"] == "RunFailureEvent":
                lines.append(f"  run: {event['message']}")
    return "\n".join(lines)


def _wait_for_backfill(dev: DagsterDev, backfill_id: str) -> dict[str, Any]:
    deadline = time.monotonic() + BACKFILL_TIMEOUT
    backfill: dict[str, Any] = {}
    while time.monotonic() < deadline:
        answer = dev.graphql(BACKFILL_STATUS, {"backfillId": backfill_id})
        backfill = answer["partitionBackfillOrError"]
        assert backfill["__typename"] == "PartitionBackfill", backfill
        if backfill["status"] in BACKFILL_TERMINAL:
            return backfill
        if dev.process.poll() is not None:
            raise dev.fail(f"dagster dev exited ({dev.process.returncode}) during the backfill")
        time.sleep(1.0)
    runs = [(r["runId"], r["status"]) for r in backfill.get("runs", [])]
    raise dev.fail(
        f"backfill {backfill_id} not finished after {BACKFILL_TIMEOUT:.0f}s: "
        f"status {backfill.get('status')}, runs {runs}\n{_run_failures(dev, backfill['runs'])}"
    )


def test_ui_backfill_of_three_past_dates_replays_stored_snapshots(stack: Stack) -> None:
    """A UI asset backfill over three past dates: all built by the daemon, no venue call."""
    dev = stack.dev
    before = stack.simulator.request_count()
    params = {
        "assetSelection": [{"path": key.split("/")} for key in GRAPH_ASSETS],
        "partitionNames": [d.isoformat() for d in PAST],
        "fromFailure": False,
        "tags": [],
        "title": "e2e: replay 2026-03-01..03",
    }
    launched = dev.graphql(LAUNCH_BACKFILL, {"backfillParams": params})["launchPartitionBackfill"]
    assert launched["__typename"] == "LaunchBackfillSuccess", launched
    backfill = _wait_for_backfill(dev, launched["backfillId"])

    failures = _run_failures(dev, backfill["runs"])
    assert backfill["status"] == "COMPLETED_SUCCESS", (
        f"backfill ended {backfill['status']} ({backfill['error']}):\n{failures}"
    )
    assert backfill["runs"] and not failures, failures
    run_dates = {
        t["value"] for r in backfill["runs"] for t in r["tags"] if t["key"] == "dagster/partition"
    }
    assert run_dates == {d.isoformat() for d in PAST}
    assert stack.simulator.request_count() == before  # every date replayed its stored snapshot

    # The instance's own record, read as any other Dagster process would.
    with dg.DagsterInstance.from_config(str(stack.home)) as instance:
        for key in GRAPH_ASSETS:
            done = instance.get_materialized_partitions(dg.AssetKey(key.split("/")))
            assert done == {d.isoformat() for d in PAST}, (key, done)
    for day in PAST:
        rows = read_csv_rows(stack.store.get(report_keys(day)["csv"]))
        assert len(rows) == stack.reference_rows, (day, len(rows), stack.reference_rows)
