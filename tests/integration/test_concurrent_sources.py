"""Sources are fetched at the same time: a slow venue no longer delays every other source.

`etl-balances run` used to run the job's steps one after another, so a Saxo source sitting out
its rate limit for two minutes made every other source wait two minutes. Now the steps whose
inputs are ready run at once, in threads of the one process (`execute_concurrently`), while
each venue's own limits still hold: the Saxo source's requests are paced by its limiter, and
two sources of one venue kind (one Dagster pool, `venue_<kind>`) still take turns.

A venue is made slow by holding its first request unanswered for a few seconds (a simulator
hang, then a 503 with `Retry-After: 0`, retried at once): the Saxo rate limit itself cannot
serve here, as its sliding 60-second window lets a burst through and only then makes a source
wait, in steps of a minute.
"""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from assets.cli import DEMO_ENV
from assets.runner import RunSummary, run_report
from etl_project.simulator import Simulator, SimulatorConfig

REPO = Path(__file__).resolve().parents[2]

#: Seconds each venue's first request hangs: Saxo the slowest, as in production.
SAXO_HANG = 4.0
OTHER_HANG = 2.5
#: Wall-time bound of the run with every source: 110 % of the Saxo-only run, plus this for the
#: report, checks and publish of three sources' rows instead of one's.
SLACK_SECONDS = 1.5


@pytest.fixture()
def sim(monkeypatch: pytest.MonkeyPatch) -> Iterator[Simulator]:
    """A simulator with a Saxo client of 12 accounts (seed 7), and its credentials in the env."""
    config = SimulatorConfig(seed=7, saxo_accounts=12)
    for var, attr in DEMO_ENV.items():
        monkeypatch.setenv(var, getattr(config, attr))
    simulator = Simulator(config)
    simulator.start()
    try:
        yield simulator
    finally:
        simulator.stop()


def source_yaml(sim: Simulator, name: str, kind: str) -> str:
    """One source of `kind` on the simulator, credentials through ${VAR} like the demo's."""
    if kind == "saxo":
        return (
            f"  - name: {name}\n    kind: saxo\n    base_url: {sim.saxo_base_url}\n"
            "    access_token: ${DEMO_SAXO_ACCESS_TOKEN}\n"
        )
    if kind == "kraken_futures":
        return (
            f"  - name: {name}\n    kind: kraken_futures\n    base_url: {sim.kraken_base_url}\n"
            "    api_key: ${DEMO_KRAKEN_API_KEY}\n    api_secret: ${DEMO_KRAKEN_API_SECRET}\n"
            "    account_group: Demo\n"
        )
    assert kind == "platform"
    return (
        f"  - name: {name}\n    kind: platform\n    base_url: {sim.url}\n"
        "    api_token: ${DEMO_PLATFORM_API_TOKEN}\n"
    )


