"""Every published version of a report date, and what each re-publication restated.

A re-run or backfill of D publishes a new version; finance may already have sent the old one
out, so nothing is replaced silently:

- `settlement_report_versions`: one row per published run of D (current or superseded), with
  its counts, completeness and where its files are kept (a per-run prefix in the object store);
- `settlement_balance_report_history`: the rows of every superseded version, moved there by the
  database itself (`INSERT … SELECT`) in the same transaction that publishes the new version;
- `settlement_report_restatements`: per `(account_uuid, ccy)` added, removed or changed between
  the previous version and the new one, with old and new `total` and the columns that changed.

All of it runs inside the publish transaction (`Warehouse.replace_all`'s `before`/`after`
hooks), so the current rows, the history and the restatements never disagree.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

import sqlalchemy as sa

from etl_project.report.columns import COLUMNS
from etl_project.sinks.warehouse_tables import (
    AMOUNT,
    METADATA,
    REPORT_TABLE,
    TIMESTAMPTZ,
    dated_table,
    lineage_column,
)

VERSIONS_TABLE = dated_table(
    "settlement_report_versions",
    "Every published version (run) of a report date: current or superseded, with its counts",
    lineage_column("run_id"),
    sa.Column(
        "previous_run_id",
        sa.Text(),
        nullable=True,
        comment="The version this one superseded (NULL for the first publication of the date)",
    ),
    sa.Column("state", sa.Text(), nullable=False, comment="current or superseded (by a later run)"),
    sa.Column("completeness", sa.Text(), nullable=False, comment="complete or partial"),
    sa.Column("report_rows", sa.BigInteger(), nullable=False, comment="Rows in this version"),
    sa.Column("rejected_rows", sa.BigInteger(), nullable=False, comment="Rows quarantined"),
    sa.Column("added_rows", sa.BigInteger(), nullable=False, comment="Rows new in this version"),
    sa.Column(
        "removed_rows", sa.BigInteger(), nullable=False, comment="Rows gone since the previous"
    ),
    sa.Column("changed_rows", sa.BigInteger(), nullable=False, comment="Rows whose values changed"),
    sa.Column(
        "files_prefix",
        sa.Text(),
        nullable=False,
        comment="Object-store prefix that keeps this version's CSV, JSON, Parquet and status",
    ),
    sa.Column("published_at", TIMESTAMPTZ, nullable=False, comment="When it was published (UTC)"),
    primary_key=("run_id",),
)

_HISTORY_COLUMNS = [
    sa.Column(c.name, c.type, nullable=c.nullable, comment=c.comment)
    for c in REPORT_TABLE.columns
    if c.name != "report_date"
]
HISTORY_TABLE = dated_table(
    "settlement_balance_report_history",
    "Rows of every superseded version of settlement_balance_report (run_id = that version)",
    *_HISTORY_COLUMNS,
    sa.Column(
        "superseded_at", TIMESTAMPTZ, nullable=False, comment="When a later run replaced it (UTC)"
    ),
    primary_key=("run_id", "account_uuid", "ccy"),
)

RESTATEMENTS_TABLE = dated_table(
    "settlement_report_restatements",
    "What each re-publication of a report date changed, per (account_uuid, ccy)",
    sa.Column(
        "run_id", sa.Text(), nullable=False, comment="The run whose publication restated the date"
    ),
    sa.Column("previous_run_id", sa.Text(), nullable=False, comment="The version it replaced"),
    sa.Column("account_uuid", sa.Text(), nullable=False, comment="accountUUID of the row"),
    sa.Column("ccy", sa.Text(), nullable=False, comment="Ccy of the row"),
    sa.Column("change", sa.Text(), nullable=False, comment="added, removed or changed"),
    sa.Column("old_total", AMOUNT, nullable=True, comment="Total in the previous version"),
    sa.Column("new_total", AMOUNT, nullable=True, comment="Total in the new version"),
    sa.Column(
        "changed_columns",
        sa.Text(),
        nullable=True,
        comment="For a changed row: the report columns (SQL names) whose values differ",
    ),
    sa.Column("restated_at", TIMESTAMPTZ, nullable=False, comment="When it was restated (UTC)"),
    primary_key=("run_id", "account_uuid", "ccy"),
)

#: Columns compared for "changed": the contract's columns except the row's identity.
_COMPARED = [c.sql for c in COLUMNS if c.sql not in ("account_uuid", "ccy")]
#: Restatement rows shown on a materialisation (the table holds them all).
SHOWN = 20


@dataclass(frozen=True)
class Restatement:
    """What publishing `run_id` over `previous_run_id` changed (None: first publication)."""

    previous_run_id: str | None
    added: int = 0
    removed: int = 0
    changed: int = 0

    @property
    def rows(self) -> int:
        return self.added + self.removed + self.changed


def current_run_id(conn: sa.Connection, report_date: date) -> str | None:
    """The run id of D's current version in the warehouse, if D was published."""
    row = conn.execute(
        sa.select(VERSIONS_TABLE.c.run_id).where(
            VERSIONS_TABLE.c.report_date == report_date, VERSIONS_TABLE.c.state == "current"
        )
    ).first()
    if row is not None:
        return str(row[0])
    # Dates published before versions were kept: the report rows carry their run id.
    row = conn.execute(
        sa.select(REPORT_TABLE.c.run_id).where(REPORT_TABLE.c.report_date == report_date).limit(1)
    ).first()
    return None if row is None else str(row[0])


