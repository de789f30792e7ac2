"""The UI as an operator starts it, for the UI tests and the UI-vs-CLI timing.

`etl-balances ui` (the venue simulator + `dagster dev`) against a temp DAGSTER_HOME (which it
fills with this repo's dagster.yaml) and a demo config of its own (every venue kind on that
simulator, a temp lake and DuckDB warehouse). Runs are launched and followed through the GraphQL
endpoint the UI itself uses.
"""

from __future__ import annotations

import os
import shutil
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from assets.cli import DEMO_ENV, demo_sources
from etl_project.simulator import SimulatorConfig
from tests.conftest import free_port
from tests.integration.dagster_dev import (
    BACKFILL_TERMINAL,
    LAUNCH_BACKFILL,
    DagsterDev,
    dagster_dev,
)

REPO = Path(__file__).resolve().parents[2]
LOCATION = "settlement_balances"
JOB = "daily_settlement_report"
SOURCES = ("kraken_demo", "saxo_demo", "platform_demo", "settlement_platform_demo")
READY_TIMEOUT = 120.0
RUN_TIMEOUT = 180.0
# Dagster's backfill daemon wakes every 30 s (no setting): one tick submits the runs, a later
# one sees them done. (Generous: a process per step, as before, took minutes.)
BACKFILL_TIMEOUT = 600.0
RUN_TERMINAL = {"SUCCESS", "FAILURE", "CANCELED"}
#: `make ui`, on free ports.
ETL_BALANCES_UI = (sys.executable, "-m", "assets.cli", "ui", "--port", "{port}")
ETL_BALANCES_UI += ("--sim-port", "{sim_port}")

LAUNCH_RUN = """
mutation LaunchRun($executionParams: ExecutionParams!) {
  launchRun(executionParams: $executionParams) {
    __typename
    ... on LaunchRunSuccess { run { runId } }
    ... on PythonError { message stack }
    ... on Error { message }
  }
}
"""


BACKFILL = """
query Backfill($backfillId: String!) {
  partitionBackfillOrError(backfillId: $backfillId) {
    __typename
    ... on PartitionBackfill { status runs { runId status jobName startTime endTime } }
    ... on Error { message }
  }
}
"""

RUN = """
query Run($runId: ID!) {
  runOrError(runId: $runId) {
    __typename
    ... on Run {
      runId status jobName creationTime startTime endTime
      tags { key value }
    }
    ... on Error { message }
  }
}
"""

RUNS = """
query Runs($filter: RunsFilter) {
  runsOrError(filter: $filter) {
    ... on Runs { results { runId status jobName creationTime startTime endTime } }
  }
}
"""

RUN_EVENTS = """
query RunEvents($runId: ID!) {
  logsForRun(runId: $runId, limit: 5000) {
    __typename
    ... on EventConnection {
      events {
        __typename
        ... on MessageEvent { eventType message stepKey }
        ... on ExecutionStepFailureEvent { error { message } }
      }
    }
  }
}
"""


@dataclass
class Ui:
    """A running `etl-balances ui`."""

    dev: DagsterDev
    repository: str
    home: Path
    config: Path
    sim_url: str

    @property
    def base_url(self) -> str:
        return self.dev.url.removesuffix("/graphql")

    def selector(self) -> dict[str, str]:
        return {"repositoryLocationName": LOCATION, "repositoryName": self.repository}


def write_ui_config(tmp: Path, sim_url: str) -> Path:
    """The demo's four venue kinds on `sim_url`, a temp lake and warehouse; no retries."""
    path = tmp / "config.yaml"
    path.write_text(
        f"storage: {tmp / 'lake'}\n"
        f"warehouse: duckdb:///{tmp / 'warehouse.duckdb'}\n"
        + demo_sources(sim_url)
        + "report:\n  venue_retries: 0\n  venue_retry_delay_seconds: 0\n",
        encoding="utf-8",
    )
    return path


