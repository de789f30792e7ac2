"""The production deployment, run for real: Dagster on PostgreSQL with its daemon, steps on two
Celery workers over RabbitMQ, the object store on S3 (moto's server), the warehouse on
PostgreSQL.

One test, one boot (it is the expensive part): the code server, the webserver, the daemon and
two Celery workers are started from deploy/ exactly as docs/deploy.md says, then

1. a 7-date backfill is launched through the webserver's GraphQL API (what the UI sends); the
   daemon turns it into one run for the 7 dates (the deployment's single-run backfill policy,
   assets/deployment.py), whose steps the two workers share;
2. the worker that runs the publication is SIGKILLed after the warehouse commit of the first
   date, while it promotes that date's files (it stops at a failpoint there); a fresh worker
   starts in its place (its supervisor's job). The step's message was not acknowledged:
   RabbitMQ gives it to another worker, which runs the step again in the same run (same
   `run_id`: nothing is published twice), and the run completes;
3. every date is published exactly once (one version, one materialisation), with the rows of an
   in-process run (`etl-balances run`'s code path) of the same stored snapshots;
4. no two steps of a venue ran at once, across the two workers (the per-venue pools);
5. the daily schedule, started through GraphQL, ticks (cron set to a minute ahead) and the
   daemon launches yesterday's run (live, on the simulator); its run worker is SIGKILLed while
   its first snapshot is in flight: the code server reports the run failed, run retries launch
   it again, and the retry publishes the date.

Timings are printed (run with `-s`) and written to `<tmp>/deploy_timings.json`.
"""

from __future__ import annotations

import itertools
import json
import os
import re
import signal
import threading
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from etl_project.config import load_config
from etl_project.report.serialise import read_csv_rows
from etl_project.simulator import DEFAULT_KRAKEN_API_KEY, DEFAULT_KRAKEN_API_SECRET, Simulator
from etl_project.sinks.files import report_keys
from etl_project.sinks.object_store import ObjectStore, open_store
from tests.deploy.stack import (
    BACKFILL_DONE,
    BACKFILL_STATUS,
    LAUNCH_BACKFILL,
    LOCATION,
    RUN_DONE,
    START_SCHEDULE,
    Deployment,
    deployment,
    wait_for_workers,
    write_two_venue_config,
)
from tests.integration.helpers import store_past_snapshots

pytestmark = [pytest.mark.deploy, pytest.mark.postgres, pytest.mark.s3]

DATES = [date(2026, 3, 1) + timedelta(days=i) for i in range(7)]
SOURCES = {"kraken_main": "kraken_futures", "saxo_main": "saxo"}
JOB = "daily_settlement_report"
RANGE_START = "dagster/asset_partition_range_start"
RANGE_END = "dagster/asset_partition_range_end"
SCHEDULE = "daily_settlement_report_schedule"
#: The schedule ticks at the first minute boundary this many seconds after the test starts.
SCHEDULE_AFTER = 60
PUBLISH_STEP = "publish_settlement_balance"
#: The publication stops after the first date's commit, before promoting its CSV, on whichever
#: worker runs it (and that worker is killed there); a worker that runs it again waits as long.
FAILPOINT = f"publish.promote@settlement_balance_{DATES[0].isoformat()}.csv"
PUBLISH_PAUSE = 15
#: How long a worker holds a live snapshot before landing it (the run worker dies meanwhile).
SNAPSHOT_PAUSE = 3
BOOT_TIMEOUT = 150.0
BACKFILL_TIMEOUT = 240.0


def _config(tmp: Path, storage: str, warehouse: str, sim: Simulator, schedule_utc: str) -> Path:
    """Two venues of different kinds (two pools) on the simulator; yesterday is still live
    (`live_cutoff_hours: 48`), March 2026 is replayed from the stored snapshots."""
    return write_two_venue_config(
        tmp / "config.yaml", storage, warehouse, sim, schedule_utc=schedule_utc,
        live_cutoff_hours=48,
    )  # fmt: skip


