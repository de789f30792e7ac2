"""The day page's data: a handful of aggregate queries on the warehouse, one snapshot.

The report table may hold millions of rows per date, so every query aggregates or ranks in
the database (GROUP BY, a full outer join ordered by |change| with LIMIT) and only page-sized
results reach Python. Amounts stay exact: NUMERIC sums come back as `Decimal` (the
`AMOUNT` type decorator), never through float. Works on DuckDB and PostgreSQL.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import sqlalchemy as sa

from etl_project.day_page.model import (
    PUBLISHED,
    DayPicture,
    DayStatus,
    Gap,
    Movement,
    PublishedDate,
    RestatedRow,
    Series,
    SeriesPoint,
    SourceCompleteness,
    Version,
)
from etl_project.sinks.operational_tables import COMPLETENESS_TABLE, REPORT_RUNS_TABLE
from etl_project.sinks.report_versions import RESTATEMENTS_TABLE, VERSIONS_TABLE
from etl_project.sinks.warehouse_tables import AMOUNT, REPORT_TABLE

#: Rows shown in the top-movements table.
TOP_MOVEMENTS = 10
#: Gap and restatement rows shown at most (the page says how many there are in all).
SHOWN_ROWS = 200


def load_day_picture(engine: sa.Engine, date: date, days: int = 30) -> DayPicture:
    """Everything the page of `date` shows: the last `days` published dates up to `date`,
    D's status, completeness, top movements against the previous published date, versions
    and restatements. Read in one transaction (REPEATABLE READ on PostgreSQL) so the parts
    agree with each other even while another run publishes."""
    with engine.connect() as conn:
        if conn.dialect.name == "postgresql":
            conn.execution_options(isolation_level="REPEATABLE READ")
        with conn.begin():
            return _load(conn, date, days)


def _load(conn: sa.Connection, day: date, days: int) -> DayPicture:
    status = read_status(conn, day)
    dates = published_dates(conn, day, days)
    earlier = [d for d in dates if d.report_date < day]
    previous = earlier[-1] if earlier else None
    published = status is not None and status.published
    movements: tuple[Movement, ...] = ()
    if published and previous is not None:
        movements = top_movements(conn, day, previous.report_date)
    gaps, gap_count = read_gaps(conn, day)
    restated, restated_count = read_restated(conn, day)
    return DayPicture(
        report_date=day,
        status=status,
        previous_date=previous,
        dates=dates,
        series=venue_series(conn, [d.report_date for d in dates]),
        sources=source_completeness(conn, day),
        gaps=gaps,
        gap_count=gap_count,
        movements=movements,
        versions=read_versions(conn, day),
        restatements=restated,
        restatement_count=restated_count,
    )


def read_status(conn: sa.Connection, day: date) -> DayStatus | None:
    """D's status row, None when D was never published."""
    t = REPORT_RUNS_TABLE
    row = conn.execute(sa.select(t).where(t.c.report_date == day)).mappings().first()
    if row is None:
        return None
    return DayStatus(
        completeness=row["completeness"],
        run_id=row["run_id"],
        published_at=_utc(row["published_at"]),
        report_rows=int(row["report_rows"]),
        rejected_rows=int(row["rejected_rows"]),
        cause=row["cause"],
    )


def published_dates(conn: sa.Connection, day: date, days: int) -> tuple[PublishedDate, ...]:
    """The last `days` complete/partial dates up to and including D, oldest first."""
    t = REPORT_RUNS_TABLE
    query = (
        sa.select(t.c.report_date, t.c.completeness)
        .where(t.c.report_date <= day, t.c.completeness.in_(PUBLISHED))
        .order_by(t.c.report_date.desc())
        .limit(days)
    )
    rows = conn.execute(query).all()
    return tuple(PublishedDate(r[0], r[1]) for r in reversed(rows))


def venue_series(conn: sa.Connection, dates: Sequence[date]) -> tuple[Series, ...]:
    """Sum of `total` per (date, venue, ccy), grouped by the database. A venue that reported
    on a date but has no row in a currency gets 0 there (all-zero rows are dropped from the
    report); a venue absent on a date leaves a hole in its line."""
    if not dates:
        return ()
    r = REPORT_TABLE
    total = sa.type_coerce(sa.func.sum(r.c.total), AMOUNT).label("total")
    query = (
        sa.select(r.c.report_date, r.c.venue, r.c.ccy, total, sa.func.count().label("n"))
        .where(r.c.report_date.in_(list(dates)))
        .group_by(r.c.report_date, r.c.venue, r.c.ccy)
    )
    sums: dict[tuple[str, str], dict[date, SeriesPoint]] = {}
    present: set[tuple[date, str]] = set()
    for d, venue, ccy, value, n in conn.execute(query).all():
        sums.setdefault((venue, ccy), {})[d] = SeriesPoint(d, value, int(n))
        present.add((d, venue))
    series = []
    for (venue, ccy), points in sorted(sums.items()):
        filled = [
            points.get(d, SeriesPoint(d, Decimal(0), 0))
            for d in sorted(dates)
            if d in points or (d, venue) in present
        ]
        series.append(Series(venue, ccy, tuple(filled)))
    return tuple(series)


