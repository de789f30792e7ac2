"""The warehouse sink: idempotent per-date replaces into any SQLAlchemy database.

`replace` deletes one report date (optionally one source) and bulk-loads Arrow rows in ONE
transaction, so a rerun never duplicates and a failed load leaves the previous rows untouched.
Rows are an Arrow table or a stream of record batches, loaded a batch at a time. Bulk paths
(perf-notes): DuckDB ingests the Arrow data directly (`INSERT … SELECT` from a registered
table or stream); PostgreSQL via psycopg 3 takes `COPY … FROM STDIN (FORMAT binary)` encoded
column-wise from the Arrow buffers; any other database gets `executemany` (see
`warehouse_loaders`).
Amounts stay exact decimals all the way: decimal128(38,20) in Arrow, NUMERIC(38,20) in the
database.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from datetime import UTC, date, datetime
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import sqlalchemy as sa

from etl_project.sinks import (  # noqa: F401  (registers their tables)
    account_registry,
    operational_tables,
    report_versions,
)
from etl_project.sinks.warehouse_duckdb import DUCKDB_MEMORY_LIMIT, duckdb_engine
from etl_project.sinks.warehouse_loaders import (
    Loader,
    Rows,
    load_duckdb,
    load_executemany,
    load_postgres_copy,
)
from etl_project.sinks.warehouse_rows import conformed, quarantine_rows, sql_named
from etl_project.sinks.warehouse_tables import (
    METADATA,
    QUARANTINE_TABLE,
    REPORT_TABLE,
    arrow_schema,
    comment_queries,
    read_pg_csv,
)

if TYPE_CHECKING:
    from etl_project.model import Rejected

__all__ = ["Warehouse", "advisory_key", "date_lock_key", "quarantine_rows", "sql_named"]
_REPORT_ORDER = ("user_uuid", "account_uuid", "ccy")


def advisory_key(*parts: str) -> int:
    """A stable signed 64-bit key for `pg_advisory_xact_lock` from `parts`."""
    digest = hashlib.blake2b("\x1f".join(parts).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


def date_lock_key(report_date: date) -> int:
    """The per-date advisory lock every publish of `report_date` takes on PostgreSQL."""
    return advisory_key("report_date", report_date.isoformat())


class Warehouse:
    """Per-date replace/read of the warehouse tables behind one SQLAlchemy URL."""

    def __init__(
        self,
        url: str,
        *,
        bulk: bool = True,
        lock_timeout: float = 60.0,
        duckdb_memory_limit: str | None = DUCKDB_MEMORY_LIMIT,
    ) -> None:
        """`bulk=False` forces the portable `executemany` path; `lock_timeout` is how long to
        wait for another process holding a DuckDB file; `duckdb_memory_limit` bounds what a
        DuckDB warehouse caches (see `warehouse_duckdb`; None: DuckDB's own default)."""
        self.url = sa.make_url(url)
        self.dialect = self.url.get_backend_name()
        self.lock_timeout = lock_timeout
        self._lock: AbstractContextManager[Any] = nullcontext()
        if self.dialect == "duckdb":
            self.url, self.engine, self._lock = duckdb_engine(self.url, self, duckdb_memory_limit)
        else:
            self.engine = sa.create_engine(self.url)
        self._load: Loader = load_executemany
        if bulk and self.dialect == "duckdb":
            self._load = load_duckdb
        elif bulk and self.dialect == "postgresql" and self.url.get_driver_name() == "psycopg":
            self._load = load_postgres_copy

    @property
    def safe_url(self) -> str:
        """The database URL without its password, for messages."""
        return self.url.render_as_string(hide_password=True)

    # -- schema ---------------------------------------------------------------------------

    def ensure_schema(self) -> None:
        """Create missing tables and (re)apply every table and column comment that differs.

        Idempotent; concurrent callers serialise (advisory lock on PostgreSQL, a process lock
        on DuckDB)."""
        with self._transaction() as conn:
            if self.dialect == "postgresql":
                conn.execute(
                    sa.text("SELECT pg_advisory_xact_lock(:k)"),
                    {"k": advisory_key("etl_project.ensure_schema")},
                )
            METADATA.create_all(conn)
            self._sync_comments(conn)

    def _sync_comments(self, conn: sa.Connection) -> None:
        queries = comment_queries(self.dialect)
        if queries is None:  # comments there are whatever SQLAlchemy's CREATE TABLE emitted
            return
        columns_sql, table_sql = queries
        prep = self.engine.dialect.identifier_preparer
        for table in METADATA.sorted_tables:
            name = prep.format_table(table) if self.dialect == "postgresql" else table.name
            have: dict[str, str | None] = dict(
                conn.execute(sa.text(columns_sql), {"t": name}).all()
            )
            missing = [c for c in table.columns if c.name not in have]
            required = [c.name for c in missing if not c.nullable]
            if required:
                raise RuntimeError(
                    f"warehouse table {table.name} lacks columns {required}; migrate it"
                )
            for column in missing:  # a column added since: nullable, so old rows stay valid
                ddl = sa.schema.CreateColumn(column).compile(dialect=self.engine.dialect)
                conn.exec_driver_sql(f"ALTER TABLE {name} ADD COLUMN {ddl}")
                have[column.name] = None
            if conn.execute(sa.text(table_sql), {"t": name}).scalar() != table.comment:
                conn.execute(sa.schema.SetTableComment(table))
            for column in table.columns:
                if column.comment and have[column.name] != column.comment:
                    conn.execute(sa.schema.SetColumnComment(column))

    # -- writes ---------------------------------------------------------------------------

    def replace(
        self,
        table: sa.Table,
        rows: Rows,
        report_date: date,
        scope: Mapping[str, str] | None = None,
    ) -> int:
        """Replace the rows of `report_date` (and `scope`, e.g. {"source": "kraken_main"}) in
        `table` by `rows` (an Arrow table or stream, SQL column names) in one transaction;
        returns rows inserted.

        `report_date` and scope columns are filled in when absent from `rows` and must match
        when present. On any error the transaction rolls back and the old rows stay."""
        return self.replace_all(report_date, [(table, rows, scope)])[0]

    def replace_all(
        self,
        report_date: date,
        items: Sequence[tuple[sa.Table, Rows, Mapping[str, str] | None]],
        *,
        before: Callable[[sa.Connection], None] | None = None,
        after: Callable[[sa.Connection], None] | None = None,
    ) -> list[int]:
        """Several `replace`s of one date in ONE transaction: BI never sees a half-published
        date (e.g. the report replaced but its quarantine or completeness rows not yet).

        Rows are a table or a stream of record batches (`pa.RecordBatchReader`, read once
        inside the transaction, a batch at a time: a report of millions of rows is never one
        table in memory). `before` runs after the date's lock is taken and before any delete
        (e.g. archive the rows being replaced); `after` runs after the inserts (e.g. diff old
        and new). Both are inside the transaction: if either raises, nothing of the date
        changes."""
        prepared = []
        for table, rows, scope in items:
            fixed = dict(scope or {})
            data = conformed(table, rows, {"report_date": report_date, **fixed})
            where = [
                table.c.report_date == report_date,
                *(table.c[k] == v for k, v in fixed.items()),
            ]
            prepared.append((table, data, where))
        counts = []
        with self._transaction() as conn:
            if self.dialect == "postgresql":
                # Two runs of the same date take turns instead of interleaving delete/insert.
                conn.execute(
                    sa.text("SELECT pg_advisory_xact_lock(:k)"),
                    {"k": date_lock_key(report_date)},
                )
            if before is not None:
                before(conn)
            for table, data, where in prepared:
                conn.execute(sa.delete(table).where(*where))
                empty = isinstance(data, pa.Table) and not data.num_rows
                counts.append(0 if empty else self._load(conn, table, data))
            if after is not None:
                after(conn)
        return counts

    def replace_report(self, report: Rows, report_date: date) -> int:
        """Replace `report_date` in settlement_balance_report by `report` (REPORT_SCHEMA names,
        a table or a stream of record batches)."""
        return self.replace(REPORT_TABLE, sql_named(report), report_date)

    def replace_quarantine(
        self, rejected: Sequence[Rejected], report_date: date, run_id: str
    ) -> int:
        """Replace `report_date`'s quarantine rows by `rejected` (record stored as JSON text)."""
        return self.replace(QUARANTINE_TABLE, quarantine_rows(rejected, run_id), report_date)

    def transaction(self) -> AbstractContextManager[sa.Connection]:
        """One transaction on the warehouse (with DuckDB's in-process turn-taking)."""
        return self._transaction()

    # -- reads ----------------------------------------------------------------------------

    def read_report(self, report_date: date) -> pa.Table:
        """The report rows of `report_date` (SQL names, table order, sorted by user_uuid,
        account_uuid, ccy) with exact decimal128(38,20) amounts."""
        table, schema = REPORT_TABLE, arrow_schema(REPORT_TABLE)
        query = (
            sa.select(*(table.c[n] for n in schema.names))
            .where(table.c.report_date == report_date)
            .order_by(*(table.c[n] for n in _REPORT_ORDER))
        )
        return self.read_arrow(query, schema)

    def read_totals(self, report_date: date) -> pa.Table:
        """Total per (account_uuid, ccy) of `report_date`'s report, summed exactly by the
        database (NUMERIC), so a day-over-day comparison never moves every row to Python."""
        table = REPORT_TABLE
        query = (
            sa.select(table.c.account_uuid, table.c.ccy, sa.func.sum(table.c.total).label("total"))
            .where(table.c.report_date == report_date)
            .group_by(table.c.account_uuid, table.c.ccy)
            .order_by(table.c.account_uuid, table.c.ccy)
        )
        amount = arrow_schema(REPORT_TABLE).field("total").type
        schema = pa.schema([("account_uuid", pa.string()), ("ccy", pa.string()), ("total", amount)])
        return self.read_arrow(query, schema)

    def read_arrow(self, query: sa.Select[Any], schema: pa.Schema) -> pa.Table:
        """Run `query` into an Arrow table of `schema` (its columns, in order): DuckDB's Arrow
        export, PostgreSQL's COPY out read by pyarrow (no Python row objects), else plain
        rows."""
        with self._transaction() as conn:
            raw: Any = conn.connection.driver_connection
            if self._load in (load_duckdb, load_postgres_copy):
                literal = {"literal_binds": True}
                sql = str(query.compile(dialect=self.engine.dialect, compile_kwargs=literal))
                if self._load is load_duckdb:
                    result: pa.Table = raw.sql(sql).to_arrow_table()
                    return result.cast(schema)
                conn.exec_driver_sql("SET LOCAL TimeZone = 'UTC'")
                conn.exec_driver_sql("SET LOCAL DateStyle = 'ISO, YMD'")
                copy_sql = f"COPY ({sql}) TO STDOUT (FORMAT csv, ENCODING 'UTF8')"
                with raw.cursor() as cursor, cursor.copy(copy_sql) as copy:
                    return read_pg_csv(b"".join(copy), schema)
            rows = conn.execute(query).all()
        columns = list(zip(*rows, strict=True)) if rows else [() for _ in schema]
        arrays = [pa.array(col, f.type) for col, f in zip(columns, schema, strict=True)]
        return pa.table(arrays, schema=schema)

    def read_table(self, table_name: str, report_date: date | None = None) -> list[dict[str, Any]]:
        """Rows of a warehouse table (optionally one date) as dicts, ordered by primary key
        (else all columns); numerics as Decimal, timestamps in UTC."""
        if table_name not in METADATA.tables:
            raise ValueError(
                f"unknown warehouse table {table_name!r}; known: {sorted(METADATA.tables)}"
            )
        table = METADATA.tables[table_name]
        query = sa.select(table).order_by(*(list(table.primary_key.columns) or list(table.columns)))
        if report_date is not None:
            query = query.where(table.c.report_date == report_date)
        with self._transaction() as conn:
            rows = conn.execute(query).mappings().all()
        return [{k: _utc(v) for k, v in row.items()} for row in rows]

    def dispose(self) -> None:
        """Close pooled connections."""
        self.engine.dispose()

    # -- plumbing -------------------------------------------------------------------------

    @contextmanager
    def _transaction(self) -> Iterator[sa.Connection]:
        with self._lock, self._connect() as conn, conn.begin():
            yield conn

    def _connect(self) -> sa.Connection:
        """Connect; on DuckDB wait up to `lock_timeout` for another process's file lock."""
        deadline = time.monotonic() + self.lock_timeout
        while True:
            try:
                return self.engine.connect()
            except sa.exc.DBAPIError as exc:
                locked = self.dialect == "duckdb" and "lock" in str(exc.orig).lower()
                if not locked or time.monotonic() >= deadline:
                    raise
                time.sleep(0.1)


def _utc(value: Any) -> Any:
    if isinstance(value, datetime) and value.tzinfo is not None:
        return value.astimezone(UTC)
    return value
