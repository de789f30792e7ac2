"""Backfills of past dates rebuild from the stored raw snapshots, with no venue request."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import dagster as dg

from assets.definitions import build_definitions
from assets.runner import run_report
from etl_project.config import load_config
from etl_project.report.serialise import read_csv_rows
from etl_project.sinks.files import report_keys
from etl_project.sinks.object_store import open_store
from tests.integration.helpers import store_past_snapshots

PAST = [date(2026, 3, 1), date(2026, 3, 2), date(2026, 3, 3)]


def test_three_past_dates_replay_stored_snapshots(simulator, kraken_config: Path) -> None:
    store = open_store(load_config(kraken_config).storage)
    store_past_snapshots(kraken_config, PAST)
    before = simulator.request_count()

    defs = build_definitions(kraken_config)
    job = defs.resolve_job_def("daily_settlement_report")
    instance = dg.DagsterInstance.ephemeral()
    for day in PAST:  # one run per partition, as a UI backfill launches them
        result = job.execute_in_process(partition_key=day.isoformat(), instance=instance)
        assert result.success
    assert simulator.request_count() == before  # no venue call: all three were replayed

    for day in PAST:
        rows = read_csv_rows(store.get(report_keys(day)["csv"]))
        assert rows and len(rows) == len(read_csv_rows(store.get(report_keys(PAST[0])["csv"])))
    materialised = instance.get_materialized_partitions(dg.AssetKey("settlement_balance_report"))
    assert materialised == {d.isoformat() for d in PAST}

    # Re-running the range is idempotent: same files, same row counts.
    first = store.get(report_keys(PAST[1])["csv"])
    assert job.execute_in_process(partition_key=PAST[1].isoformat(), instance=instance).success
    assert store.get(report_keys(PAST[1])["csv"]) == first


def test_past_date_without_snapshot_fails_with_one_line_reason(
    simulator, kraken_config: Path
) -> None:
    summary = run_report(str(kraken_config), date(2026, 2, 1))
    assert not summary.success
    assert summary.failures[0] == (
        "kraken_main: no stored snapshot for 2026-02-01 and its live window closed at "
        "2026-02-02T06:00:00+00:00"
    )
    assert simulator.request_count() == 0
