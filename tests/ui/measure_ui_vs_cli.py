"""Wall times of the same work from the CLI and from the UI, on this machine (docs/ui.md).

    .venv/bin/python -m tests.ui.measure_ui_vs_cli [--code DIR] [--no-backfill]

- one date (today, fetched live from the venue simulator): `etl-balances run --date D` (the
  whole command, interpreter start included) vs a run of `daily_settlement_report` launched
  through the webserver's GraphQL `launchRun`, as "Materialize all" on the job's page does
  (from the launch until the UI shows the run succeeded);
- three past dates (replayed from stored snapshots): `etl-balances backfill` vs a UI asset
  backfill (`launchPartitionBackfill`), until its last run ended and until the backfill daemon
  marked it done (it wakes every 30 s).

`--code DIR` times another checkout of this repo (e.g. `git archive HEAD | tar -x -C DIR`), run
with `PYTHONPATH=DIR` and started as `dagster dev -w DIR/workspace.yaml`: how the UI did before.
Not a test: it takes minutes.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from datetime import UTC, date, datetime
from pathlib import Path

from assets.cli import DEMO_ENV
from etl_project.simulator import Simulator, SimulatorConfig
from tests.integration.helpers import store_past_snapshots
from tests.ui.stack import (
    REPO,
    SOURCES,
    Ui,
    demo_env,
    launch_asset_backfill,
    launch_job_run,
    run_events,
    run_record,
    running_ui,
    wait_for_backfill,
    wait_for_run,
    wait_for_runs,
    write_ui_config,
)

PAST = [date(2026, 3, 1), date(2026, 3, 2), date(2026, 3, 3)]
ASSET_KEYS = """{ assetNodes { assetKey { path } } }"""


def _timed(args: Sequence[str], env: dict[str, str]) -> float:
    start = time.monotonic()
    done = subprocess.run(args, env=env, capture_output=True, text=True, check=False)
    elapsed = time.monotonic() - start
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(args)} failed ({done.returncode}):\n{done.stderr}")
    return elapsed


def _worker_starts(ui: Ui, run_id: str) -> int:
    """Step worker processes the run started (Dagster's multiprocess executor: one per step)."""
    return sum(1 for e in run_events(ui, run_id) if e.get("eventType") == "STEP_WORKER_STARTING")


def measure_cli(tmp: Path, env: dict[str, str], today: date, backfill: bool) -> dict[str, float]:
    sim = Simulator(SimulatorConfig(seed=7)).start()
    try:
        config = write_ui_config(tmp, sim.url)
        for source in SOURCES:
            store_past_snapshots(config, PAST, source=source)
        cli = [sys.executable, "-m", "assets.cli"]
        times = {
            "cli_one_date_s": _timed(
                [*cli, "run", "--config", str(config), "--date", today.isoformat()], env
            ),
        }
        if backfill:
            times["cli_backfill_3_dates_s"] = _timed(
                [
                    *cli,
                    "backfill",
                    "--config",
                    str(config),
                    "--start",
                    PAST[0].isoformat(),
                    "--end",
                    PAST[-1].isoformat(),
                ],
                env,
            )
        return times
    finally:
        sim.stop()


def measure_ui(tmp: Path, code: Path | None, today: date, backfill: bool) -> dict[str, float | str]:
    command = None
    sim: Simulator | None = None
    if code is not None:  # another checkout: its own `dagster dev`, the simulator from here
        command = [
            sys.executable,
            "-m",
            "dagster",
            "dev",
            "-w",
            str(code / "workspace.yaml"),
            "-p",
            "{port}",
        ]
    started = time.monotonic()
    with running_ui(tmp, command=command, pythonpath=code) as ui:
        ready = time.monotonic() - started
        if code is not None:
            port = int(ui.sim_url.rsplit(":", 1)[1])
            sim = Simulator(SimulatorConfig(seed=7, port=port)).start()
        try:
            for source in SOURCES:
                store_past_snapshots(ui.config, PAST, source=source)
            result: dict[str, float | str] = {"ui_ready_s": ready}
            launched = time.monotonic()
            run_id = launch_job_run(ui, today.isoformat())
            run = wait_for_run(ui, run_id)
            assert run["status"] == "SUCCESS", run
            result["ui_one_date_s"] = time.monotonic() - launched
            result["ui_one_date_queue_and_worker_start_s"] = run["startTime"] - run["creationTime"]
            result["ui_one_date_run_s"] = run["endTime"] - run["startTime"]
            result["ui_one_date_step_workers"] = _worker_starts(ui, run_id)
            if backfill:
                keys = [
                    "/".join(n["assetKey"]["path"])
                    for n in ui.dev.graphql(ASSET_KEYS)["assetNodes"]
                ]
                launched, launched_at = time.monotonic(), time.time()
                backfill_id = launch_asset_backfill_paths(ui, keys, [d.isoformat() for d in PAST])
                runs = wait_for_runs(ui, backfill_id, len(PAST))
                result["ui_backfill_3_dates_runs_done_s"] = time.monotonic() - launched
                records = [run_record(ui, r["runId"]) for r in runs]
                first_created = min(r["creationTime"] for r in records)
                result["ui_backfill_daemon_submitted_runs_after_s"] = first_created - launched_at
                result["ui_backfill_first_run_created_to_last_run_end_s"] = (
                    max(r["endTime"] for r in records) - first_created
                )
                result["ui_backfill_each_run_s"] = ", ".join(
                    f"{r['endTime'] - r['startTime']:.1f}" for r in records
                )
                done = wait_for_backfill(ui, backfill_id)
                result["ui_backfill_3_dates_marked_done_s"] = time.monotonic() - launched
                result["ui_backfill_status"] = str(done["status"])
                result["ui_backfill_step_workers"] = sum(
                    _worker_starts(ui, r["runId"]) for r in runs
                )
            return result
        finally:
            if sim is not None:
                sim.stop()


def launch_asset_backfill_paths(ui: Ui, keys: Sequence[str], partitions: Sequence[str]) -> str:
    """`launch_asset_backfill` for keys given as `a/b` user strings (old or new key shapes)."""
    if all("/" not in k for k in keys):
        return launch_asset_backfill(ui, keys, partitions)
    from tests.ui.stack import LAUNCH_BACKFILL

    params = {
        "assetSelection": [{"path": k.split("/")} for k in keys],
        "partitionNames": list(partitions),
        "fromFailure": False,
        "tags": [],
    }
    answer = ui.dev.graphql(LAUNCH_BACKFILL, {"backfillParams": params})
    backfill_id: str = answer["launchPartitionBackfill"]["backfillId"]
    return backfill_id


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--code", type=Path, help="another checkout of this repo to time")
    parser.add_argument("--no-backfill", action="store_true")
    args = parser.parse_args(argv)
    code = args.code.resolve() if args.code else None
    env = demo_env()
    for var in DEMO_ENV:  # the snapshots stored from here read the config too
        os.environ[var] = env[var]
    if code is not None:
        env["PYTHONPATH"] = str(code)
    today = datetime.now(UTC).date()
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "cli").mkdir()
        (Path(tmp) / "ui").mkdir()
        cli = measure_cli(Path(tmp) / "cli", env, today, not args.no_backfill)
        ui = measure_ui(Path(tmp) / "ui", code, today, not args.no_backfill)
    print(f"code: {code or REPO}   cores: {os.cpu_count()}   date: {today}")
    for name, value in {**cli, **ui}.items():
        print(f"  {name:<40} {value:.1f}" if isinstance(value, float) else f"  {name:<40} {value}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
