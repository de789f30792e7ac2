"""Run the Dagster job in-process for one report date (the CLI's `run`, `demo`, `backfill`).

Dagster is imported inside the function so the core package imports without it; the job run
here is the very job the schedule and the UI launch. Its steps run in threads of this process
(`assets.threaded_executor.execute_concurrently`): the sources are fetched at the same time, each
venue within its own limits, so the run takes as long as its slowest source, not their sum. Runs
launched by the UI, the schedule or a backfill use the same executor in their one run worker
(the code location's default executor), so they cost one process start, not one per step.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from etl_project import staging
from etl_project.config import AppConfig, load_config
from etl_project.day_page.write import day_page_key
from etl_project.sinks.files import quarantine_key, report_keys
from etl_project.sinks.object_store import ObjectStore, open_store
from etl_project.stages.publish import read_status
from etl_project.stages.report import accounting_line, accounting_rows


@dataclass
class RunSummary:
    """What an operator needs after a run: success, one line per failure, where outputs are."""

    report_date: date
    success: bool
    failures: list[str] = field(default_factory=list)
    completeness: str = "missing"
    outputs: dict[str, str] = field(default_factory=dict)
    rows: int = 0
    gaps: list[str] = field(default_factory=list)
    #: Data-quality checks that did not pass: "<check> on <asset>: <summary>".
    failed_checks: list[str] = field(default_factory=list)
    #: Per source: "<source>: delivered N = published P + dropped all-zero Z + quarantined Q".
    accounting: list[str] = field(default_factory=list)


def run_report(config_path: str, report_date: date, *, quiet: bool = True) -> RunSummary:
    """Materialise `report_date` through the project's job; never raises for a failed source."""
    config = load_config(config_path)  # full validation (and ${VAR}) before any run starts
    import warnings

    import dagster as dg

    # Partitioned asset checks are a Dagster "preview" feature; say so once in the README, not
    # on every operator run.
    warnings.filterwarnings("ignore", category=dg.PreviewWarning)

    from assets.definitions import JOB_NAME, build_definitions
    from assets.threaded_executor import execute_concurrently

    job = build_definitions(config_path).resolve_job_def(JOB_NAME)
    run_config: dict[str, Any] = {}
    if quiet:
        # The summary names every failure's cause in one line; tracebacks are for --verbose.
        run_config = {"loggers": {"console": {"config": {"log_level": "CRITICAL"}}}}
    instance = dg.DagsterInstance.get() if os.environ.get("DAGSTER_HOME") else None
    with instance or dg.DagsterInstance.ephemeral() as inst:
        result = execute_concurrently(
            job,
            partition_key=report_date.isoformat(),
            instance=inst,
            run_config=run_config,
            raise_on_error=False,
        )
        step_failures = [
            f"{ev.step_key}: {root_cause(ev.event_specific_data.error)}"  # type: ignore[union-attr]
            for ev in result.all_events
            if ev.is_step_failure and ev.event_specific_data is not None
        ]
        if not result.success and not step_failures:
            # Ctrl-C ends the run at once, steps still running included: no step failed, so
            # the summary would name no cause.
            step_failures = [
                f"run: {run_failure(ev.message or '')}"
                for ev in result.all_events
                if ev.is_run_failure and "interrupted" in (ev.message or "")
            ]
        failed_checks = [
            f"{ev.check_name} on {ev.asset_key.to_user_string()}: {ev.description or 'failed'}"
            for ev in result.get_asset_check_evaluations()
            if not ev.passed
        ]
    summary = summarise(config, report_date, result.success, step_failures)
    summary.failed_checks = failed_checks
    return summary


def summarise(
    config: AppConfig, report_date: date, run_ok: bool, step_failures: list[str]
) -> RunSummary:
    """What the run left in the store, in an operator's words; a store that cannot be read
    (S3 down) is one failure line naming it, never a traceback."""
    store = open_store(config.storage)
    try:
        return _summarise(store, config, report_date, run_ok, step_failures)
    except Exception as exc:  # the store (or the warehouse) cannot be read
        cause = f"object store {_safe_location(config.storage)} unreadable: {first_cause(exc)}"
        failures = [f for f in step_failures if f]
        if not any("object store" in f for f in failures):
            failures.append(cause)
        return RunSummary(report_date, False, failures)


