"""Stage 4 of the daily job: publish the audited report of a date as ONE unit.

A date is published to the object store (CSV, JSON, Parquet, quarantine, `_status.json`) and
to the warehouse (report, quarantine, completeness, status, positions, versions, history,
restatements). A reader must never see those disagree, so publishing follows one protocol
with a single commit point (docs/publishing.md):

1. write the new version's files under its own prefix `…/date=D/versions/run=<run_id>/`
   (immutable; the current files are not touched). A fault here changes nothing;
2. mark the date `publishing` in `_status.json` (run id, previous run id);
3. ONE warehouse transaction: archive the current rows to history, replace every per-date
   table, record the version and its restatements (status row `publishing`). This is the
   commit point. A fault here rolls the warehouse back and puts the previous `_status.json`
   back (with the failed attempt noted), so the previous version is what every reader sees;
4. promote the version's files to the date's fixed keys (server-side copy / hard link), set
   the warehouse status row to complete/partial, then `_status.json` last. A fault here marks
   the date `failed` with the cause in both places; a re-run publishes again and converges.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

import pyarrow.parquet as pq

from etl_project import failpoints, staging
from etl_project.errors import EtlError
from etl_project.model import Rejected
from etl_project.report.batches import report_batches
from etl_project.sinks.files import (
    CONTENT_TYPES,
    QUARANTINE_PREFIX,
    quarantine_bytes,
    quarantine_key,
    write_report_files,
)
from etl_project.sinks.files import report_keys as current_file_keys
from etl_project.sinks.object_store import ObjectStore
from etl_project.sinks.report_versions import (
    Restatement,
    read_restatements,
)
from etl_project.sinks.warehouse import Warehouse
from etl_project.stages.publish_warehouse import (
    commit,
    set_warehouse_state,
    status_doc,
    where,
)
from etl_project.stages.report import staged_report_file

REPORT_DIR = "reports/settlement_balance"
#: What `_status.json` says while a date is between its commit point and its last file.
PUBLISHING = "publishing"
FAILED = "failed"


class PublishError(EtlError):
    """Publishing stopped; one line naming the step and the cause. `committed` says whether
    the warehouse already holds the new version (the date is then marked failed)."""

    def __init__(self, message: str, *, committed: bool) -> None:
        super().__init__(message)
        self.committed = committed


@dataclass(frozen=True)
class Published:
    """What one publication did: the version, where its files are, what it restated."""

    run_id: str
    rows: int
    completeness: str
    rejected_rows: int
    uris: dict[str, str]
    version_prefix: str
    restatement: Restatement
    restated: list[dict[str, Any]]


def date_dir(report_date: date) -> str:
    return f"{REPORT_DIR}/date={report_date.isoformat()}/"


def status_key(report_date: date) -> str:
    """`_status.json` beside the date's files: the one document a file reader checks first."""
    return date_dir(report_date) + "_status.json"


def version_prefix(report_date: date, run_id: str) -> str:
    """Where one version's files are kept for good."""
    return f"{date_dir(report_date)}versions/run={run_id}/"


def read_status(store: ObjectStore, report_date: date) -> dict[str, Any] | None:
    """The date's `_status.json`, or None before its first publication."""
    return staging.get_json(store, status_key(report_date))


def publish_report(
    store: ObjectStore,
    warehouse: Warehouse,
    report_date: date,
) -> Published:
    """Publish D's audited, staged report everywhere as one unit (see the module docstring).

    The staged report is read batch by batch, once for the three files and once inside the
    commit transaction: memory is a few batches, whatever the report's size. Raises
    `PublishError` with a one-line cause."""
    with staged_report_file(store, report_date) as (parquet, details):
        return _publish(store, warehouse, report_date, parquet, details)


def _publish(
    store: ObjectStore,
    warehouse: Warehouse,
    report_date: date,
    parquet: pq.ParquetFile,
    details: dict[str, Any],
) -> Published:
    run_id: str = details["run_id"]
    prefix = version_prefix(report_date, run_id)
    status = status_doc(report_date, details, prefix)
    rejected = [Rejected(**r) for r in details.get("rejected", [])]

    store.sweep_temp([date_dir(report_date), f"{QUARANTINE_PREFIX}/date={report_date}/"])
    files = {fmt: f"{prefix}settlement_balance_{report_date}.{fmt}" for fmt in CONTENT_TYPES}
    files["quarantine"] = f"{prefix}quarantine_{report_date}.json"
    rows: int = _step(
        "write the version's files",
        lambda: _write_version(store, files, parquet, rejected, report_date, run_id, status),
        committed=False,
    )
    previous = _step("read _status.json", lambda: read_status(store, report_date), False)
    marker = {
        **status,
        "completeness": PUBLISHING,
        "previous_run_id": (previous or {}).get("run_id"),
        "started_at": datetime.now(UTC).isoformat(),
    }
    _step("mark the date publishing", lambda: _put_status(store, report_date, marker), False)
    failpoints.hit("publish.before_commit")
    try:
        report = report_batches(parquet)
        restatement = commit(store, warehouse, report, details, status, prefix)
    except Exception as exc:
        cause = f"warehouse {warehouse.safe_url}: {_cause(exc)}"
        _restore(store, report_date, previous, status, cause)
        raise PublishError(f"publish {report_date}: {cause}", committed=False) from exc
    failpoints.hit("publish.after_commit")
    try:
        uris = _promote(store, files, report_date)
        failpoints.hit("publish.before_final_status")
        set_warehouse_state(warehouse, report_date, status["completeness"], None)
        _put_status(store, report_date, {**status, "previous_run_id": restatement.previous_run_id})
    except Exception as exc:
        cause = f"{where(exc, warehouse)}: {_cause(exc)}"
        _mark_failed(store, warehouse, report_date, status, cause)
        raise PublishError(
            f"publish {report_date}: committed to the warehouse but not to every file ({cause}); "
            "the date is marked failed until a re-run",
            committed=True,
        ) from exc
    uris["status"] = store.uri(status_key(report_date))
    with warehouse.transaction() as conn:
        restated = read_restatements(conn, report_date, run_id)
    return Published(
        run_id=run_id,
        rows=rows,
        completeness=status["completeness"],
        rejected_rows=len(rejected),
        uris=uris,
        version_prefix=store.uri(prefix),
        restatement=restatement,
        restated=restated,
    )


