"""The account registry: every venue account a published report has listed, and when.

A venue that suddenly lists fewer accounts (Kraken `subaccounts: []`, Saxo `Data: []`, a
platform list that loses accounts) would otherwise shrink the report silently. With the registry
the accounts listed on recent published dates are *expected* on D, and each one the venue no
longer lists becomes a named gap. An account that is really gone is retired by an operator.

The registry is not a per-date table: `record_listed` upserts it inside the publish transaction
of each date, so it only ever holds what published reports listed. Plain functions over a
`sa.Connection`; they run on PostgreSQL and DuckDB (both speak `INSERT … ON CONFLICT`).
"""

from __future__ import annotations

import uuid
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any, cast

import polars as pl
import pyarrow as pa
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

from etl_project.sinks.warehouse_loaders import load_duckdb, load_postgres_copy
from etl_project.sinks.warehouse_tables import METADATA, lineage_column

REGISTRY_TABLE = sa.Table(
    "settlement_account_registry",
    METADATA,
    lineage_column("source"),
    lineage_column("venue"),
    sa.Column("account_id", sa.Text(), nullable=False, comment="Venue account id"),
    sa.Column(
        "account_name",
        sa.Text(),
        nullable=True,
        comment="The venue's display name of the account, from its newest listing (if any)",
    ),
    sa.Column(
        "first_seen",
        sa.Date(),
        nullable=False,
        comment="Earliest published report date on which the venue listed the account",
    ),
    sa.Column(
        "last_seen",
        sa.Date(),
        nullable=False,
        comment="Last published report date on which the venue listed the account",
    ),
    sa.Column(
        "retired_on",
        sa.Date(),
        nullable=True,
        comment="Report date from which the account is no longer expected (operator retirement); "
        "cleared when the venue lists it again on or after that date",
    ),
    sa.Column(
        "retired_reason",
        sa.Text(),
        nullable=True,
        comment="Why an operator retired the account",
    ),
    sa.Column(
        "last_run_id",
        sa.Text(),
        nullable=False,
        comment="Id of the pipeline run that last recorded a listing of the account",
    ),
    sa.PrimaryKeyConstraint("source", "account_id", name="settlement_account_registry_pkey"),
    comment="Every venue account a published report listed, with the first and last such date; "
    "accounts listed recently are expected on later dates, so a shrunken listing is a named gap",
)

_T = REGISTRY_TABLE


@dataclass(frozen=True)
class ExpectedAccount:
    """An account the venue should list on the report date, from the registry."""

    source: str
    venue: str
    account_id: str
    name: str | None
    last_seen: date


def expected_accounts(
    conn: sa.Connection, source: str, report_date: date, lookback_days: int
) -> list[ExpectedAccount]:
    """Accounts of `source` expected on `report_date`, ordered by account id.

    Expected: not retired on `report_date`, first seen BEFORE it (so a backfill of an old date
    never expects accounts that only appeared later) and last seen within `lookback_days`
    before it or any time after it (rerunning an old date expects an account listed both
    before and after it). `lookback_days == 0` turns the expectation off.
    """
    if lookback_days < 0:
        raise ValueError(f"lookback_days must be >= 0, not {lookback_days}")
    if lookback_days == 0:
        return []
    query = (
        sa.select(_T.c.source, _T.c.venue, _T.c.account_id, _T.c.account_name, _T.c.last_seen)
        .where(
            _T.c.source == source,
            _T.c.first_seen <= report_date - timedelta(days=1),
            _T.c.last_seen >= report_date - timedelta(days=lookback_days),
            sa.or_(_T.c.retired_on.is_(None), _T.c.retired_on > report_date),
        )
        .order_by(_T.c.account_id)
    )
    return [ExpectedAccount(*row) for row in conn.execute(query).tuples()]


def vanished(
    expected: Sequence[ExpectedAccount], listed_today: Collection[str]
) -> list[ExpectedAccount]:
    """The expected accounts absent from today's listing (account ids of the same source)."""
    listed = set(listed_today)
    return [acc for acc in expected if acc.account_id not in listed]


def gap_reason(acc: ExpectedAccount) -> str:
    """The gap text of a vanished account; the caller prefixes `<source>/`."""
    who = f"{acc.name} ({acc.account_id})" if acc.name else acc.account_id
    return f"{who}: listed on {acc.last_seen.isoformat()}, absent today"


def record_listed(
    conn: sa.Connection,
    report_date: date,
    run_id: str,
    rows: Iterable[tuple[str, str, str, str | None]],
) -> int:
    """Record that the venue listed each (source, venue, account_id, name) on `report_date`.

    Call it inside the publish transaction of `report_date`, so the registry only holds
    published listings. New accounts get first_seen = last_seen = D; known ones widen
    [first_seen, last_seen] to include D. The name (and venue) follow the newest listing, so a
    backfill of an old date never rolls them back. A retired account listed again on or after
    its `retired_on` is reinstated automatically: the venue shows it is alive. Keys are written
    in a fixed order so concurrent publishes of two dates cannot deadlock on PostgreSQL.
    Returns the number of distinct accounts recorded.
    """
    columns: tuple[list[Any], ...] = ([], [], [], [])
    for row in rows:
        for values, value in zip(columns, row, strict=True):
            values.append(value)
    listing = pa.table(
        dict(zip(("source", "venue", "account_id", "account_name"), columns, strict=True)),
        schema=_LISTING_SCHEMA.remove(8).remove(7).remove(6).remove(5).remove(4),
    )
    return record_listing(conn, report_date, run_id, listing)


