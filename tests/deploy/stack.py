"""The production deployment, started for real on this machine: Dagster's code server, webserver
and daemon on a PostgreSQL instance (deploy/dagster.yaml), and Celery workers over RabbitMQ
executing the steps (assets/deployment.py, deploy/celery/), with the object store on S3 (moto's
server) and the warehouse on PostgreSQL.

Every process is started from this repo's deploy files with the commands docs/deploy.md gives,
each in a process group of its own, so a test can SIGKILL one worker (and everything it
started) and teardown can stop all of them, run workers included, even when a test failed.

Used by tests/deploy/test_deployment.py and benchmarks/bench_backfill.py.
"""

from __future__ import annotations

import copy
import os
import re
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import requests
import yaml

from tests.integration.dagster_dev import LAUNCH_BACKFILL as LAUNCH_BACKFILL  # re-exported
from tests.integration.dagster_dev import LOCATION_QUERY

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
BIN = Path(sys.executable).parent
LOCATION = "settlement_balances"
DEFAULT_CODE_LOCATION = ("-m", "assets.deployment")
#: Statuses of a run after which nothing changes it any more.
RUN_DONE = {"SUCCESS", "FAILURE", "CANCELED"}
BACKFILL_DONE = {"COMPLETED", "COMPLETED_SUCCESS", "COMPLETED_FAILED", "FAILED", "CANCELED"}

_ANSI = re.compile(r"\x1b\[[0-9;]*m")


class DeploymentError(AssertionError):
    """The deployment did not do what was needed; the message ends with the processes' logs."""


@dataclass
class Service:
    """One started command, leader of its own process group."""

    name: str
    process: subprocess.Popen[bytes]
    log_path: Path
    log: IO[bytes]

    @property
    def pid(self) -> int:
        return self.process.pid

    def alive(self) -> bool:
        return self.process.poll() is None

    def text(self) -> str:
        return _ANSI.sub("", self.log_path.read_text(encoding="utf-8", errors="replace"))

    def tail(self, lines: int = 25) -> str:
        kept = [
            line
            for line in self.text().splitlines()
            if not ("Warning" in line and "site-packages" in line)
        ]
        return "\n".join(kept[-lines:])

    def kill(self, sig: int = signal.SIGKILL) -> None:
        """Signal the whole group: the command and every process it started."""
        with suppress(ProcessLookupError):
            os.killpg(self.pid, sig)

    def stop(self, grace: float) -> None:
        """SIGTERM the group (a warm shutdown), then SIGKILL whatever is left after `grace`."""
        self.kill(signal.SIGTERM)
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline:
            self.process.poll()
            try:
                os.killpg(self.pid, 0)
            except ProcessLookupError:
                break
            time.sleep(0.1)
        else:
            self.kill(signal.SIGKILL)
        with suppress(subprocess.TimeoutExpired):
            self.process.wait(timeout=10)
        self.log.close()


def instance_yaml(overrides: Mapping[str, Any]) -> str:
    """deploy/dagster.yaml with `overrides` merged in (nested keys replace leaf by leaf)."""
    config = yaml.safe_load((DEPLOY / "dagster.yaml").read_text(encoding="utf-8"))
    return yaml.safe_dump(_merge(config, overrides), sort_keys=False)


def _merge(base: Any, over: Mapping[str, Any]) -> Any:
    merged = copy.deepcopy(base)
    for key, value in over.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


