"""Checks and alerts through real Dagster runs against the simulator and a local webhook.

- A venue down: the other sources still snapshot, the report is partial, and the reason is in
  the Dagster UI (metadata and the failed completeness check) and in the webhook message.
- `on_source_failure: fail`: nothing is published, the run fails and the run-failure sensor
  posts the reason.
- A failing blocking check leaves the published files and warehouse rows exactly as they were.
- Day-over-day movement and row count compare with the previous published date.
Every check's verdict also lands in the warehouse table `settlement_check_results`.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any

import dagster as dg
import pyarrow as pa

from assets.alerting import FAILURE_SENSOR_NAME, AlertResource, run_failure_alert
from assets.checks import FRESHNESS_CHECK
from assets.definitions import FRESHNESS_JOB_NAME, JOB_NAME, build_definitions
from assets.report import FILES_KEY, WAREHOUSE_KEY
from etl_project import staging
from etl_project.config import load_config
from etl_project.report.columns import REPORT_SCHEMA
from etl_project.sinks.files import quarantine_key, report_keys
from etl_project.sinks.object_store import ObjectStore, open_store
from etl_project.sinks.warehouse import Warehouse
from etl_project.stages.snapshot import fetch_live
from tests.conftest import WEBHOOK_TOKEN_PATH, Receiver
from tests.integration.helpers import FIXTURES
from tests.integration.test_daily_job_all_venues import TODAY

REPORT = "settlement_balance_report"
PUBLISHED_TABLES = (
    "settlement_balance_report",
    "settlement_balance_quarantine",
    "settlement_source_completeness",
    "settlement_report_status",
    "venue_positions",
)


def materialise(config: Path, day: date, **kwargs: Any) -> dg.ExecuteInProcessResult:
    """The daily job's selection (every asset and per-date check) for one partition."""
    defs = build_definitions(config)
    return dg.materialize(
        [*defs.assets, *defs.asset_checks],  # type: ignore[list-item]
        resources=defs.resources,
        partition_key=day.isoformat(),
        selection=dg.AssetSelection.all() - dg.AssetSelection.checks(FRESHNESS_CHECK),
        **kwargs,
    )


def check_rows(config: Path, day: date) -> dict[tuple[str, str], tuple[bool, str]]:
    """settlement_check_results of `day`: (asset, check) -> (passed, summary)."""
    wh = Warehouse(load_config(config).warehouse)
    try:
        rows = wh.read_table("settlement_check_results", day)
    finally:
        wh.dispose()
    return {(r["asset"], r["check_name"]): (r["passed"], r["summary"]) for r in rows}


def evaluation(result: dg.ExecuteInProcessResult, name: str) -> Any:
    (found,) = [e for e in result.get_asset_check_evaluations() if e.check_name == name]
    return found


def test_venue_down_partial_report_names_the_reason_in_ui_and_webhook(
    simulator, all_venues_config: Path, webhook: Receiver
) -> None:
    simulator.set_fault("saxo", status=503, times=1000)
    result = materialise(all_venues_config, TODAY, instance=dg.DagsterInstance.ephemeral())
    assert result.success

    # The other sources' snapshots materialised; Saxo's says why it has none.
    snapshots = {
        e.asset_key.path[0].removesuffix("__raw_snapshot"): e.materialization.metadata
        for e in result.get_asset_materialization_events()
        if e.asset_key.path[0].endswith("__raw_snapshot")
    }
    assert {s: md["status"].value for s, md in snapshots.items()} == {
        "kraken_demo": "ok",
        "saxo_demo": "failed",
        "platform_demo": "ok",
        "settlement_platform_demo": "ok",
    }
    assert "503" in str(snapshots["saxo_demo"]["reason"].value)

    # In the UI: the report's metadata and its failed completeness check name the gap.
    (report,) = [
        e.materialization
        for e in result.get_asset_materialization_events()
        if e.asset_key == dg.AssetKey(REPORT)
    ]
    assert report.metadata["completeness"].value == "partial"
    assert (
        "**saxo_demo**" in report.metadata["gaps"].value and "503" in report.metadata["gaps"].value
    )
    completeness = evaluation(result, "completeness")
    assert not completeness.passed and completeness.severity == dg.AssetCheckSeverity.WARN
    assert completeness.description.startswith("partial: saxo_demo/*: ")
    assert "503" in completeness.description
    assert completeness.metadata["alert"].value == "sent"

    # In the webhook: one message, for the failed check, with the same reason.
    assert len(webhook.posts) == 1
    (text,) = webhook.texts()
    headline, detail = text.split("\n", 1)
    assert headline == (
        f":warning: Check failed: completeness on settlement_balance_report for {TODAY}"
    )
    assert detail.startswith("partial: saxo_demo/*: ") and "503" in detail

    # In the warehouse, for BI: every check's verdict of the date.
    rows = check_rows(all_venues_config, TODAY)
    assert {k: v[0] for k, v in rows.items()} == {
        ("kraken_demo__balances", "source_delivered"): True,
        ("saxo_demo__balances", "source_delivered"): False,
        ("platform_demo__balances", "source_delivered"): True,
        ("settlement_platform_demo__balances", "source_delivered"): True,
        (REPORT, "report_schema"): True,
        (REPORT, "completeness"): False,
        ("settlement_balance_warehouse", "movement"): True,
        ("settlement_balance_warehouse", "row_count"): True,
    }
    assert rows[(REPORT, "completeness")][1] == completeness.description

    # The webhook's secret path never reaches Dagster's event log.
    assert not [e for e in result.all_events if WEBHOOK_TOKEN_PATH in str(e)]