def _reference(tmp: Path, store: ObjectStore, bucket: str, config_text: str) -> dict[date, Any]:
    """The rows of every date built by an in-process run (`etl-balances run`'s code path) from
    the very same raw snapshots, copied to a lake and a DuckDB warehouse of its own."""
    from assets.runner import run_report

    ref_prefix = "reference"
    ref_store = open_store(f"s3://{bucket}/{ref_prefix}")
    for key in store.list("raw/"):
        ref_store.put(key, store.get(key))
    lines = [
        line for line in config_text.splitlines() if not line.startswith(("storage:", "warehouse:"))
    ]
    path = tmp / "reference.yaml"
    path.write_text(
        f"storage: s3://{bucket}/{ref_prefix}\nwarehouse: duckdb:///{tmp / 'reference.duckdb'}\n"
        + "\n".join(lines)
        + "\n",
        encoding="utf-8",
    )
    rows = {}
    for day in DATES:
        summary = run_report(str(path), day)
        assert summary.success, (day, summary.failures)
        rows[day] = read_csv_rows(ref_store.get(report_keys(day)["csv"]))
        assert rows[day], f"the reference run of {day} wrote an empty report"
    return rows


def _next_minute(after_seconds: float) -> datetime:
    at = datetime.now(UTC) + timedelta(seconds=after_seconds)
    return (at + timedelta(minutes=1)).replace(second=0, microsecond=0)


def _run_worker_pid(deploy: Deployment, run_id: str, required: bool = True) -> int | None:
    """The process of the run's worker (its `Started process for run (pid: N)` event)."""
    for event in deploy.events(run_id):
        found = re.search(r"Started process for run \(pid: (\d+)\)", event.get("message") or "")
        if found:
            return int(found.group(1))
    if required:
        raise deploy.fail(f"run {run_id} has no run worker process")
    return None


def _executing(deploy: Deployment, run_id: str) -> list[tuple[str, str]]:
    """(step, Celery worker) of every `Executing steps … in celery worker` event of a run."""
    found = []
    for event in deploy.events(run_id):
        match = re.search(r"Executing steps (\S+) in celery worker", event.get("message") or "")
        if match:
            meta = {m["label"]: m.get("text") for m in event.get("metadataEntries") or []}
            found.append((match.group(1), meta.get("Celery worker") or ""))
    return found