def record_listing(conn: sa.Connection, report_date: date, run_id: str, listing: pa.Table) -> int:
    """`record_listed` for a columnar listing (source, venue, account_id, account_name): a
    settlement report lists ~10^5 accounts, bulk-loaded into a temporary table and merged
    with one `INSERT … SELECT … ON CONFLICT` (executemany took 34 s for 20 k accounts)."""
    if listing.num_rows == 0:
        return 0
    frame = cast(pl.DataFrame, pl.from_arrow(listing.select(list(_KEY_COLUMNS))))
    merged = (
        frame.with_columns(pl.col("account_name").replace("", None))
        .group_by(["source", "account_id"], maintain_order=True)
        .agg(pl.col("venue").last(), pl.col("account_name").drop_nulls().last())
        .sort(["source", "account_id"])
    )
    n = merged.height
    table = merged.to_arrow()
    full = pa.table(
        {
            "source": table.column("source"),
            "venue": table.column("venue"),
            "account_id": table.column("account_id"),
            "account_name": table.column("account_name"),
            "first_seen": pa.repeat(pa.scalar(report_date, pa.date32()), n),
            "last_seen": pa.repeat(pa.scalar(report_date, pa.date32()), n),
            "retired_on": pa.nulls(n, pa.date32()),
            "retired_reason": pa.nulls(n, pa.string()),
            "last_run_id": pa.repeat(pa.scalar(run_id, pa.string()), n),
        },
        schema=_LISTING_SCHEMA,
    )
    staged = _staging_table(conn)
    (load_duckdb if conn.dialect.name == "duckdb" else load_postgres_copy)(conn, staged, full)
    names = [c.name for c in _T.columns]
    ordered = sa.select(*(staged.c[n] for n in names)).order_by(
        staged.c.source, staged.c.account_id
    )
    conn.execute(_upsert(conn, ordered, names))
    conn.exec_driver_sql(f"DROP TABLE {staged.name}")
    return n


_KEY_COLUMNS = ("source", "venue", "account_id", "account_name")
#: The registry's columns as Arrow, for the bulk load of one listing.
_LISTING_SCHEMA = pa.schema(
    [
        ("source", pa.string()),
        ("venue", pa.string()),
        ("account_id", pa.string()),
        ("account_name", pa.string()),
        ("first_seen", pa.date32()),
        ("last_seen", pa.date32()),
        ("retired_on", pa.date32()),
        ("retired_reason", pa.string()),
        ("last_run_id", pa.string()),
    ]
)


def _staging_table(conn: sa.Connection) -> sa.Table:
    """A temporary table shaped like the registry, for one listing (bulk-loaded from Arrow:
    a settlement report lists hundreds of thousands of accounts, too many for executemany)."""
    name = f"_registry_listing_{uuid.uuid4().hex[:12]}"
    columns = [sa.Column(c.name, c.type) for c in _T.columns]
    staged = sa.Table(name, sa.MetaData(), *columns, prefixes=["TEMPORARY"])
    staged.create(conn)
    return staged


def _upsert(conn: sa.Connection, rows: sa.Select[Any], names: list[str]) -> sa.Executable:
    """`INSERT … SELECT … ON CONFLICT (source, account_id) DO UPDATE` merging a listing in."""
    if conn.dialect.name not in ("postgresql", "duckdb"):
        raise NotImplementedError(f"account registry upsert on {conn.dialect.name}")
    # duckdb-engine compiles the PostgreSQL construct as is
    insert = postgresql.insert(_T).from_select(names, rows)
    new = insert.excluded
    newest = new.last_seen >= _T.c.last_seen
    revived = sa.and_(_T.c.retired_on.is_not(None), new.last_seen >= _T.c.retired_on)
    return insert.on_conflict_do_update(
        index_elements=[_T.c.source, _T.c.account_id],
        set_={
            "first_seen": sa.case(
                (new.first_seen < _T.c.first_seen, new.first_seen), else_=_T.c.first_seen
            ),
            "last_seen": sa.case((newest, new.last_seen), else_=_T.c.last_seen),
            "venue": sa.case((newest, new.venue), else_=_T.c.venue),
            "account_name": sa.case(
                (
                    sa.and_(
                        new.account_name.is_not(None),
                        sa.or_(newest, _T.c.account_name.is_(None)),
                    ),
                    new.account_name,
                ),
                else_=_T.c.account_name,
            ),
            "retired_on": sa.case((revived, sa.null()), else_=_T.c.retired_on),
            "retired_reason": sa.case((revived, sa.null()), else_=_T.c.retired_reason),
            "last_run_id": new.last_run_id,
        },
    )


def retire_account(
    conn: sa.Connection, source: str, account_id: str, retired_on: date, reason: str
) -> bool:
    """Stop expecting an account from `retired_on` on (dates before it still expect it, so a
    backfill stays honest). False when the registry does not know the account.

    `record_listed` reinstates it by itself if the venue lists it again on or after
    `retired_on`."""
    if not reason.strip():
        raise ValueError("a retirement needs a reason")
    update = (
        sa.update(_T)
        .where(_T.c.source == source, _T.c.account_id == account_id)
        .values(retired_on=retired_on, retired_reason=reason)
    )
    return bool(conn.execute(update).rowcount)


def reinstate_account(conn: sa.Connection, source: str, account_id: str) -> bool:
    """Expect a retired account again (e.g. retired by mistake). False when unknown."""
    update = (
        sa.update(_T)
        .where(_T.c.source == source, _T.c.account_id == account_id)
        .values(retired_on=None, retired_reason=None)
    )
    return bool(conn.execute(update).rowcount)


def read_registry(conn: sa.Connection, source: str | None = None) -> list[dict[str, Any]]:
    """Registry rows (all sources, or one) as dicts ordered by (source, account_id)."""
    query = sa.select(_T).order_by(_T.c.source, _T.c.account_id)
    if source is not None:
        query = query.where(_T.c.source == source)
    return [dict(row) for row in conn.execute(query).mappings()]