def test_fail_mode_publishes_nothing_and_the_failure_sensor_posts_the_reason(
    simulator, all_venues_config: Path, webhook: Receiver
) -> None:
    config = all_venues_config
    config.write_text(config.read_text() + "  on_source_failure: fail\n", encoding="utf-8")
    simulator.set_fault("saxo", status=503, times=1000)
    defs = build_definitions(config)
    instance = dg.DagsterInstance.ephemeral()
    result = defs.resolve_job_def(JOB_NAME).execute_in_process(
        partition_key=TODAY.isoformat(), instance=instance, raise_on_error=False
    )
    assert not result.success
    store = open_store(load_config(config).storage)
    assert not store.exists(report_keys(TODAY)["csv"])  # fail mode: nothing published
    # The other sources' snapshots are stored even though the run failed.
    assert instance.get_materialized_partitions(dg.AssetKey("kraken_demo__raw_snapshot")) == {
        TODAY.isoformat()
    }
    assert webhook.posts == []  # nothing published, no check ran: the sensor speaks

    context = dg.build_run_status_sensor_context(
        sensor_name=FAILURE_SENSOR_NAME,
        dagster_event=result.get_run_failure_event(),
        dagster_instance=instance,
        dagster_run=result.dagster_run,
        resources={"alert": AlertResource()},
    ).for_run_failure()
    run_failure_alert(context)

    (text,) = webhook.texts()
    lines = text.split("\n")
    assert lines[0] == (
        f":rotating_light: Run failed: {JOB_NAME} for {TODAY} (run {result.run_id})"
    )
    assert len(lines) == 2
    assert lines[1].startswith("• settlement_balance_report: report incomplete: saxo_demo: ")
    assert "503" in lines[1]
    assert WEBHOOK_TOKEN_PATH not in text


def _published(store: ObjectStore, config: Path, day: date) -> dict[str, Any]:
    """Everything a consumer can read of `day`: report files (bytes) and warehouse rows."""
    prefix = f"reports/settlement_balance/date={day.isoformat()}/"
    files = {key: store.get(key) for key in store.list(prefix)}
    files[quarantine_key(day)] = store.get(quarantine_key(day))
    wh = Warehouse(load_config(config).warehouse)
    try:
        tables = {t: wh.read_table(t, day) for t in PUBLISHED_TABLES}
    finally:
        wh.dispose()
    return {"files": files, "tables": tables}


def test_failing_blocking_check_leaves_published_outputs_exactly_as_they_were(
    simulator, all_venues_config: Path, webhook: Receiver, tmp_path: Path
) -> None:
    instance = dg.DagsterInstance.ephemeral()
    assert materialise(all_venues_config, TODAY, instance=instance).success
    store = open_store(str(tmp_path / "lake"))
    before = _published(store, all_venues_config, TODAY)
    assert before["files"] and before["tables"]["settlement_balance_report"]
    webhook.posts.clear()

    # The staged report goes bad between stage and publish (a duplicated account row).
    _, table_key = staging.report_keys(TODAY)
    staged = staging.get_table(store, table_key, REPORT_SCHEMA)
    staging.put_table(store, table_key, pa.concat_tables([staged, staged.slice(0, 1)]))

    defs = build_definitions(all_venues_config)
    result = dg.materialize(
        [*defs.assets, *defs.asset_checks],  # type: ignore[list-item]
        resources=defs.resources,
        partition_key=TODAY.isoformat(),
        instance=instance,
        raise_on_error=False,
        selection=(
            dg.AssetSelection.checks(dg.AssetCheckKey(dg.AssetKey(REPORT), "report_schema"))
            | dg.AssetSelection.assets(FILES_KEY, WAREHOUSE_KEY)
        )
        - dg.AssetSelection.checks(FRESHNESS_CHECK),
    )
    assert not result.success
    schema = evaluation(result, "report_schema")
    assert not schema.passed
    assert schema.description == "2 schema failure(s): unique_account_ccy"
    published = {e.asset_key.to_user_string() for e in result.get_asset_materialization_events()}
    assert published == set()  # neither files nor warehouse ran

    assert _published(store, all_venues_config, TODAY) == before
    assert check_rows(all_venues_config, TODAY)[(REPORT, "report_schema")] == (
        False,
        "2 schema failure(s): unique_account_ccy",
    )
    assert webhook.texts()[0] == (
        f":warning: Check failed: report_schema on settlement_balance_report for {TODAY}\n"
        "2 schema failure(s): unique_account_ccy"
    )


