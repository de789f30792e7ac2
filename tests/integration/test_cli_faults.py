"""The command line under a storage or warehouse outage: one line naming the cause, exit 1.

A real `etl-balances run` process, with the object store (boto3 against a closed port) or the
warehouse (PostgreSQL at a closed port) unreachable: no traceback, no Dagster log, the cause.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.conftest import FIXTURES, free_port

REPO = Path(__file__).resolve().parents[2]
DAY = "2026-11-20"


def _run(
    tmp_path: Path, storage: str, warehouse: str, report: bytes | None = None
) -> subprocess.CompletedProcess[str]:
    seed = (FIXTURES / "settlement_report_seed000.csv").read_bytes()
    (tmp_path / f"{DAY}.csv").write_bytes(report or seed)
    config = tmp_path / "config.yaml"
    config.write_text(
        f"storage: {storage}\n"
        f"warehouse: {warehouse}\n"
        "sources:\n"
        "  - name: settle\n"
        "    kind: settlement_report\n"
        f"    location: {tmp_path}/{{date}}.csv\n"
        "report:\n"
        "  venue_retries: 0\n"
        "  start_date: '2026-01-01'\n",
        encoding="utf-8",
    )
    env = {
        **os.environ,
        "AWS_ENDPOINT_URL": f"http://127.0.0.1:{free_port()}",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_MAX_ATTEMPTS": "1",
    }
    env.pop("DAGSTER_HOME", None)
    return subprocess.run(
        [sys.executable, "-m", "assets.cli", "run", "--config", str(config), "--date", DAY],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )


def test_s3_down_ends_in_one_line_naming_the_store(tmp_path: Path) -> None:
    done = _run(tmp_path, "s3://etl-down/lake", f"duckdb:///{tmp_path / 'wh.duckdb'}")
    assert done.returncode == 1
    assert "Traceback" not in done.stderr + done.stdout
    assert done.stdout.splitlines() == [f"{DAY}: FAILED, 0 rows, missing"]
    [line] = done.stderr.splitlines()
    assert line.startswith(
        "  failed: settle__raw_snapshot: object store: Could not connect to the endpoint URL: "
        '"http://127.0.0.1:'
    ), line
    assert "127.0.0.1" in line and "/etl-down" in line


def test_warehouse_down_ends_in_one_line_naming_the_warehouse(tmp_path: Path) -> None:
    port = free_port()
    done = _run(tmp_path, str(tmp_path / "lake"), f"postgresql+psycopg://etl:pw@127.0.0.1:{port}/x")
    assert done.returncode == 1
    assert "Traceback" not in done.stderr + done.stdout
    assert "pw@" not in done.stderr + done.stdout
    lines = done.stderr.splitlines()
    assert lines, done.stdout
    assert all("warehouse" in line for line in lines), lines
    assert any(f"127.0.0.1:{port}" in line or "refused" in line for line in lines), lines
    assert done.stdout.splitlines()[-1] == f"{DAY}: FAILED, 0 rows, missing"


def test_a_past_date_is_rebuilt_from_its_dated_report_file(tmp_path: Path) -> None:
    """A dated settlement report file is history: no stored snapshot is needed for 2026-11-20."""
    done = _run(tmp_path, str(tmp_path / "lake"), f"duckdb:///{tmp_path / 'wh.duckdb'}")
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    lines = done.stdout.splitlines()
    assert lines[0] == f"{DAY}: OK, 3 rows, complete"
    assert "  rows: settle: delivered 4 = published 3 + dropped all-zero 1 + quarantined 0" in lines


def test_a_report_row_listed_twice_is_quarantined_both_times_and_the_run_goes_on(
    tmp_path: Path,
) -> None:
    seed = (FIXTURES / "settlement_report_seed000.csv").read_bytes()
    header, first, *rest = seed.decode("utf-8").splitlines(keepends=True)
    report = (header + first + first + "".join(rest)).encode("utf-8")
    done = _run(tmp_path, str(tmp_path / "lake"), f"duckdb:///{tmp_path / 'wh.duckdb'}", report)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == f"{DAY}: OK, 2 rows, complete"
    assert "  rows: settle: delivered 5 = published 2 + dropped all-zero 1 + quarantined 2" in lines
    quarantine = json.loads(
        (
            tmp_path
            / "lake/quarantine/settlement_balance"
            / f"date={DAY}"
            / f"quarantine_{DAY}.json"
        ).read_text(encoding="utf-8")
    )
    assert [q["reason"] for q in quarantine] == [
        "duplicate (accountUUID, Ccy): listed 2 times by the venue"
    ] * 2