def archive_current(
    conn: sa.Connection, report_date: date, new_run_id: str, now: datetime
) -> str | None:
    """Before D's rows are replaced: copy them to the history table (the database does the
    copy). Returns D's current run id (None when D had no version); when that is this run's
    own (a retried publish step of the same run), nothing is archived."""
    previous = current_run_id(conn, report_date)
    if previous is None or previous == new_run_id:
        return previous
    report, history = REPORT_TABLE, HISTORY_TABLE
    names = [c.name for c in report.columns]
    conn.execute(
        history.delete().where(history.c.report_date == report_date, history.c.run_id == previous)
    )
    select = sa.select(*(report.c[n] for n in names), sa.literal(now, TIMESTAMPTZ)).where(
        report.c.report_date == report_date
    )
    conn.execute(history.insert().from_select([*names, "superseded_at"], select))
    return previous


def record_version(
    conn: sa.Connection,
    report_date: date,
    *,
    run_id: str,
    previous_run_id: str | None,
    completeness: str,
    report_rows: int,
    rejected_rows: int,
    files_prefix: str,
    now: datetime,
) -> Restatement:
    """After D's new rows are in: diff them against the superseded version into the
    restatements table, mark the old version superseded and add this one as current."""
    restatement = Restatement(previous_run_id)
    if previous_run_id is not None and previous_run_id != run_id:
        restatement = _restate(conn, report_date, run_id, previous_run_id, now)
    versions = VERSIONS_TABLE
    conn.execute(
        versions.update()
        .where(versions.c.report_date == report_date, versions.c.state == "current")
        .values(state="superseded")
    )
    conn.execute(
        versions.delete().where(versions.c.report_date == report_date, versions.c.run_id == run_id)
    )
    conn.execute(
        versions.insert().values(
            report_date=report_date,
            run_id=run_id,
            previous_run_id=None if previous_run_id == run_id else previous_run_id,
            state="current",
            completeness=completeness,
            report_rows=report_rows,
            rejected_rows=rejected_rows,
            added_rows=restatement.added,
            removed_rows=restatement.removed,
            changed_rows=restatement.changed,
            files_prefix=files_prefix,
            published_at=now,
        )
    )
    return restatement


def _restate(
    conn: sa.Connection, report_date: date, run_id: str, previous: str, now: datetime
) -> Restatement:
    """One `INSERT … SELECT` with a full outer join of the old and new rows of D."""
    prep = conn.dialect.identifier_preparer
    history = prep.format_table(HISTORY_TABLE)
    report = prep.format_table(REPORT_TABLE)
    target = prep.format_table(RESTATEMENTS_TABLE)
    differs = [f"CASE WHEN o.{c} IS DISTINCT FROM n.{c} THEN '{c}' END" for c in _COMPARED]
    any_differs = " OR ".join(f"o.{c} IS DISTINCT FROM n.{c}" for c in _COMPARED)
    sql = f"""
        INSERT INTO {target} (report_date, run_id, previous_run_id, account_uuid, ccy, change,
                              old_total, new_total, changed_columns, restated_at)
        SELECT :d, :new, :old, COALESCE(n.account_uuid, o.account_uuid), COALESCE(n.ccy, o.ccy),
               CASE WHEN o.account_uuid IS NULL THEN 'added'
                    WHEN n.account_uuid IS NULL THEN 'removed' ELSE 'changed' END,
               o.total, n.total,
               CASE WHEN o.account_uuid IS NOT NULL AND n.account_uuid IS NOT NULL
                    THEN concat_ws(',', {", ".join(differs)}) END,
               :now
        FROM (SELECT * FROM {history} WHERE report_date = :d AND run_id = :old) o
        FULL OUTER JOIN (SELECT * FROM {report} WHERE report_date = :d) n
          ON o.account_uuid = n.account_uuid AND o.ccy = n.ccy
        WHERE o.account_uuid IS NULL OR n.account_uuid IS NULL OR {any_differs}
    """
    params: dict[str, Any] = {"d": report_date, "new": run_id, "old": previous, "now": now}
    restatements = RESTATEMENTS_TABLE
    conn.execute(
        restatements.delete().where(
            restatements.c.report_date == report_date, restatements.c.run_id == run_id
        )
    )
    conn.execute(sa.text(sql), params)
    counts: dict[str, int] = dict(
        conn.execute(
            sa.select(restatements.c.change, sa.func.count())
            .where(restatements.c.report_date == report_date, restatements.c.run_id == run_id)
            .group_by(restatements.c.change)
        ).all()
    )
    return Restatement(
        previous,
        added=int(counts.get("added", 0)),
        removed=int(counts.get("removed", 0)),
        changed=int(counts.get("changed", 0)),
    )


def read_restatements(
    conn: sa.Connection, report_date: date, run_id: str, limit: int | None = SHOWN
) -> list[dict[str, Any]]:
    """The restated rows of D by `run_id`, largest absolute Total change first."""
    r = RESTATEMENTS_TABLE
    delta = sa.func.abs(sa.func.coalesce(r.c.new_total, 0) - sa.func.coalesce(r.c.old_total, 0))
    query = (
        sa.select(
            r.c.account_uuid, r.c.ccy, r.c.change, r.c.old_total, r.c.new_total, r.c.changed_columns
        )
        .where(r.c.report_date == report_date, r.c.run_id == run_id)
        .order_by(delta.desc(), r.c.account_uuid, r.c.ccy)
    )
    if limit is not None:
        query = query.limit(limit)
    return [dict(row) for row in conn.execute(query).mappings().all()]


__all__ = [
    "HISTORY_TABLE",
    "METADATA",
    "RESTATEMENTS_TABLE",
    "VERSIONS_TABLE",
    "Restatement",
    "archive_current",
    "current_run_id",
    "read_restatements",
    "record_version",
]