def restatement_markdown(published: Published) -> str:
    """The restatement of a publication for the materialisation page."""
    r = published.restatement
    if r.previous_run_id is None:
        return "First publication of this date: nothing restated."
    head = (
        f"Restates run `{r.previous_run_id}`: {r.added} added, {r.removed} removed, "
        f"{r.changed} changed (table `settlement_report_restatements`)."
    )
    if not published.restated:
        return head
    lines = [
        head,
        "",
        "| accountUUID | Ccy | change | old Total | new Total | columns |",
        "|---|---|---|---|---|---|",
    ]
    for row in published.restated:
        old = "" if row["old_total"] is None else format(row["old_total"].normalize(), "f")
        new = "" if row["new_total"] is None else format(row["new_total"].normalize(), "f")
        lines.append(
            f"| {row['account_uuid']} | {row['ccy']} | {row['change']} | {old} | {new} "
            f"| {row['changed_columns'] or ''} |"
        )
    return "\n".join(lines)


# --- the steps ------------------------------------------------------------------------------


def _write_version(
    store: ObjectStore,
    files: dict[str, str],
    parquet: pq.ParquetFile,
    rejected: list[Rejected],
    report_date: date,
    run_id: str,
    status: dict[str, Any],
) -> int:
    """The version's files: the three report files from one read of the staged report, then
    the quarantine and the version's `_status.json`; returns the report's rows."""
    keys = {fmt: files[fmt] for fmt in CONTENT_TYPES}
    rows = write_report_files(store, report_batches(parquet), keys)
    store.put(
        files["quarantine"],
        quarantine_bytes(rejected, report_date, run_id),
        content_type="application/json",
    )
    staging.put_json(store, files["csv"].rsplit("/", 1)[0] + "/_status.json", status)
    return rows


def _promote(store: ObjectStore, files: dict[str, str], report_date: date) -> dict[str, str]:
    """The version's files to the date's fixed keys; each copy is atomic."""
    targets = current_file_keys(report_date)
    targets["quarantine"] = quarantine_key(report_date)
    uris = {}
    for fmt, target in targets.items():
        failpoints.hit("publish.promote", target)
        uris[fmt] = store.copy(files[fmt], target)
    return uris


def _restore(
    store: ObjectStore,
    report_date: date,
    previous: dict[str, Any] | None,
    status: dict[str, Any],
    cause: str,
) -> None:
    """The commit failed: the previous version is still everywhere, so say so again (or,
    for a first publication, mark the date failed). Best effort: if the store is down too,
    `_status.json` keeps saying `publishing`, which no reader takes for published."""
    attempt = {"run_id": status["run_id"], "cause": cause, "at": datetime.now(UTC).isoformat()}
    doc = (
        {**previous, "last_failed_attempt": attempt}
        if previous and previous.get("completeness") not in (PUBLISHING, None)
        else {**status, "completeness": FAILED, "cause": cause}
    )
    with contextlib.suppress(Exception):
        _put_status(store, report_date, doc)


def _mark_failed(
    store: ObjectStore, warehouse: Warehouse, report_date: date, status: dict[str, Any], cause: str
) -> None:
    """After the commit: the files may be half promoted, so the date is marked failed in
    both places (each best effort: one of them is what just failed)."""
    with contextlib.suppress(Exception):
        set_warehouse_state(warehouse, report_date, FAILED, cause)
    with contextlib.suppress(Exception):
        _put_status(store, report_date, {**status, "completeness": FAILED, "cause": cause})


# --- helpers --------------------------------------------------------------------------------


def _step(what: str, action: Callable[[], Any], committed: bool) -> Any:
    try:
        return action()
    except Exception as exc:
        raise PublishError(f"publish: {what}: {_cause(exc)}", committed=committed) from exc


def _put_status(store: ObjectStore, report_date: date, doc: dict[str, Any]) -> None:
    staging.put_json(store, status_key(report_date), doc)


def _cause(exc: BaseException) -> str:
    """One line: the innermost exception's message (drivers wrap theirs several times)."""
    inner: BaseException = exc
    while inner.__cause__ is not None or (
        inner.__context__ is not None and not inner.__suppress_context__
    ):
        inner = inner.__cause__ or inner.__context__  # type: ignore[assignment]
    text = str(inner).strip().splitlines()[0] if str(inner).strip() else type(inner).__name__
    return text
