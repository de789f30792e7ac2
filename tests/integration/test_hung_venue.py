"""A venue that accepts the connection and never answers costs one time budget, not retries.

Kraken hangs on the simulator; the settlement report (also on the simulator) answers. With a
3 s budget and two Dagster retries configured, the run must end in well under 3 budgets (the
defect multiplied HTTP retries x Dagster attempts x read timeout), Kraken must be a named
failure with its one-line reason, and the other source's rows must be published as partial.
"""

import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NoReturn

import dagster as dg
import pytest
import sqlalchemy as sa

from assets.runner import run_report
from assets.sources import source_deadline
from etl_project.errors import SourceTimeout
from etl_project.simulator import SimulatorConfig
from etl_project.stages import snapshot as snapshot_stage

TODAY = datetime.now(UTC).date()
BUDGET = 3.0
KRAKEN_FAILURE = (
    "kraken_hung: no answer within its time budget of 3s "
    "(GET /derivatives/api/v3/subaccounts: read timed out)"
)


@pytest.fixture()
def hung_kraken_config(simulator: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Kraken (hung) and the settlement report on the simulator; budget 3 s, 2 retries."""
    defaults = SimulatorConfig()
    monkeypatch.delenv("DAGSTER_HOME", raising=False)  # an ephemeral instance, like CI
    monkeypatch.setenv("HUNG_KRAKEN_KEY", defaults.kraken_api_key)
    monkeypatch.setenv("HUNG_KRAKEN_SECRET", defaults.kraken_api_secret)
    monkeypatch.setenv("HUNG_REPORT_TOKEN", defaults.settlement_report_api_token)
    path = tmp_path / "config.yaml"
    path.write_text(
        f"storage: {tmp_path / 'lake'}\n"
        f"warehouse: duckdb:///{tmp_path / 'wh.duckdb'}\n"
        "sources:\n"
        "  - name: kraken_hung\n"
        "    kind: kraken_futures\n"
        f"    base_url: {simulator.kraken_base_url}\n"
        "    api_key: ${HUNG_KRAKEN_KEY}\n"
        "    api_secret: ${HUNG_KRAKEN_SECRET}\n"
        "  - name: settlement_ok\n"
        "    kind: settlement_report\n"
        f"    location: {simulator.settlement_report_location()}\n"
        "    api_token: ${HUNG_REPORT_TOKEN}\n"
        "report:\n"
        f"  source_timeout_seconds: {BUDGET:g}\n"
        "  venue_retries: 2\n"
        "  venue_retry_delay_seconds: 0\n",
        encoding="utf-8",
    )
    return path


def test_a_hung_venue_costs_one_budget_and_the_others_publish(
    simulator: Any, hung_kraken_config: Path, tmp_path: Path
) -> None:
    simulator.set_hang("kraken_futures", hang_seconds=120)

    started = time.monotonic()
    summary = run_report(str(hung_kraken_config), TODAY)
    elapsed = time.monotonic() - started

    # One budget plus the run's own work: nowhere near budget x attempts x retries.
    assert elapsed < 2 * BUDGET + 3, f"run took {elapsed:.1f}s"
    # One request reached the hung venue: no HTTP retry, no Dagster retry of the timeout.
    assert simulator.request_count("kraken_futures") == 1
    assert simulator.request_count("settlement_report") >= 1

    assert summary.failures == [KRAKEN_FAILURE]
    assert summary.completeness == "partial"
    assert summary.gaps == [f"kraken_hung/*: {KRAKEN_FAILURE}"]
    assert summary.rows > 0 and summary.outputs  # the settlement report's rows were published

    engine = sa.create_engine(f"duckdb:///{tmp_path / 'wh.duckdb'}")
    with engine.connect() as conn:
        sources = conn.execute(
            sa.text("select distinct source from settlement_balance_report")
        ).scalars()
        published = set(sources)
    engine.dispose()
    assert published == {"settlement_ok"}


def test_dagster_retries_share_the_first_attempts_budget() -> None:
    """Retries read the first attempt's start from the run's event log: same deadline."""
    deadlines: list[float] = []

    @dg.asset(retry_policy=dg.RetryPolicy(max_retries=2, delay=0))
    def flaky(context: dg.AssetExecutionContext) -> None:
        deadlines.append(source_deadline(context, 100.0))
        if context.retry_number < 2:
            time.sleep(0.4)  # each attempt spends budget; a reset would show as a later deadline
            raise RuntimeError("venue down")

    result = dg.materialize([flaky], instance=dg.DagsterInstance.ephemeral())
    assert result.success and len(deadlines) == 3
    first = deadlines[0]
    assert all(abs(d - first) < 0.2 for d in deadlines), deadlines
    assert all(getattr(d, "budget_seconds", None) == 100.0 for d in deadlines)


def test_a_source_timeout_is_never_retried_by_dagster(
    hung_kraken_config: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Should the pipeline ever raise the timeout, the step still fails once, not 3 times."""
    calls: list[str] = []

    def timing_out(source: Any, *args: Any, **kwargs: Any) -> NoReturn:
        calls.append(source.name)
        raise SourceTimeout(source.name, BUDGET, "GET /x: read timed out")

    monkeypatch.setattr(snapshot_stage, "take_snapshot", timing_out)
    summary = run_report(str(hung_kraken_config), TODAY)
    assert sorted(calls) == ["kraken_hung", "settlement_ok"]  # one attempt each
    assert any("kraken_hung: no answer within its time budget" in f for f in summary.failures)