def _summarise(
    store: ObjectStore,
    config: AppConfig,
    report_date: date,
    run_ok: bool,
    step_failures: list[str],
) -> RunSummary:
    failures: list[str] = []
    for source in config.sources:
        manifest_key, _ = staging.balances_keys(source.name, report_date)
        doc = staging.get_json(store, manifest_key)
        if doc is not None and doc["status"] != "ok":
            reason = _first_line(doc["reason"] or "failed")
            prefix = f"{source.name}: "
            failures.append(reason if reason.startswith(prefix) else prefix + reason)
    failures.extend(f for f in step_failures if f not in failures)
    report_doc = staging.get_json(store, staging.report_keys(report_date)[0]) or {}
    details = report_doc.get("details", {})
    status = read_status(store, report_date) or {}
    published = status.get("run_id") == details.get("run_id") and bool(status)
    summary = RunSummary(
        report_date,
        run_ok and not failures,
        failures,
        status.get("completeness", "missing") if published else "missing",
        rows=details.get("rows", 0),
        gaps=[
            f"{g['source']}/{g.get('account', g['account_id'])}: {_first_line(g['reason'])}"
            for g in details.get("gaps", [])
        ],
        accounting=[accounting_line(row) for row in accounting_rows(details)],
    )
    if run_ok:
        summary.outputs = _outputs(store, config, report_date)
    return summary


#: Exception classes that only wrap the cause (Dagster's step and retry machinery).
_WRAPPERS = ("Dagster", "RetryRequested", "Failure")


def root_cause(error: Any) -> str:
    """One line for a step failure from Dagster's serialised error chain: the first exception
    raised by our code or a driver (not a Dagster wrapper), named by the place that failed."""
    chain: list[Any] = []
    node = error
    while node is not None and len(chain) < 20:
        chain.append(node)
        node = node.cause or node.context
    chosen = next(
        (
            e
            for e in chain
            if not e.cls_name.startswith(_WRAPPERS) and "Exceeded max_retries" not in e.message
        ),
        chain[0],
    )
    if chosen.cls_name == "Failure" or chosen is chain[0]:
        failure = next((e for e in chain if e.cls_name == "Failure"), chosen)
        return _first_line(failure.message.removeprefix("dagster._core.definitions.events."))
    text = _first_line(chosen.message)
    text = (
        text.split(": ", 1)[1]
        if text.startswith(f"{chosen.cls_name}: ")
        or (text.split(":", 1)[0].endswith(chosen.cls_name))
        else text
    )
    text = re.sub(r"^\([\w.]+\) ", "", text)  # SQLAlchemy's "(psycopg.OperationalError) "
    module = " ".join(e.cls_name for e in chain)
    if "Endpoint" in module or "ClientError" in module or "NoCredentials" in module:
        return f"object store: {text}"
    if chosen.cls_name in ("OperationalError", "InterfaceError", "DatabaseError"):
        return f"warehouse: {text}"
    return text


def run_failure(message: str) -> str:
    """What failed a run that no step failed, without Dagster's preamble: 'Execution of run
    for "<job>" failed. Execution was interrupted unexpectedly. No user initiated …' ->
    'Execution was interrupted unexpectedly.'"""
    text = re.sub(r'^Execution of run for "[^"]*" failed\.\s*', "", _first_line(message))
    return (text.split(". ", 1)[0].rstrip(".") + ".") if text else "failed"


def first_cause(exc: BaseException) -> str:
    """The innermost exception's first line: drivers wrap the cause several times."""
    inner: BaseException = exc
    while inner.__cause__ is not None or (
        inner.__context__ is not None and not inner.__suppress_context__
    ):
        inner = inner.__cause__ or inner.__context__  # type: ignore[assignment]
    return _first_line(str(inner)) or type(inner).__name__


def _safe_location(location: str) -> str:
    return location.split("?", 1)[0]


def _outputs(store: ObjectStore, config: AppConfig, report_date: date) -> dict[str, str]:
    outputs = {fmt: store.uri(key) for fmt, key in report_keys(report_date).items()}
    outputs["quarantine"] = store.uri(quarantine_key(report_date))
    if store.exists(day_page_key(report_date)):
        outputs["day_page"] = store.uri(day_page_key(report_date))
    outputs["raw"] = store.uri("raw/")
    outputs["warehouse"] = f"{_safe_url(config.warehouse)} (table settlement_balance_report)"
    outputs["checks"] = f"{_safe_url(config.warehouse)} (table settlement_check_results)"
    return outputs


def _safe_url(url: str) -> str:
    """A database URL without its password, for printing."""
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


def _first_line(text: str) -> str:
    return text.strip().splitlines()[0] if text.strip() else text
