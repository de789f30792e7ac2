"""Bulk loaders of the warehouse sink: Arrow rows into one table, inside the caller's
transaction. DuckDB ingests the Arrow table directly; PostgreSQL (psycopg 3) takes
`COPY … FROM STDIN` fed by pyarrow's CSV writer; anything else gets `executemany`."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from contextlib import suppress
from typing import Any

import pyarrow as pa
import sqlalchemy as sa

from etl_project.sinks.warehouse_tables import csv_chunks

#: Loads `data` (SQL column names) into `table` on an open connection.
Loader = Callable[[sa.Connection, sa.Table, pa.Table], None]


def load_duckdb(conn: sa.Connection, table: sa.Table, data: pa.Table) -> None:
    """Register the Arrow table on the raw DuckDB connection and INSERT … SELECT from it."""
    import duckdb

    prep = conn.dialect.identifier_preparer
    raw: Any = conn.connection.driver_connection
    view = f"_arrow_{uuid.uuid4().hex}"
    cols = ", ".join(prep.quote(n) for n in data.column_names)
    raw.register(view, data)
    try:
        conn.exec_driver_sql(
            f"INSERT INTO {prep.format_table(table)} ({cols}) SELECT {cols} FROM {view}"
        )
    finally:
        with suppress(duckdb.Error):  # after a failed INSERT the rollback drops the view anyway
            raw.unregister(view)


def load_postgres_copy(conn: sa.Connection, table: sa.Table, data: pa.Table) -> None:
    """Stream `data` as CSV (pyarrow, see `csv_chunks`) into `COPY … FROM STDIN` on the
    psycopg 3 connection; a queued writer sends a chunk while the next one is formatted."""
    from psycopg.copy import QueuedLibpqWriter

    prep = conn.dialect.identifier_preparer
    cols = ", ".join(prep.quote(n) for n in data.column_names)
    sql = f"COPY {prep.format_table(table)} ({cols}) FROM STDIN (FORMAT csv, ENCODING 'UTF8')"
    raw: Any = conn.connection.driver_connection
    dbapi_error = conn.dialect.loaded_dbapi.Error
    try:
        with raw.cursor() as cur, cur.copy(sql, writer=QueuedLibpqWriter(cur)) as copy:
            for chunk in csv_chunks(data):
                copy.write(chunk)
    except dbapi_error as exc:  # the same exception types as SQLAlchemy's own statements
        raise sa.exc.DBAPIError.instance(sql, None, exc, dbapi_error, dialect=conn.dialect) from exc


def load_executemany(conn: sa.Connection, table: sa.Table, data: pa.Table) -> None:
    """Portable fallback: batched executemany of Python values (Decimal amounts)."""
    for batch in data.to_batches(max_chunksize=10_000):
        conn.execute(table.insert(), batch.to_pylist())
