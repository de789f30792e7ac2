"""Backfills on the production deployment: what a backfill of N dates costs, and how to replay
30 stored dates for about one run's overhead.

Each scenario boots the deployment of docs/deploy.md for real (code server, webserver, daemon on
a PostgreSQL instance; Celery workers on RabbitMQ; S3 on moto's server; the warehouse on
PostgreSQL; tests/deploy/stack.py), stores the raw snapshots of the dates (from the venue
simulator), launches a job backfill through the webserver's GraphQL API (what the UI sends),
and times it from the launch to the end of its last run:

- `single-run` (the deployment's default): Dagster's `BackfillPolicy.single_run()` on every
  per-date asset and check (assets/deployment.py): one run for the whole range, each step doing
  every date in turn;
- `per-date` (`ETL_BACKFILL_POLICY=per-date`): one run per date, Dagster's default, the runs'
  steps spread over the Celery workers; the daemon starts up to `max_concurrent_runs` of them.

Both load the same code location (`assets.deployment`); only the policy differs. After each
scenario the script checks that every date was published once (one version in the warehouse)
with the rows of the first date's report (the simulator serves the same balances every day).

Usage (needs PostgreSQL on 127.0.0.1:5432 and RabbitMQ on 127.0.0.1:5672, like `make test`):

    python benchmarks/bench_backfill.py          # the six measurements of docs/deploy.md
    python benchmarks/bench_backfill.py --dates 30 --workers 2 --policy single-run
    python benchmarks/bench_backfill.py --json out.json

Each scenario prints its wall time; `--json` writes them all. The machine's cores are shared by
every process of the deployment (2 cores here): numbers are for comparing, not for sizing.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date, timedelta
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

PG_URL = os.environ.get(
    "ETL_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
BROKER_URL = os.environ.get("DAGSTER_CELERY_BROKER_URL", "amqp://guest:guest@127.0.0.1:5672//")
JOB = "daily_settlement_report"
FIRST = date(2026, 3, 1)


# -- running one scenario -------------------------------------------------------------------


@contextmanager
def _services(root: Path) -> Iterator[dict[str, Any]]:
    """Simulator, moto's S3 server with a bucket, a PostgreSQL database for the instance and a
    schema for the warehouse; all removed afterwards."""
    import boto3
    import sqlalchemy as sa
    from moto.server import ThreadedMotoServer

    from etl_project.simulator import Simulator, SimulatorConfig
    from tests.deploy.stack import free_port

    port = free_port()
    moto = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    moto.start()
    sim = Simulator(SimulatorConfig(seed=7)).start()
    suffix = uuid.uuid4().hex[:10]
    db, schema, bucket = f"dagster_bench_{suffix}", f"bench_{suffix}", f"bench-{suffix}"
    admin = sa.create_engine(PG_URL, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(sa.text(f'create database "{db}"'))
            conn.execute(sa.text(f"create schema {schema}"))
        endpoint = f"http://127.0.0.1:{port}"
        aws = {
            "AWS_ENDPOINT_URL": endpoint,
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": "us-east-1",
        }
        os.environ.update(aws)
        boto3.client("s3", endpoint_url=endpoint).create_bucket(Bucket=bucket)
        yield {"sim": sim, "db": db, "schema": schema, "bucket": bucket, "aws": aws}
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'drop database if exists "{db}" with (force)'))
            conn.execute(sa.text(f"drop schema if exists {schema} cascade"))
        admin.dispose()
        sim.stop()
        moto.stop()


def run_scenario(dates: int, workers: int, policy: str) -> dict[str, Any]:
    """Boot the deployment, backfill `dates` stored dates, return the timings."""
    from etl_project.simulator import DEFAULT_KRAKEN_API_KEY, DEFAULT_KRAKEN_API_SECRET
    from tests.deploy.stack import (
        BACKFILL_DONE,
        BACKFILL_STATUS,
        LAUNCH_BACKFILL,
        LOCATION,
        RUN_DONE,
        deployment,
        wait_for_workers,
        write_two_venue_config,
    )
    from tests.integration.helpers import store_past_snapshots

    days = [FIRST + timedelta(days=i) for i in range(dates)]
    with tempfile.TemporaryDirectory(prefix="bench_backfill_") as tmp, _services(Path(tmp)) as s:
        root = Path(tmp)
        sim = s["sim"]
        warehouse = f"{PG_URL}?options=-csearch_path%3D{s['schema']}"
        config = write_two_venue_config(
            root / "config.yaml", f"s3://{s['bucket']}/lake", warehouse, sim
        )
        env = dict(
            os.environ,
            TEST_KRAKEN_KEY=DEFAULT_KRAKEN_API_KEY,
            TEST_KRAKEN_SECRET=DEFAULT_KRAKEN_API_SECRET,
            TEST_SAXO_TOKEN=sim.config.saxo_access_token,
            DAGSTER_PG_HOST="127.0.0.1",
            DAGSTER_PG_PORT="5432",
            DAGSTER_PG_DB=s["db"],
            DAGSTER_PG_USER="postgres",
            DAGSTER_PG_PASSWORD="",
            DAGSTER_CELERY_BROKER_URL=BROKER_URL,
            ETL_CONFIG=str(config),
            ETL_BACKFILL_POLICY=policy,
        )
        os.environ.update({k: env[k] for k in ("TEST_KRAKEN_KEY", "TEST_KRAKEN_SECRET")})
        os.environ["TEST_SAXO_TOKEN"] = env["TEST_SAXO_TOKEN"]
        for source in ("kraken_main", "saxo_main"):
            store_past_snapshots(config, days, source=source)
        started = time.monotonic()
        with deployment(root / "deploy", env, workers=workers) as deploy:
            repository = deploy.wait_for_location(300)
            wait_for_workers(deploy, [f"worker{i + 1}" for i in range(workers)], 300)
            boot = time.monotonic() - started
            params = {
                "selector": {
                    "partitionSetName": f"{JOB}_partition_set",
                    "repositorySelector": {
                        "repositoryLocationName": LOCATION,
                        "repositoryName": repository,
                    },
                },
                "partitionNames": [d.isoformat() for d in days],
                "fromFailure": False,
                "tags": [],
                "title": f"bench: {dates} dates, {policy}",
            }
            launched_at = time.time()
            answer = deploy.graphql(LAUNCH_BACKFILL, {"backfillParams": params})
            launched = answer["launchPartitionBackfill"]
            assert launched["__typename"] == "LaunchBackfillSuccess", launched
            deploy.start_daemon()  # its first backfill iteration takes the backfill at once
            backfill_id = launched["backfillId"]

            def done() -> list[dict[str, Any]] | None:
                deploy.check_alive()
                status = deploy.graphql(BACKFILL_STATUS, {"backfillId": backfill_id})
                runs = deploy.runs({"tags": [{"key": "dagster/backfill", "value": backfill_id}]})
                if status["partitionBackfillOrError"]["status"] in BACKFILL_DONE and all(
                    r["status"] in RUN_DONE for r in runs
                ):
                    return runs
                return None

            runs = deploy.wait_until("backfill finished", done, 3600, 1.0)
            failed = [r for r in runs if r["status"] != "SUCCESS"]
            if failed:
                raise deploy.fail(f"runs failed:\n{deploy.failures(failed)}")
            end = max(r["endTime"] for r in runs)
            _check_published(config, warehouse, days)
            return {
                "dates": dates,
                "workers": workers,
                "policy": policy,
                "runs": len(runs),
                "boot_seconds": round(boot, 1),
                "launch_to_last_run_end_seconds": round(end - launched_at, 1),
                "first_run_start_to_last_run_end_seconds": round(
                    end - min(r["startTime"] for r in runs), 1
                ),
            }


DEFAULT_SCENARIOS = [
    (7, 1, "per-date"),
    (7, 2, "per-date"),
    (7, 1, "single-run"),
    (7, 2, "single-run"),
    (30, 2, "per-date"),
    (30, 2, "single-run"),
]


def _check_published(config: Path, warehouse: str, days: list[date]) -> None:
    """Every date published once (one version), each with the first date's rows."""
    import sqlalchemy as sa

    from etl_project.config import load_config
    from etl_project.report.serialise import read_csv_rows
    from etl_project.sinks.files import report_keys
    from etl_project.sinks.object_store import open_store

    store = open_store(load_config(config).storage)
    rows = [read_csv_rows(store.get(report_keys(day)["csv"])) for day in days]
    assert rows[0] and all(len(r) == len(rows[0]) for r in rows), [len(r) for r in rows]
    engine = sa.create_engine(warehouse)
    try:
        with engine.connect() as conn:
            versions = conn.execute(
                sa.text("select report_date, count(*) from settlement_report_versions group by 1")
            ).all()
    finally:
        engine.dispose()
    assert {str(d): n for d, n in versions} == {d.isoformat(): 1 for d in days}, versions


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dates", type=int, help="dates to backfill (with --workers, --policy)")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--policy", choices=["per-date", "single-run"], default="single-run")
    parser.add_argument("--json", type=Path, help="write the results here")
    args = parser.parse_args(argv)
    scenarios = [(args.dates, args.workers, args.policy)] if args.dates else DEFAULT_SCENARIOS
    results = []
    for dates, workers, policy in scenarios:
        print(f"{dates} dates, {workers} worker(s), {policy}: ...", flush=True)
        result = run_scenario(dates, workers, policy)
        print(f"  {json.dumps(result)}", flush=True)
        results.append(result)
    print("\n| dates | workers | backfill policy | runs | launch -> last run end | runs' span |")
    print("|---:|---:|---|---:|---:|---:|")
    for r in results:
        print(
            f"| {r['dates']} | {r['workers']} | {r['policy']} | {r['runs']} "
            f"| {r['launch_to_last_run_end_seconds']} s "
            f"| {r['first_run_start_to_last_run_end_seconds']} s |"
        )
    if args.json:
        args.json.write_text(json.dumps(results, indent=2), encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
