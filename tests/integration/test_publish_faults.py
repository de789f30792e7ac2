"""A date is published as one unit: faults injected for real at every step of the protocol.

Faults: PostgreSQL behind a TCP proxy that is cut just before the commit; moto's S3 server
behind a proxy cut while the files are promoted; a real `etl-balances run` process SIGKILLed
in the middle of writing the JSON file and right after the commit. After each fault a reader
sees the previous version, or the date marked publishing/failed, never a mix called complete;
a rerun converges to one new version everywhere.
"""

from __future__ import annotations

import os
import signal
import stat
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlparse

import pytest

from assets.runner import run_report
from etl_project import failpoints
from etl_project.simulator import DEFAULT_KRAKEN_API_KEY, DEFAULT_KRAKEN_API_SECRET
from tests.integration.helpers import FIXTURES, write_config
from tests.integration.publish_view import read_view
from tests.tcp_proxy import TcpProxy

TODAY = datetime.now(UTC).date()
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def _env(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("TEST_KRAKEN_KEY", DEFAULT_KRAKEN_API_KEY)
    monkeypatch.setenv("TEST_KRAKEN_SECRET", DEFAULT_KRAKEN_API_SECRET)
    yield
    failpoints.disarm()


@pytest.fixture()
def seed003(simulator):  # type: ignore[no-untyped-def]
    simulator.serve_payload(
        "kraken_futures", (FIXTURES / "kraken_futures_seed003.json").read_bytes()
    )
    return simulator


def _config(tmp_path: Path, simulator, storage: str, warehouse: str) -> Path:  # type: ignore[no-untyped-def]
    return write_config(
        tmp_path, storage=storage, warehouse=warehouse, kraken_url=simulator.kraken_base_url
    )


@pytest.mark.postgres
def test_postgres_cut_before_commit_keeps_previous_version(
    seed003, tmp_path: Path, pg_schema: str
) -> None:
    storage = str(tmp_path / "lake")
    pg = urlparse(pg_schema)
    with TcpProxy(pg.hostname or "127.0.0.1", pg.port or 5432) as proxy:
        proxied = pg_schema.replace(f"{pg.hostname}:{pg.port}", f"127.0.0.1:{proxy.port}")
        config = _config(tmp_path, seed003, storage, proxied)
        first = run_report(str(config), TODAY)
        assert first.success, first.failures
        v1 = read_view(storage, pg_schema, TODAY)
        v1_run = v1.status["run_id"]  # type: ignore[index]
        v1.assert_one_version(v1_run)

        failpoints.arm("publish.before_commit", lambda _key: proxy.cut())
        failed = run_report(str(config), TODAY)
        failpoints.disarm()
        assert not failed.success
        publish_lines = [f for f in failed.failures if "publish" in f]
        assert len(publish_lines) == 1, failed.failures
        assert "\n" not in publish_lines[0]
        assert f"publish {TODAY}: warehouse postgresql+psycopg://" in publish_lines[0]
        after = read_view(storage, pg_schema, TODAY)
        after.assert_never_complete_and_disagreeing()
        after.assert_one_version(v1_run)  # the previous version, everywhere
        assert after.status["last_failed_attempt"]["cause"].startswith("warehouse ")  # type: ignore[index]

        proxy.restore()
        rerun = run_report(str(config), TODAY)
        assert rerun.success, rerun.failures
    final = read_view(storage, pg_schema, TODAY)
    v3_run = final.status["run_id"]  # type: ignore[index]
    assert v3_run != v1_run
    final.assert_one_version(v3_run)
    assert [(v["run_id"], v["state"]) for v in final.versions] == [
        (v1_run, "superseded"),
        (v3_run, "current"),
    ]
    assert final.versions[1]["previous_run_id"] == v1_run


@pytest.mark.s3
def test_s3_cut_while_promoting_marks_the_date_failed_then_rerun_converges(
    seed003, tmp_path: Path, s3_location: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    endpoint = urlparse(os.environ["AWS_ENDPOINT_URL"])
    warehouse = f"duckdb:///{tmp_path / 'wh.duckdb'}"
    with TcpProxy(endpoint.hostname or "127.0.0.1", endpoint.port or 80) as proxy:
        monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{proxy.port}")
        monkeypatch.setenv("AWS_MAX_ATTEMPTS", "2")
        config = _config(tmp_path, seed003, s3_location, warehouse)
        first = run_report(str(config), TODAY)
        assert first.success, first.failures
        v1_run = read_view(s3_location, warehouse, TODAY).status["run_id"]  # type: ignore[index]

        def cut_at_json(key: str) -> None:
            if key.endswith(".json") and "settlement_balance_" in key:
                proxy.cut()  # the CSV is already promoted: the old JSON/Parquet remain

        failpoints.arm("publish.promote", cut_at_json)
        failed = run_report(str(config), TODAY)
        failpoints.disarm()
        proxy.restore()
        assert not failed.success
        assert any(
            "committed to the warehouse but not to every file (object store:" in f
            for f in failed.failures
        ), failed.failures
        view = read_view(s3_location, warehouse, TODAY)
        view.assert_never_complete_and_disagreeing()
        # The store was down, so `_status.json` still says publishing; the warehouse, which
        # was up, says failed with the cause. Neither says complete.
        assert view.file_state == "publishing"
        assert view.warehouse_status["completeness"] == "failed"  # type: ignore[index]
        assert "object store" in view.warehouse_status["cause"]  # type: ignore[index]
        assert len(view.parquet_run_ids | view.warehouse_run_ids) == 2  # really half-promoted

        rerun = run_report(str(config), TODAY)
        assert rerun.success, rerun.failures
        final = read_view(s3_location, warehouse, TODAY)
    final.assert_one_version(final.status["run_id"])  # type: ignore[index]
    assert v1_run != final.status["run_id"]  # type: ignore[index]


def _cli(config: Path, env_extra: dict[str, str]) -> subprocess.Popen[str]:
    env = {**os.environ, **env_extra}
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "assets.cli",
            "run",
            "--config",
            str(config),
            "--date",
            TODAY.isoformat(),
        ],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _kill_at(config: Path, point: str) -> None:
    """Run `etl-balances run` until it pauses at `point`, then SIGKILL it."""
    proc = _cli(config, {"ETL_FAILPOINTS": f"{point}=pause:120"})
    assert proc.stderr is not None
    try:
        for line in proc.stderr:
            if line.startswith("failpoint ") and "reached" in line:
                break
        else:
            pytest.fail(f"the run ended before {point}: exit {proc.wait()}")
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        assert proc.wait(30) == -signal.SIGKILL


def test_sigkill_during_json_write_then_later_run_leaves_no_temp_file(
    seed003, tmp_path: Path
) -> None:
    storage = str(tmp_path / "lake")
    warehouse = f"duckdb:///{tmp_path / 'wh.duckdb'}"
    config = _config(tmp_path, seed003, storage, warehouse)
    first = run_report(str(config), TODAY)
    assert first.success, first.failures
    v1_run = read_view(storage, warehouse, TODAY).status["run_id"]  # type: ignore[index]

    _kill_at(config, f"store.put@settlement_balance_{TODAY}.json")
    date_dir = Path(storage) / "reports" / "settlement_balance" / f"date={TODAY}"
    assert list(date_dir.rglob(".tmp-*")), "the kill should leave a half-written temp file"
    after = read_view(storage, warehouse, TODAY)
    after.assert_never_complete_and_disagreeing()
    after.assert_one_version(v1_run)

    rerun = run_report(str(config), TODAY)
    assert rerun.success, rerun.failures
    assert not list(Path(storage).rglob(".tmp-*"))
    final = read_view(storage, warehouse, TODAY)
    final.assert_one_version(final.status["run_id"])  # type: ignore[index]
    umask = os.umask(0)
    os.umask(umask)
    for path in date_dir.glob("settlement_balance_*"):
        assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~umask, path


def test_sigkill_right_after_commit_marks_publishing_until_rerun(seed003, tmp_path: Path) -> None:
    storage = str(tmp_path / "lake")
    warehouse = f"duckdb:///{tmp_path / 'wh.duckdb'}"
    config = _config(tmp_path, seed003, storage, warehouse)
    assert run_report(str(config), TODAY).success

    _kill_at(config, "publish.after_commit")
    view = read_view(storage, warehouse, TODAY)
    view.assert_never_complete_and_disagreeing()
    assert view.file_state == "publishing"
    assert view.warehouse_status["completeness"] == "publishing"  # type: ignore[index]
    assert view.status["run_id"] == view.warehouse_status["run_id"]  # type: ignore[index]

    assert run_report(str(config), TODAY).success
    final = read_view(storage, warehouse, TODAY)
    final.assert_one_version(final.status["run_id"])  # type: ignore[index]
    assert len(final.versions) == 3  # v1, the killed run's (committed), the rerun