def write_config(
    folder: Path, sim: Simulator, sources: dict[str, str], *, venue_retries: int = 0
) -> Path:
    """A config with `sources` (name -> kind) on the simulator, a local folder and DuckDB."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "config.yaml"
    path.write_text(
        f"storage: {folder / 'lake'}\n"
        f"warehouse: duckdb:///{folder / 'wh.duckdb'}\n"
        "sources:\n"
        + "".join(source_yaml(sim, name, kind) for name, kind in sources.items())
        + f"report:\n  venue_retries: {venue_retries}\n  venue_retry_delay_seconds: 0\n",
        encoding="utf-8",
    )
    return path


def hang_first_request(sim: Simulator, kind: str, seconds: float, times: int = 1) -> None:
    """The next `times` requests to the venue of `kind` (the simulator names its venues by
    source kind) hang `seconds`, then answer 503 with `Retry-After: 0` (retried at once)."""
    sim.set_fault(kind, status=503, times=times, retry_after=0, hang_seconds=seconds)


def timed_run(config: Path) -> tuple[float, RunSummary]:
    started = time.monotonic()
    summary = run_report(str(config), datetime.now(UTC).date())
    return time.monotonic() - started, summary


def delivered(summary: RunSummary) -> set[str]:
    """Sources with an accounting line ("<source>: delivered N = ...") in the summary."""
    return {line.split(":", 1)[0] for line in summary.accounting if ": delivered " in line}


def test_saxo_with_kraken_and_platform_takes_as_long_as_saxo_alone(
    sim: Simulator, tmp_path: Path
) -> None:
    saxo_only = write_config(tmp_path / "saxo", sim, {"saxo_main": "saxo"})
    everything = write_config(
        tmp_path / "all",
        sim,
        {"saxo_main": "saxo", "kraken_main": "kraken_futures", "platform_main": "platform"},
    )
    timed_run(write_config(tmp_path / "warm-up", sim, {"saxo_main": "saxo"}))  # imports, caches

    hang_first_request(sim, "saxo", SAXO_HANG)
    saxo_seconds, saxo_summary = timed_run(saxo_only)
    assert saxo_summary.success, saxo_summary.failures
    assert saxo_seconds >= SAXO_HANG

    for kind, hang in (
        ("saxo", SAXO_HANG),
        ("kraken_futures", OTHER_HANG),
        ("platform", OTHER_HANG),
    ):
        hang_first_request(sim, kind, hang)
    all_seconds, summary = timed_run(everything)

    # One after another, this run would take the Saxo run's time plus both other hangs (5 s).
    assert all_seconds <= 1.1 * saxo_seconds + SLACK_SECONDS, (all_seconds, saxo_seconds)
    assert summary.success, summary.failures
    assert delivered(summary) == {"saxo_main", "kraken_main", "platform_main"}
    assert summary.completeness in ("complete", "partial")  # published (platform: 1 gap)
    assert summary.rows > saxo_summary.rows


def test_steps_of_one_venue_take_turns_while_other_venues_run_alongside(
    sim: Simulator, tmp_path: Path
) -> None:
    """Two Saxo sources share the pool `venue_saxo`: never at once (as with the serial executor)
    while Kraken's snapshot runs beside them."""
    import dagster as dg

    from assets.definitions import JOB_NAME, build_definitions
    from assets.threaded_executor import execute_concurrently

    config = write_config(
        tmp_path,
        sim,
        {"saxo_a": "saxo", "saxo_b": "saxo", "kraken_main": "kraken_futures"},
    )
    hang_first_request(sim, "saxo", 1.5, times=2)
    hang_first_request(sim, "kraken_futures", 1.5)
    job = build_definitions(config).resolve_job_def(JOB_NAME)
    with dg.DagsterInstance.ephemeral() as instance:
        result = execute_concurrently(
            job, partition_key=datetime.now(UTC).date().isoformat(), instance=instance
        )
        assert result.success
        stats = {s.step_key: s for s in instance.get_run_step_stats(result.run_id)}

    def span(source: str) -> tuple[float, float]:
        step = stats[f"{source}__raw_snapshot"]
        assert step.start_time is not None and step.end_time is not None
        return step.start_time, step.end_time

    def overlap(a: tuple[float, float], b: tuple[float, float]) -> bool:
        return a[0] < b[1] and b[0] < a[1]

    assert not overlap(span("saxo_a"), span("saxo_b"))
    assert overlap(span("kraken_main"), span("saxo_a")) or overlap(
        span("kraken_main"), span("saxo_b")
    )
    # Each source's assets still materialise on their own, with their own metadata.
    status = {
        ev.asset_key.to_user_string(): ev.materialization.metadata.get("status")
        for ev in result.get_asset_materialization_events()
        if ev.asset_key is not None
    }
    for source in ("saxo_a", "saxo_b", "kraken_main"):
        for stage in ("raw_snapshot", "balances"):
            assert status[f"{source}__{stage}"] == dg.TextMetadataValue("ok")


def test_a_failing_source_is_retried_and_fails_alone(sim: Simulator, tmp_path: Path) -> None:
    """Dagster's retry of a failed source still happens in its thread; the other sources,
    fetched meanwhile, are published and the failure names the source."""
    config = write_config(
        tmp_path,
        sim,
        {"saxo_main": "saxo", "kraken_main": "kraken_futures", "platform_main": "platform"},
        venue_retries=1,
    )
    sim.set_fault("kraken_futures", status=503, times=1000, retry_after=0)
    _, summary = timed_run(config)

    assert not summary.success
    assert any(line.startswith("kraken_main") for line in summary.failures), summary.failures
    assert delivered(summary) == {"saxo_main", "platform_main"}
    first_attempt = 4  # the HTTP layer's attempts of the source's first call
    assert sim.request_count("kraken_futures") > first_attempt  # the step ran a second time