def test_deployment_backfill_worker_kill_and_schedule(
    simulator: Simulator,
    s3_location: str,
    pg_schema: str,
    instance_db: str,
    rabbitmq_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    started = time.monotonic()
    timings: dict[str, Any] = {}
    for var, value in {
        "TEST_KRAKEN_KEY": DEFAULT_KRAKEN_API_KEY,
        "TEST_KRAKEN_SECRET": DEFAULT_KRAKEN_API_SECRET,
        "TEST_SAXO_TOKEN": simulator.config.saxo_access_token,
        "DAGSTER_PG_HOST": "127.0.0.1",
        "DAGSTER_PG_PORT": "5432",
        "DAGSTER_PG_DB": instance_db,
        "DAGSTER_PG_USER": "postgres",
        "DAGSTER_PG_PASSWORD": "",  # the test server trusts local connections
        "DAGSTER_CELERY_BROKER_URL": rabbitmq_url,
    }.items():
        monkeypatch.setenv(var, value)
    monkeypatch.delenv("DAGSTER_HOME", raising=False)  # the reference run: ephemeral instance
    # The schedule's tick: a minute boundary after the boot, while the backfill runs.
    tick = _next_minute(after_seconds=SCHEDULE_AFTER)
    config_path = _config(tmp_path, s3_location, pg_schema, simulator, tick.strftime("%H:%M"))
    monkeypatch.setenv("ETL_CONFIG", str(config_path))
    store = open_store(load_config(config_path).storage)
    for source in SOURCES:
        store_past_snapshots(config_path, DATES, source=source)

    # Every worker holds each live snapshot a few seconds before landing it (the scheduled run's
    # worker is killed meanwhile): only a live fetch lands a raw file named after today's time,
    # the backfill replays stored ones. The two first workers also stop in the backfill's
    # publication, after its first commit; the one that does is killed there.
    live = f"store.put@{datetime.now(UTC):%Y%m%d}T=pause:{SNAPSHOT_PAUSE}"
    publish = f"{live},{FAILPOINT}=pause:{PUBLISH_PAUSE}"
    workers = [("worker1", {"ETL_FAILPOINTS": publish}), ("worker2", {"ETL_FAILPOINTS": publish})]
    with deployment(tmp_path / "deploy", dict(os.environ), workers=workers) as deploy:
        try:
            _scenario(deploy, store, s3_location, pg_schema, config_path, tick, live, timings)
        finally:
            timings["test_seconds"] = round(time.monotonic() - started, 1)
            (tmp_path / "deploy_timings.json").write_text(json.dumps(timings, indent=2))
            print("\ndeployment timings:", json.dumps(timings, indent=2))


def _scenario(
    deploy: Deployment,
    store: ObjectStore,
    s3_location: str,
    pg_schema: str,
    config_path: Path,
    tick: datetime,
    live_failpoint: str,
    timings: dict[str, Any],
) -> None:
    started = time.monotonic()
    yesterday = (tick - timedelta(days=1)).date().isoformat()
    bucket = s3_location.removeprefix("s3://").split("/", 1)[0]
    reference = _reference(config_path.parent, store, bucket, config_path.read_text())
    timings["reference_in_process_seconds"] = round(time.monotonic() - started, 1)
    repository = deploy.wait_for_location(BOOT_TIMEOUT)
    wait_for_workers(deploy, ["worker1", "worker2"], BOOT_TIMEOUT)
    timings["boot_seconds"] = round(time.monotonic() - started, 1)
    repo_selector = {"repositoryLocationName": LOCATION, "repositoryName": repository}

    # The schedule starts stopped, as every Dagster schedule: turn it on, as an operator does.
    if tick.timestamp() < time.time() + 5:
        raise deploy.fail(f"booted too late for the schedule's tick at {tick:%H:%M} UTC")
    selector = {**repo_selector, "scheduleName": SCHEDULE}
    answer = deploy.graphql(START_SCHEDULE, {"scheduleSelector": selector})["startSchedule"]
    assert answer["__typename"] == "ScheduleStateResult", answer
    killer = RunWorkerKiller(deploy, yesterday)
    killer.start()

    # The job's "Launch backfill" in the UI: one run of `daily_settlement_report` per date. The
    # daemon is started right after, so its first backfill iteration (then one every 30 s,
    # fixed in Dagster) takes it at once.
    params = {
        "selector": {
            "partitionSetName": f"{JOB}_partition_set",
            "repositorySelector": repo_selector,
        },
        "partitionNames": [d.isoformat() for d in DATES],
        "fromFailure": False,
        "tags": [],
        "title": "deploy test: 7 dates",
    }
    launched_at = time.time()
    launched = deploy.graphql(LAUNCH_BACKFILL, {"backfillParams": params})
    launched = launched["launchPartitionBackfill"]
    assert launched["__typename"] == "LaunchBackfillSuccess", launched
    backfill_id = launched["backfillId"]
    deploy.start_daemon()

    # The worker running the publication stops after the first date's commit: kill it there.
    # Its supervisor (systemd's Restart=always, docs/deploy.md) starts a fresh worker instead.
    def stopped_worker() -> str | None:
        for name in ("worker1", "worker2"):
            if "failpoint publish.promote reached" in deploy.services[name].text():
                return name
        return None

    victim: str = deploy.wait_until("a worker in the publication", stopped_worker, BACKFILL_TIMEOUT)
    deploy.services[victim].kill(signal.SIGKILL)
    killed_at = time.time()
    survivor = "worker2" if victim == "worker1" else "worker1"
    deploy.start_worker("worker3", {"ETL_FAILPOINTS": live_failpoint})
    timings["killed_worker"] = victim

    def backfill_runs() -> list[dict[str, Any]]:
        return deploy.runs({"tags": [{"key": "dagster/backfill", "value": backfill_id}]})

    def backfill_done() -> list[dict[str, Any]] | None:
        deploy.check_alive("code_server", "webserver", "daemon", survivor, "worker3")
        killer.check()
        runs = backfill_runs()
        if runs and all(r["status"] in RUN_DONE for r in runs):
            return runs
        return None

    runs = deploy.wait_until("backfill runs finished", backfill_done, BACKFILL_TIMEOUT, 1.0)
    assert all(r["status"] == "SUCCESS" for r in runs), deploy.failures(runs)
    # One run for the 7 dates (single-run backfill policy), not retried.
    assert len(runs) == 1, [(r["runId"], r["status"], r["tagmap"]) for r in runs]
    tags = runs[0]["tagmap"]
    assert (tags[RANGE_START], tags[RANGE_END]) == (DATES[0].isoformat(), DATES[-1].isoformat())
    timings["backfill_7_dates_one_run_launch_to_end_seconds"] = round(
        max(r["endTime"] for r in runs) - launched_at, 1
    )
    timings["backfill_run_start_to_end_seconds"] = round(
        max(r["endTime"] for r in runs) - min(r["startTime"] for r in runs), 1
    )

    # The killed step: taken by the killed worker, then (redelivered by RabbitMQ) by another
    # worker, in the same run, which then succeeded: the 7 dates' publication ran again.
    killed_run = runs[0]
    executing = _executing(deploy, killed_run["runId"])
    publishers = [w.split("@")[0] for step, w in executing if step == PUBLISH_STEP]
    assert len(publishers) == 2, executing
    assert publishers[0] == victim and publishers[1] != victim, executing
    timings["redelivered_to"] = publishers[1]
    timings["killed_step_run_end_after_kill_seconds"] = round(killed_run["endTime"] - killed_at, 1)

    # The daemon's schedule tick launched yesterday's run; its run worker was killed mid-run;
    # the code server reported the run failed and run retries launched it again.
    def retried() -> dict[str, Any] | None:
        deploy.check_alive("code_server", "webserver", "daemon")
        killer.check()
        if killer.killed is None:
            return None
        done = [
            r
            for r in deploy.runs({"tags": [{"key": "dagster/schedule_name", "value": SCHEDULE}]})
            if r["runId"] != killer.killed["runId"] and r["status"] in RUN_DONE
        ]
        return done[0] if done else None

    retry = deploy.wait_until("the scheduled run's retry", retried, 240, 1.0)
    first = killer.killed
    assert first is not None and first["tagmap"]["dagster/partition"] == yesterday, first
    original = deploy.runs({"runIds": [first["runId"]]})[0]
    assert original["status"] == "FAILURE", original
    assert retry["status"] == "SUCCESS", deploy.failures([retry])
    assert retry["tagmap"].get("dagster/parent_run_id") == first["runId"], retry["tagmap"]
    assert retry["tagmap"]["dagster/partition"] == yesterday
    timings["scheduled_run_retry_success_after_kill_seconds"] = round(
        retry["endTime"] - killer.killed_at, 1
    )
    timings["schedule_tick_to_retry_success_seconds"] = round(
        retry["endTime"] - tick.timestamp(), 1
    )

    def backfill_status() -> str | None:
        answer = deploy.graphql(BACKFILL_STATUS, {"backfillId": backfill_id})
        status: str = answer["partitionBackfillOrError"]["status"]
        return status if status in BACKFILL_DONE else None

    assert deploy.wait_until("backfill status", backfill_status, 60, 1.0) == "COMPLETED_SUCCESS"
    _assert_published_once(deploy, store, pg_schema, reference, runs, yesterday, retry)
    _assert_pools_held(deploy)


class RunWorkerKiller(threading.Thread):
    """SIGKILLs the run worker of the schedule's run (yesterday) while its first live snapshot
    is held at a worker's failpoint, i.e. mid-run. Runs beside the backfill."""

    def __init__(self, deploy: Deployment, report_date: str) -> None:
        super().__init__(name="run-worker-killer", daemon=True)
        self.deploy = deploy
        self.report_date = report_date
        self.killed: dict[str, Any] | None = None
        self.killed_at = 0.0
        self.error: BaseException | None = None
        self._stop = threading.Event()

    def run(self) -> None:
        try:
            self._run()
        except BaseException as exc:  # reported by check() in the test's thread
            self.error = exc

    def _run(self) -> None:
        deadline = time.monotonic() + BACKFILL_TIMEOUT + 120
        pid = None
        run = None
        while not self._stop.is_set() and time.monotonic() < deadline:
            if run is None:
                runs = self.deploy.runs(
                    {"tags": [{"key": "dagster/schedule_name", "value": SCHEDULE}]}
                )
                run = runs[-1] if runs and runs[-1]["status"] == "STARTED" else None
            if run is not None and pid is None:
                pid = _run_worker_pid(self.deploy, run["runId"], required=False)
            if pid is not None and any(
                "failpoint store.put reached" in s.text()
                for name, s in self.deploy.services.items()
                if name.startswith("worker")
            ):
                os.kill(pid, signal.SIGKILL)
                self.killed, self.killed_at = run, time.time()
                return
            time.sleep(0.2)
        raise self.deploy.fail(
            f"the scheduled run of {self.report_date} (run {run}, pid {pid}) never reached its "
            "live snapshot"
        )

    def check(self) -> None:
        if self.error is not None:
            raise self.error


def _assert_published_once(
    deploy: Deployment,
    store: ObjectStore,
    warehouse_url: str,
    reference: dict[date, Any],
    runs: list[dict[str, Any]],
    yesterday: str,
    retry: dict[str, Any],
) -> None:
    """One version per date in the warehouse, by the date's successful run, with the rows of the
    in-process run; one materialisation of the files per date in the instance."""
    import dagster as dg
    import sqlalchemy as sa

    run_of = {d.isoformat(): runs[0]["runId"] for d in DATES}  # the backfill's one run
    run_of[yesterday] = retry["runId"]
    engine = sa.create_engine(warehouse_url)
    try:
        with engine.connect() as conn:
            versions = conn.execute(
                sa.text("select report_date, run_id from settlement_report_versions")
            ).all()
            counts = dict(
                conn.execute(
                    sa.text(
                        "select report_date, count(*) from settlement_balance_report "
                        "group by report_date"
                    )
                ).all()
            )
    finally:
        engine.dispose()
    by_date: dict[str, list[str]] = {}
    for day, run_id in versions:
        by_date.setdefault(str(day), []).append(run_id)
    assert by_date == {day: [run_id] for day, run_id in run_of.items()}, by_date
    for day, rows in reference.items():
        assert read_csv_rows(store.get(report_keys(day)["csv"])) == rows, day
        assert counts[day] == len(rows), (day, counts[day], len(rows))
    with dg.DagsterInstance.from_config(deploy.env["DAGSTER_HOME"]) as instance:
        records = instance.fetch_materializations(
            dg.AssetKey("settlement_balance_files"), limit=100
        ).records
        per_date: dict[str, int] = {}
        for record in records:
            partition = record.partition_key or ""
            per_date[partition] = per_date.get(partition, 0) + 1
    assert per_date == {day: 1 for day in run_of}, per_date


def _assert_pools_held(deploy: Deployment) -> None:
    """No two snapshot steps of one venue overlapped, whichever run, date or worker."""
    import dagster as dg

    with dg.DagsterInstance.from_config(deploy.env["DAGSTER_HOME"]) as instance:
        spans: dict[str, list[tuple[float, float, str]]] = {}
        for record in instance.get_run_records():
            for stat in instance.get_run_step_stats(record.dagster_run.run_id):
                if not stat.step_key.endswith("__raw_snapshot") or stat.start_time is None:
                    continue
                kind = SOURCES[stat.step_key.removesuffix("__raw_snapshot")]
                end = stat.end_time or time.time()
                spans.setdefault(kind, []).append((stat.start_time, end, stat.run_id))
    assert set(spans) == set(SOURCES.values()), spans
    for kind, steps in spans.items():
        steps.sort()
        for (_, end, run_a), (start, _, run_b) in itertools.pairwise(steps):
            assert start >= end - 0.05, f"{kind}: steps of {run_a} and {run_b} overlapped"