def test_movement_and_row_count_compare_with_the_previous_day(
    simulator, kraken_config: Path, webhook: Receiver
) -> None:
    config = load_config(kraken_config)
    store = open_store(config.storage)
    day1, day2 = date(2026, 3, 1), date(2026, 3, 2)
    payload = (FIXTURES / "kraken_futures_seed003.json").read_text(encoding="utf-8")
    # Day 2: the f-xrp:usd margin doubled (16187.33… -> 32374.66…), everything else equal.
    doubled = payload.replace("16187.33210488726", "32374.66420977452")
    assert doubled != payload
    for day, body in ((day1, payload), (day2, doubled)):
        simulator.serve_payload("kraken_futures", body.encode())
        taken_at = datetime.combine(day + timedelta(days=1), datetime.min.time(), tzinfo=UTC)
        outcome, error = fetch_live(config.source("kraken_main"), store, day, taken_at)
        assert error is None and outcome.ok

    instance = dg.DagsterInstance.ephemeral()
    first = materialise(kraken_config, day1, instance=instance)
    assert evaluation(first, "movement").description == "no previous report to compare with"
    second = materialise(kraken_config, day2, instance=instance)
    assert second.success  # movement and row count warn; they never block a publish

    movement = evaluation(second, "movement")
    assert not movement.passed and movement.severity == dg.AssetCheckSeverity.WARN
    assert movement.description == (
        "1 of 12 (accountUUID, Ccy) pairs moved more than 50% since the previous report"
    )
    table = movement.metadata["top_breaches"].value.split("\n")
    assert table[2] == (
        "| 44749cbc-3936-5498-94f0-277e9e4b412f | USD | 16187.33210488726 | "
        "32374.66420977452 | +100.00 |"
    )
    assert len(table) == 3
    row_count = evaluation(second, "row_count")
    assert row_count.passed
    assert row_count.description == ("12 rows vs 12 in the previous report (+0.00%, within 50%)")
    assert webhook.texts() == [
        f":warning: Check failed: movement on settlement_balance_warehouse for {day2}\n"
        + movement.description
    ]
    assert check_rows(kraken_config, day2)[("settlement_balance_warehouse", "movement")] == (
        False,
        movement.description,
    )

    # Re-running the date finds the same failure: recorded again, not alerted again.
    again = evaluation(materialise(kraken_config, day2, instance=instance), "movement")
    assert (again.passed, again.description) == (False, movement.description)
    assert again.metadata["alert"].value == "already sent for this failure"
    assert len(webhook.posts) == 1


def test_freshness_job_judges_yesterday_from_the_warehouse(
    simulator, kraken_config: Path, webhook: Receiver
) -> None:
    """The freshness job (what its schedule launches) checks that yesterday's report is
    published; its verdict is recorded under yesterday's date."""
    yesterday = datetime.now(UTC).date() - timedelta(days=1)
    defs = build_definitions(kraken_config)
    instance = dg.DagsterInstance.ephemeral()
    freshness_job = defs.resolve_job_def(FRESHNESS_JOB_NAME)

    before = evaluation(freshness_job.execute_in_process(instance=instance), "freshness")
    deadline_passed = datetime.now(UTC).time() > time(6, 0)
    if deadline_passed:  # the verdict depends on the clock; both wordings are exact
        assert (before.passed, before.description) == (
            False,
            f"report for {yesterday} is not published and the 06:00 UTC deadline passed",
        )
        assert webhook.texts() == [
            f":warning: Check failed: freshness on settlement_balance_warehouse for {yesterday}"
            f"\n{before.description}"
        ]
    else:
        assert (before.passed, before.description) == (
            True,
            f"report for {yesterday} not published yet; deadline 06:00 UTC not reached",
        )

    config = load_config(kraken_config)
    taken_at = datetime.combine(yesterday, time(23, 59), tzinfo=UTC)
    _, error = fetch_live(
        config.source("kraken_main"), open_store(config.storage), yesterday, taken_at
    )
    assert error is None
    assert materialise(kraken_config, yesterday, instance=instance).success
    after = evaluation(freshness_job.execute_in_process(instance=instance), "freshness")
    assert (after.passed, after.description) == (True, f"report for {yesterday} is published")
    assert check_rows(kraken_config, yesterday)[("settlement_balance_warehouse", "freshness")] == (
        True,
        f"report for {yesterday} is published",
    )