def test_with_a_dagster_home_the_instance_grants_each_venue_its_pool_slot(
    sim: Simulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With `DAGSTER_HOME` (this repo's dagster.yaml: one slot per venue pool), each source's
    snapshot claims its venue's slot from the instance, as across runs of other dates; the
    three venues still run at once, and every slot is given back."""
    import dagster as dg

    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copy(REPO / "dagster.yaml", home / "dagster.yaml")
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    sources = {"saxo_main": "saxo", "kraken_main": "kraken_futures", "platform_main": "platform"}
    config = write_config(tmp_path / "run", sim, sources)
    for kind in sources.values():
        hang_first_request(sim, kind, OTHER_HANG)
    _, summary = timed_run(config)
    assert summary.success, summary.failures

    with dg.DagsterInstance.get() as instance:
        (run,) = instance.get_runs()
        stats = {s.step_key: s for s in instance.get_run_step_stats(run.run_id)}
        spans = [
            (stats[f"{name}__raw_snapshot"].start_time, stats[f"{name}__raw_snapshot"].end_time)
            for name in sources
        ]
        latest_start = max(start for start, _ in spans if start is not None)
        earliest_end = min(end for _, end in spans if end is not None)
        assert latest_start < earliest_end  # all three snapshots were running at one moment
        storage = instance.event_log_storage
        pools = {f"venue_{kind}" for kind in sources.values()}
        assert pools <= storage.get_concurrency_keys()  # claimed through the instance
        assert all(storage.get_concurrency_info(pool).active_slot_count == 0 for pool in pools)


def test_ctrl_c_ends_the_run_at_once_and_names_the_interruption(
    sim: Simulator, tmp_path: Path
) -> None:
    """A step hanging in its thread cannot be stopped, so Ctrl-C ends the run without waiting
    for it (its thread dies with the process), and the operator is told why the run failed."""
    config = write_config(tmp_path, sim, {"saxo_main": "saxo", "kraken_main": "kraken_futures"})
    sim.set_hang("saxo", hang_seconds=60)
    day = datetime.now(UTC).date().isoformat()
    child = subprocess.Popen(
        [sys.executable, "-m", "assets.cli", "run", "--config", str(config), "--date", day],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=REPO,
    )
    try:
        deadline = time.monotonic() + 60
        while sim.request_count("saxo") == 0:  # the Saxo snapshot is running, and hangs
            assert child.poll() is None and time.monotonic() < deadline
            time.sleep(0.05)
        interrupted = time.monotonic()
        child.send_signal(signal.SIGINT)
        out, err = child.communicate(timeout=30)
    finally:
        child.kill()
        sim.clear_faults()
    assert time.monotonic() - interrupted < 10  # not the 60 s the hang would take
    assert child.returncode == 1
    assert "  failed: run: Execution was interrupted unexpectedly." in err.splitlines()
    assert out.splitlines()[0].endswith(": FAILED, 0 rows, missing")


def test_simulate_takes_account_counts_and_the_saxo_rate_limit(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """`etl-balances simulate` serves what the options say, e.g. production's slow Saxo source
    (300 accounts, pages of 100, 120 requests/minute); the rest keep SimulatorConfig's values."""
    import etl_project.simulator as simulator
    from assets.cli import main

    served: list[SimulatorConfig] = []
    monkeypatch.setattr(simulator, "serve_forever", served.append)
    argv = ["simulate", "--port", "0", "--saxo-accounts", "300", "--saxo-page-size", "100"]
    argv += ["--saxo-rate-limit-per-minute", "120", "--platform-accounts", "7"]
    argv += ["--settlement-report-accounts", "50", "--kraken-subaccounts", "0"]
    assert main(argv) == 0
    (config,) = served
    assert (config.saxo_accounts, config.saxo_page_size, config.saxo_rate_limit_per_minute) == (
        300,
        100,
        120,
    )
    assert (config.platform_accounts, config.settlement_report_accounts) == (7, 50)
    assert config.kraken_subaccounts == 0
    assert config.platform_failed_accounts == SimulatorConfig().platform_failed_accounts

    with pytest.raises(SystemExit) as exit_info:
        main(["simulate", "--saxo-rate-limit-per-minute", "0"])
    assert exit_info.value.code == 2
    assert "must be at least 1: 0" in capsys.readouterr().err