def source_completeness(conn: sa.Connection, day: date) -> tuple[SourceCompleteness, ...]:
    """Per source: accounts expected/received/failed (counted by the database, `*` rows of a
    whole failed source not counted as accounts) and its rows in D's report."""
    c = COMPLETENESS_TABLE
    account = c.c.account_id != "*"

    def count(condition: sa.ColumnElement[bool]) -> sa.ColumnElement[Any]:
        return sa.func.sum(sa.case((condition, 1), else_=0))

    query = (
        sa.select(
            c.c.source,
            sa.func.min(c.c.venue),
            count(sa.and_(account, c.c.expected)),
            count(sa.and_(account, c.c.received)),
            count(sa.and_(account, c.c.failed)),
            count(c.c.account_id == "*"),
        )
        .where(c.c.report_date == day)
        .group_by(c.c.source)
    )
    r = REPORT_TABLE
    rows_query = (
        sa.select(r.c.source, sa.func.min(r.c.venue), sa.func.count())
        .where(r.c.report_date == day)
        .group_by(r.c.source)
    )
    report_rows = {s: (v, int(n)) for s, v, n in conn.execute(rows_query).all()}
    out: dict[str, SourceCompleteness] = {}
    for source, venue, expected, received, failed, whole in conn.execute(query).all():
        n = report_rows.get(source, (venue, 0))[1]
        out[source] = SourceCompleteness(
            source,
            venue,
            int(expected or 0),
            int(received or 0),
            int(failed or 0),
            bool(whole),
            n,
        )
    for source, (venue, n) in report_rows.items():  # rows without completeness (old dates)
        out.setdefault(source, SourceCompleteness(source, venue, 0, 0, 0, False, n))
    return tuple(out[s] for s in sorted(out))


def read_gaps(conn: sa.Connection, day: date) -> tuple[tuple[Gap, ...], int]:
    """D's failed or vanished accounts (and whole failed sources), at most `SHOWN_ROWS`."""
    c = COMPLETENESS_TABLE
    where = (c.c.report_date == day, c.c.failed)
    total = conn.execute(sa.select(sa.func.count()).where(*where)).scalar_one()
    query = (
        sa.select(c.c.source, c.c.account_id, c.c.account_name, c.c.reason)
        .where(*where)
        .order_by(c.c.source, c.c.account_id)
        .limit(SHOWN_ROWS)
    )
    gaps = tuple(Gap(*row) for row in conn.execute(query).all())
    return gaps, int(total)


def top_movements(conn: sa.Connection, day: date, previous: date) -> tuple[Movement, ...]:
    """The `TOP_MOVEMENTS` largest |change| of total per (account_uuid, ccy) between the
    previous published date and D: one full outer join ranked and limited by the database."""
    r = REPORT_TABLE
    names = ("account_uuid", "ccy", "venue", "source", "user_name", "venue_account_id", "wallet")

    def side(d: date, alias: str) -> sa.Subquery:
        return (
            sa.select(*(r.c[n] for n in names), r.c.total)
            .where(r.c.report_date == d)
            .subquery(alias)
        )

    new, old = side(day, "n"), side(previous, "o")
    change = sa.type_coerce(
        sa.func.coalesce(new.c.total, 0) - sa.func.coalesce(old.c.total, 0), AMOUNT
    )
    key = [sa.func.coalesce(new.c[n], old.c[n]).label(n) for n in names]
    joined = new.join(
        old,
        sa.and_(new.c.account_uuid == old.c.account_uuid, new.c.ccy == old.c.ccy),
        full=True,
    )
    query = (
        sa.select(
            *key,
            old.c.total.label("previous"),
            new.c.total.label("current"),
            change.label("change"),
        )
        .select_from(joined)
        .where(change != 0)
        .order_by(sa.func.abs(change).desc(), key[0], key[1])
        .limit(TOP_MOVEMENTS)
    )
    return tuple(Movement(**row) for row in conn.execute(query).mappings().all())


def read_versions(conn: sa.Connection, day: date) -> tuple[Version, ...]:
    """Every published version of D, newest first."""
    v = VERSIONS_TABLE
    query = sa.select(v).where(v.c.report_date == day).order_by(v.c.published_at.desc(), v.c.run_id)
    return tuple(
        Version(
            run_id=row["run_id"],
            previous_run_id=row["previous_run_id"],
            state=row["state"],
            completeness=row["completeness"],
            report_rows=int(row["report_rows"]),
            added=int(row["added_rows"]),
            removed=int(row["removed_rows"]),
            changed=int(row["changed_rows"]),
            published_at=_utc(row["published_at"]),
        )
        for row in conn.execute(query).mappings().all()
    )


def read_restated(conn: sa.Connection, day: date) -> tuple[tuple[RestatedRow, ...], int]:
    """D's restated rows, newest re-publication first, then by |change|; at most
    `SHOWN_ROWS` (the count says how many in all)."""
    r = RESTATEMENTS_TABLE
    total = conn.execute(sa.select(sa.func.count()).where(r.c.report_date == day)).scalar_one()
    delta = sa.func.abs(sa.func.coalesce(r.c.new_total, 0) - sa.func.coalesce(r.c.old_total, 0))
    query = (
        sa.select(
            r.c.run_id,
            r.c.previous_run_id,
            r.c.account_uuid,
            r.c.ccy,
            r.c.change,
            r.c.old_total,
            r.c.new_total,
            r.c.changed_columns,
            r.c.restated_at,
        )
        .where(r.c.report_date == day)
        .order_by(r.c.restated_at.desc(), r.c.run_id, delta.desc(), r.c.account_uuid, r.c.ccy)
        .limit(SHOWN_ROWS)
    )
    rows = tuple(
        RestatedRow(*row[:8], restated_at=_utc(row[8])) for row in conn.execute(query).all()
    )
    return rows, int(total)


def _utc(value: datetime) -> datetime:
    """Timestamps as aware UTC (DuckDB may hand back naive UTC or the session's zone)."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