#: What the tests change in deploy/dagster.yaml, and why: everything else is production's.
TEST_INSTANCE_OVERRIDES: dict[str, Any] = {
    # Look at the queue every second, watch runs every 2 s (production: 2 s and 30 s), and
    # free the pool slots of a run that ended 5 s after it ended (production: 60 s).
    "run_coordinator": {"config": {"dequeue_interval_seconds": 1}},
    "run_monitoring": {"poll_interval_seconds": 2, "free_slots_after_run_end_seconds": 5},
}


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@dataclass
class Deployment:
    """The running processes and how to talk to them."""

    root: Path
    env: dict[str, str]
    queue: str
    services: dict[str, Service] = field(default_factory=dict)
    webserver_port: int = 0
    code_server_port: int = 0

    # -- processes ----------------------------------------------------------------------------

    def _start(
        self,
        name: str,
        command: Sequence[str],
        *,
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
    ) -> Service:
        log_path = self.root / f"{name}.log"
        log: IO[bytes] = log_path.open("wb")
        process = subprocess.Popen(
            list(command),
            cwd=cwd or REPO,
            env=dict(env or self.env),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        service = Service(name, process, log_path, log)
        self.services[name] = service
        return service

    def start_code_server(self, code_location: Sequence[str] = DEFAULT_CODE_LOCATION) -> Service:
        """`dagster code-server start` serving assets.deployment (or `code_location`, its
        `-m module` / `-f file -a attribute` arguments); it starts the run workers."""
        self.code_server_port = free_port()
        return self._start(
            "code_server",
            [
                str(BIN / "dagster"),
                "code-server",
                "start",
                *code_location,
                "--location-name",
                LOCATION,
                "-h",
                "127.0.0.1",
                "-p",
                str(self.code_server_port),
            ],
        )

    def _control_env(self) -> dict[str, str]:
        env = dict(self.env)
        env["DAGSTER_CODE_SERVER_HOST"] = "127.0.0.1"
        env["DAGSTER_CODE_SERVER_PORT"] = str(self.code_server_port)
        return env

    def start_webserver(self) -> Service:
        self.webserver_port = free_port()
        return self._start(
            "webserver",
            [
                str(BIN / "dagster-webserver"),
                "-w",
                str(DEPLOY / "workspace.yaml"),
                "-h",
                "127.0.0.1",
                "-p",
                str(self.webserver_port),
            ],
            env=self._control_env(),
        )

    def start_daemon(self) -> Service:
        return self._start(
            "daemon",
            [str(BIN / "dagster-daemon"), "run", "-w", str(DEPLOY / "workspace.yaml")],
            env=self._control_env(),
        )

    def start_worker(self, name: str, extra_env: Mapping[str, str] | None = None) -> Service:
        """A Celery worker on Dagster's app, one process executing steps (prefork, 1 child)."""
        env = dict(self.env, **(extra_env or {}))
        env["PYTHONPATH"] = os.pathsep.join(
            p for p in (str(DEPLOY / "celery"), env.get("PYTHONPATH", "")) if p
        )
        return self._start(
            name,
            worker_command(name, self.queue, concurrency=1),
            env=env,
        )

    def stop(self) -> None:
        # Workers first (a warm shutdown finishes the step at hand), then the control plane.
        order = sorted(self.services.values(), key=lambda s: s.name != "code_server")
        for service in reversed(order):
            service.stop(grace=10.0)

    # -- talking to it --------------------------------------------------------------------

    @property
    def graphql_url(self) -> str:
        return f"http://127.0.0.1:{self.webserver_port}/graphql"

    def graphql(self, query: str, variables: Mapping[str, Any] | None = None) -> dict[str, Any]:
        response = requests.post(
            self.graphql_url, json={"query": query, "variables": dict(variables or {})}, timeout=60
        )
        if response.status_code != 200:
            raise self.fail(f"GraphQL HTTP {response.status_code}: {response.text[:2000]}")
        body = response.json()
        if body.get("errors"):
            raise self.fail(f"GraphQL errors: {body['errors']}")
        data: dict[str, Any] = body["data"]
        return data

    def fail(self, message: str) -> DeploymentError:
        logs = "\n".join(
            f"--- {s.name} ({'running' if s.alive() else f'exit {s.process.returncode}'}) ---\n"
            f"{s.tail()}"
            for s in self.services.values()
        )
        return DeploymentError(f"{message}\n{logs}")

    def check_alive(self, *names: str) -> None:
        for name in names or tuple(self.services):
            service = self.services[name]
            if not service.alive():
                raise self.fail(f"{name} exited with code {service.process.returncode}")

    def wait_until(
        self, what: str, predicate: Callable[[], Any], timeout: float, interval: float = 0.5
    ) -> Any:
        deadline = time.monotonic() + timeout
        last: Any = None
        while time.monotonic() < deadline:
            try:
                last = predicate()
            except (requests.RequestException, DeploymentError) as exc:
                last = exc
            else:
                if last:
                    return last
            time.sleep(interval)
        raise self.fail(f"{what}: not within {timeout:.0f}s (last: {last!r})")

    def wait_for_location(self, timeout: float) -> str:
        """Until the webserver has loaded the code location (from the code server); returns the
        repository name."""

        def loaded() -> str | None:
            self.check_alive("code_server", "webserver")
            data = self.graphql(LOCATION_QUERY)["workspaceOrError"]
            for entry in data.get("locationEntries", []):
                if entry["name"] == LOCATION and entry["loadStatus"] == "LOADED":
                    loc = entry["locationOrLoadError"]
                    if loc["__typename"] != "RepositoryLocation":
                        raise DeploymentError(f"location failed to load: {loc}")
                    name: str = loc["repositories"][0]["name"]
                    return name
            return None

        repo: str = self.wait_until("code location loaded", loaded, timeout)
        return repo

    def runs(self, filter_: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
        data = self.graphql(RUNS_QUERY, {"filter": dict(filter_ or {})})["runsOrError"]
        if data["__typename"] != "Runs":
            raise self.fail(f"runs query: {data}")
        runs: list[dict[str, Any]] = data["results"]
        for run in runs:
            run["tagmap"] = {t["key"]: t["value"] for t in run["tags"]}
        return runs

    def events(self, run_id: str) -> list[dict[str, Any]]:
        events: list[dict[str, Any]] = []
        cursor = None
        while True:
            data = self.graphql(RUN_EVENTS, {"runId": run_id, "afterCursor": cursor})["logsForRun"]
            if data["__typename"] != "EventConnection":
                raise self.fail(f"logsForRun {run_id}: {data}")
            events.extend(data["events"])
            cursor = data["cursor"]
            if not data["hasMore"]:
                return events

    def failures(self, runs: Sequence[Mapping[str, Any]]) -> str:
        """One line per failed step and run of the runs that did not succeed."""
        lines = []
        for run in runs:
            if run["status"] == "SUCCESS":
                continue
            lines.append(f"run {run['runId']} {run['status']} {run['tagmap']}")
            for event in self.events(run["runId"]):
                kind = event["__typename"]
                if kind in ("ExecutionStepFailureEvent", "RunFailureEvent", "EngineEvent") and (
                    kind != "EngineEvent" or (event.get("error") or {}).get("message")
                ):
                    error = (event.get("error") or {}).get("message", "").strip()
                    lines.append(f"  {event.get('stepKey') or 'run'}: {error or event['message']}")
        return "\n".join(lines)


def worker_command(name: str, queue: str, concurrency: int) -> list[str]:
    """The Celery worker command of docs/deploy.md: Dagster's app, our settings module on
    PYTHONPATH (deploy/celery/dagster_celery_config.py)."""
    return [
        str(BIN / "celery"),
        "-A",
        "dagster_celery.app",
        "worker",
        "-Q",
        queue,
        "-n",
        f"{name}@%h",
        "--concurrency",
        str(concurrency),
        "--prefetch-multiplier",
        "1",
        "--without-gossip",
        "--without-mingle",
        "--loglevel",
        "INFO",
    ]


@contextmanager
def deployment(
    root: Path,
    env: Mapping[str, str],
    *,
    workers: int | Sequence[tuple[str, Mapping[str, str]]] = 2,
    instance_overrides: Mapping[str, Any] | None = None,
    code_location: Sequence[str] = DEFAULT_CODE_LOCATION,
) -> Iterator[Deployment]:
    """Start code server, webserver, daemon and the Celery workers on a fresh DAGSTER_HOME under
    `root` (with deploy/dagster.yaml + `instance_overrides`); stop all of them on exit.

    `env` must carry the instance's DAGSTER_PG_* and the broker's DAGSTER_CELERY_BROKER_URL, the
    project's ETL_CONFIG with its secrets, and the object store's settings. Steps go to a queue
    of this deployment's own (`DAGSTER_CELERY_QUEUE`), so deployments sharing one broker (two
    test sessions on one RabbitMQ) never take each other's steps."""
    home = root / "dagster_home"
    home.mkdir(parents=True, exist_ok=True)
    overrides = _merge(TEST_INSTANCE_OVERRIDES, instance_overrides or {})
    (home / "dagster.yaml").write_text(instance_yaml(overrides), encoding="utf-8")
    queue = f"etl-test-{uuid.uuid4().hex[:10]}"
    full_env = dict(env, DAGSTER_HOME=str(home), DAGSTER_CELERY_QUEUE=queue)
    full_env.pop("ETL_ALERT_WEBHOOK_URL", None)  # a test never posts a real alert
    full_env.setdefault("PYTHONUNBUFFERED", "1")
    deploy = Deployment(root, full_env, queue)
    worker_specs = (
        [(f"worker{i + 1}", {}) for i in range(workers)] if isinstance(workers, int) else workers
    )
    try:
        deploy.start_code_server(code_location)
        for name, extra in worker_specs:
            deploy.start_worker(name, extra)
        deploy.start_webserver()
        yield deploy
    finally:
        try:
            deploy.stop()
        finally:
            _delete_queue(full_env.get("DAGSTER_CELERY_BROKER_URL", ""), queue)


def _delete_queue(broker_url: str, queue: str) -> None:
    """Remove the deployment's own queue and exchange from the broker (Celery declares them
    durable; the result backend's reply queues expire on their own, `result_expires`)."""
    if not broker_url:
        return
    from kombu import Connection

    with suppress(Exception), Connection(broker_url, connect_timeout=5) as conn:
        channel = conn.default_channel
        channel.queue_delete(queue)
        channel.exchange_delete(queue)


def wait_for_workers(deploy: Deployment, names: Sequence[str], timeout: float) -> None:
    """Until every named Celery worker says it is ready (its log's `ready.` line)."""

    def ready() -> bool:
        deploy.check_alive(*names)
        return all(" ready." in deploy.services[n].text() for n in names)

    deploy.wait_until("Celery workers ready", ready, timeout)



RUNS_QUERY = """
query Runs($filter: RunsFilter) {
  runsOrError(filter: $filter) {
    __typename
    ... on Runs {
      results { runId status startTime endTime creationTime tags { key value } }
    }
    ... on PythonError { message }
  }
}
"""

RUN_EVENTS = """
query RunEvents($runId: ID!, $afterCursor: String) {
  logsForRun(runId: $runId, afterCursor: $afterCursor) {
    __typename
    ... on EventConnection {
      cursor
      hasMore
      events {
        __typename
        ... on MessageEvent { message timestamp stepKey }
        ... on ExecutionStepFailureEvent { error { message } }
        ... on RunFailureEvent { pipelineName }
        ... on EngineEvent { error { message } metadataEntries { label
          ... on TextMetadataEntry { text }
          ... on IntMetadataEntry { intValue } } }
      }
    }
    ... on PythonError { message }
    ... on RunNotFoundError { message }
  }
}
"""


BACKFILL_STATUS = """
query BackfillStatus($backfillId: String!) {
  partitionBackfillOrError(backfillId: $backfillId) {
    __typename
    ... on PartitionBackfill { status error { message } }
    ... on Error { message }
  }
}
"""

START_SCHEDULE = """
mutation StartSchedule($scheduleSelector: ScheduleSelector!) {
  startSchedule(scheduleSelector: $scheduleSelector) {
    __typename
    ... on ScheduleStateResult { scheduleState { status } }
    ... on Error { message }
    ... on PythonError { message stack }
  }
}
"""


def write_two_venue_config(
    path: Path, storage: str, warehouse: str, sim: Any, **report: object
) -> Path:
    """A config of two venues of different kinds (two pools) on the simulator; `report`
    settings beyond start date and no retries are added as given (quoted when text)."""
    settings = {"start_date": "2026-01-01", "venue_retries": 0, "venue_retry_delay_seconds": 0}
    settings.update(report)
    lines = [f"  {k}: '{v}'" if isinstance(v, str) else f"  {k}: {v}" for k, v in settings.items()]
    path.write_text(
        f"storage: {storage}\n"
        f"warehouse: {warehouse}\n"
        "sources:\n"
        "  - name: kraken_main\n"
        "    kind: kraken_futures\n"
        f"    base_url: {sim.kraken_base_url}\n"
        "    api_key: ${TEST_KRAKEN_KEY}\n"
        "    api_secret: ${TEST_KRAKEN_SECRET}\n"
        "  - name: saxo_main\n"
        "    kind: saxo\n"
        f"    base_url: {sim.saxo_base_url}\n"
        "    access_token: ${TEST_SAXO_TOKEN}\n"
        "report:\n" + "\n".join(lines) + "\n",
        encoding="utf-8",
    )
    return path