def demo_env(base: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment of a UI process: the simulator's demo credentials, no real alerts."""
    env = dict(os.environ if base is None else base)
    defaults = SimulatorConfig()
    for var, attr in DEMO_ENV.items():
        env[var] = getattr(defaults, attr)
    env.pop("ETL_ALERT_WEBHOOK_URL", None)  # never post real alerts from a test
    env.pop("DAGSTER_HOME", None)
    return env


@contextmanager
def running_ui(
    tmp: Path, *, command: Sequence[str] | None = None, pythonpath: Path | None = None
) -> Iterator[Ui]:
    """`etl-balances ui --port P --sim-port S` with DAGSTER_HOME and ETL_CONFIG in `tmp`;
    stopped, with every process it started, on exit.

    `command` replaces it (with `{port}` for P; `{sim_port}`, S, is then the caller's to serve)
    and runs in DAGSTER_HOME, given the dagster.yaml of `pythonpath` (another checkout, put on
    PYTHONPATH) or of this repo."""
    port, sim_port = free_port(), free_port()
    sim_url = f"http://127.0.0.1:{sim_port}"
    home = tmp / "dagster_home"
    home.mkdir()
    config = write_ui_config(tmp, sim_url)
    env = dict(demo_env(), DAGSTER_HOME=str(home), ETL_CONFIG=str(config))
    if pythonpath is not None:
        env["PYTHONPATH"] = str(pythonpath)
    if command is not None:
        shutil.copy((pythonpath or REPO) / "dagster.yaml", home / "dagster.yaml")
    args = [a.format(port=port, sim_port=sim_port) for a in command or ETL_BALANCES_UI]
    with dagster_dev(
        workspace=REPO / "workspace.yaml",
        cwd=tmp if command is None else home,
        port=port,
        env=env,
        log_path=tmp / "ui.log",
        command=args,
    ) as dev:
        repository = dev.wait_for_location(LOCATION, READY_TIMEOUT)
        yield Ui(dev, repository, home, config, sim_url)


def launch_job_run(ui: Ui, partition: str, job: str = JOB) -> str:
    """What "Materialize all" on the job's page sends for one date: the whole job, tagged
    with the partition. Returns the run id."""
    params = {
        "selector": {**ui.selector(), "pipelineName": job},
        "mode": "default",
        "runConfigData": "{}",
        "executionMetadata": {"tags": [{"key": "dagster/partition", "value": partition}]},
    }
    answer = ui.dev.graphql(LAUNCH_RUN, {"executionParams": params})["launchRun"]
    if answer["__typename"] != "LaunchRunSuccess":
        raise ui.dev.fail(f"launchRun refused: {answer}")
    run_id: str = answer["run"]["runId"]
    return run_id


def launch_asset_backfill(ui: Ui, asset_keys: Sequence[str], partitions: Sequence[str]) -> str:
    """What the asset graph's "Materialize all" -> a range of dates -> "Launch backfill"
    sends (a pure asset backfill, one run per date). Returns the backfill id."""
    params = {
        "assetSelection": [{"path": [key]} for key in asset_keys],
        "partitionNames": list(partitions),
        "fromFailure": False,
        "tags": [],
    }
    answer = ui.dev.graphql(LAUNCH_BACKFILL, {"backfillParams": params})
    launched = answer["launchPartitionBackfill"]
    if launched["__typename"] != "LaunchBackfillSuccess":
        raise ui.dev.fail(f"launchPartitionBackfill refused: {launched}")
    backfill_id: str = launched["backfillId"]
    return backfill_id


def run_record(ui: Ui, run_id: str) -> dict[str, Any]:
    run: dict[str, Any] = ui.dev.graphql(RUN, {"runId": run_id})["runOrError"]
    if run["__typename"] != "Run":
        raise ui.dev.fail(f"run {run_id}: {run}")
    return run


def wait_for_run(ui: Ui, run_id: str, timeout: float = RUN_TIMEOUT) -> dict[str, Any]:
    """Poll until the run is over; a run still going after `timeout` fails the test."""
    deadline = time.monotonic() + timeout
    run = run_record(ui, run_id)
    while run["status"] not in RUN_TERMINAL:
        if time.monotonic() > deadline:
            raise ui.dev.fail(f"run {run_id} still {run['status']} after {timeout:.0f}s")
        if ui.dev.process.poll() is not None:
            raise ui.dev.fail(f"the UI exited ({ui.dev.process.returncode}) during run {run_id}")
        time.sleep(0.25)
        run = run_record(ui, run_id)
    return run


def wait_for_backfill(ui: Ui, backfill_id: str) -> dict[str, Any]:
    """Poll until the backfill is over (the daemon says so); returns it with its runs."""
    deadline = time.monotonic() + BACKFILL_TIMEOUT
    while True:
        answer = ui.dev.graphql(BACKFILL, {"backfillId": backfill_id})
        backfill: dict[str, Any] = answer["partitionBackfillOrError"]
        if backfill.get("status") in BACKFILL_TERMINAL:
            return backfill
        if time.monotonic() > deadline:
            raise ui.dev.fail(f"backfill {backfill_id} not over after {BACKFILL_TIMEOUT:.0f}s")
        time.sleep(0.5)


def wait_for_runs(ui: Ui, backfill_id: str, count: int) -> list[dict[str, Any]]:
    """Poll until the backfill has `count` runs and every one is over (its runs finish before
    the daemon's next tick marks the backfill done)."""
    deadline = time.monotonic() + BACKFILL_TIMEOUT
    while True:
        answer = ui.dev.graphql(BACKFILL, {"backfillId": backfill_id})
        runs: list[dict[str, Any]] = answer["partitionBackfillOrError"].get("runs") or []
        if len(runs) >= count and all(r["status"] in RUN_TERMINAL for r in runs):
            return runs
        if time.monotonic() > deadline:
            raise ui.dev.fail(f"backfill {backfill_id}: runs not over: {runs}")
        time.sleep(0.5)


def run_events(ui: Ui, run_id: str) -> list[dict[str, Any]]:
    logs = ui.dev.graphql(RUN_EVENTS, {"runId": run_id})["logsForRun"]
    if logs["__typename"] != "EventConnection":
        raise ui.dev.fail(f"logsForRun {run_id}: {logs}")
    events: list[dict[str, Any]] = logs["events"]
    return events


def failures(ui: Ui, run_id: str) -> str:
    """The run's failed steps and run failure, one line each (for assertion messages)."""
    lines = []
    for event in run_events(ui, run_id):
        if event.get("eventType") in ("STEP_FAILURE", "RUN_FAILURE"):
            error = (event.get("error") or {}).get("message", "").strip().splitlines()
            lines.append(f"{event.get('stepKey') or 'run'}: {error[0] if error else ''}")
            lines.append(f"  {event.get('message')}")
    return "\n".join(lines)
