"""Bulk loaders of the warehouse sink: Arrow rows into one table, inside the caller's
transaction. The rows are a table or a stream of record batches (`pa.RecordBatchReader`,
read once), so a report of millions of rows is loaded a batch at a time, never held whole.

- DuckDB scans the Arrow data itself (`INSERT … SELECT` from the registered table or stream):
  no Python object per row or per value, decimal128(38,20) lands in DECIMAL(38,20) exactly.
- PostgreSQL (psycopg 3) takes `COPY … FROM STDIN (FORMAT binary)` encoded column-wise from
  the Arrow buffers (`pg_binary`), or CSV text from pyarrow's writer for a column type the
  binary encoder does not cover.
- Anything else gets `executemany`.
"""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Callable, Iterable, Iterator
from contextlib import suppress
from typing import Any, TypeAlias

import pyarrow as pa
import sqlalchemy as sa

from etl_project.sinks.pg_binary import (  # noqa: F401  (the encoder's names, re-exported)
    BOOL,
    BYTEA,
    DATE,
    FLOAT4,
    FLOAT8,
    INT2,
    INT4,
    INT8,
    NUMERIC,
    TEXT,
    TIMESTAMP,
    TIMESTAMPTZ,
    VARCHAR,
    BinaryPlan,
    binary_plan,
    pg_binary_chunks,
)
from etl_project.sinks.warehouse_tables import csv_chunks

#: Rows to load: a table, or a stream of record batches read once.
Rows: TypeAlias = pa.Table | pa.RecordBatchReader
#: Loads rows (SQL column names) into `table` on an open connection; returns the rows loaded.
Loader = Callable[[sa.Connection, sa.Table, Rows], int]

#: The column types of a table (`%s`: its quoted, search-path-relative name; temp tables too).
_TYPES_SQL = (
    "SELECT attname, atttypid::int FROM pg_attribute "
    "WHERE attrelid = to_regclass(%s) AND attnum > 0 AND NOT attisdropped"
)


def load_duckdb(conn: sa.Connection, table: sa.Table, data: Rows) -> int:
    """Register the Arrow table or stream on the raw DuckDB connection and INSERT … SELECT
    from it.

    DuckDB scans the Arrow buffers itself (in its own threads; a stream batch by batch): no
    Python object is made per row or per value, and decimal128(38,20) lands in DECIMAL(38,20)
    exactly."""
    import duckdb

    prep = conn.dialect.identifier_preparer
    raw: Any = conn.connection.driver_connection
    view = f"_arrow_{uuid.uuid4().hex}"
    cols = ", ".join(prep.quote(n) for n in data.schema.names)
    raw.register(view, data)
    try:
        inserted = conn.exec_driver_sql(
            f"INSERT INTO {prep.format_table(table)} ({cols}) SELECT {cols} FROM {view}"
        ).scalar()
    finally:
        with suppress(duckdb.Error):  # after a failed INSERT the rollback drops the view anyway
            raw.unregister(view)
    return int(inserted or 0)


def load_postgres_copy(conn: sa.Connection, table: sa.Table, data: Rows) -> int:
    """COPY `data` into `table` on the psycopg 3 connection of `conn` (its open transaction).

    Binary COPY (`pg_binary_chunks`) when every column's type has a binary encoder here and the
    client encoding is UTF-8; else CSV (`csv_chunks`). The plan is made from a table, or from
    a stream's first batch. Either way a queued writer sends one chunk while the next one is
    encoded, and errors (the server's, or a value the encoder cannot send) surface as
    SQLAlchemy's."""
    from psycopg.copy import QueuedLibpqWriter

    prep = conn.dialect.identifier_preparer
    target = prep.format_table(table)
    raw: Any = conn.connection.driver_connection
    dbapi_error = conn.dialect.loaded_dbapi.Error
    sample, batches = _first(data)
    names = data.schema.names
    rows = [0]
    sql = _TYPES_SQL
    try:
        plan = _binary_plan(raw, target, sample) if names else None
        if plan is not None:
            cols = ", ".join(prep.quote(names[i]) for i in plan.order)
            sql = f"COPY {target} ({cols}) FROM STDIN (FORMAT binary)"
            chunks: Iterator[Any] = pg_binary_chunks(_counted(batches, rows), plan)
        else:
            cols = ", ".join(prep.quote(n) for n in names)
            sql = f"COPY {target} ({cols}) FROM STDIN (FORMAT csv, ENCODING 'UTF8')"
            chunks = _csv_chunks(_counted(batches, rows))
        with raw.cursor() as cur, cur.copy(sql, writer=QueuedLibpqWriter(cur)) as copy:
            for chunk in chunks:
                copy.write(chunk)
    except dbapi_error as exc:  # the same exception types as SQLAlchemy's own statements
        raise sa.exc.DBAPIError.instance(sql, None, exc, dbapi_error, dialect=conn.dialect) from exc
    except pa.ArrowInvalid as exc:  # e.g. a later batch's integer out of the column's range
        raise sa.exc.DataError(sql, None, exc) from exc
    return rows[0]


def load_executemany(conn: sa.Connection, table: sa.Table, data: Rows) -> int:
    """Portable fallback: batched executemany of Python values (Decimal amounts)."""
    rows = 0
    for batch in _batches(data, 10_000):
        conn.execute(table.insert(), batch.to_pylist())
        rows += batch.num_rows
    return rows


def _binary_plan(raw: Any, target: str, data: pa.Table) -> BinaryPlan | None:
    """The binary plan for `data` into the table `target` (quoted name), from the column types
    the table really has; None when a type has no binary encoder here (then CSV is used)."""
    if str(getattr(raw.info, "encoding", "")).replace("-", "").lower() != "utf8":
        return None  # binary text fields are read in the client encoding
    with raw.cursor() as cur:
        cur.execute(_TYPES_SQL, (target,))
        oids: dict[str, int] = dict(cur.fetchall())
    return binary_plan(data, [oids.get(n, 0) for n in data.column_names])


def _first(data: Rows) -> tuple[pa.Table, Iterable[pa.RecordBatch]]:
    """(the table the COPY plan is made from, every batch of `data`): the table itself, or a
    stream's first batch (put back in front of the rest)."""
    if isinstance(data, pa.Table):
        return data, data.to_batches()
    first = next(iter(data), None)
    if first is None:
        return data.schema.empty_table(), ()
    return pa.Table.from_batches([first]), itertools.chain([first], data)


def _counted(batches: Iterable[pa.RecordBatch], rows: list[int]) -> Iterator[pa.RecordBatch]:
    for batch in batches:
        rows[0] += batch.num_rows
        yield batch


def _csv_chunks(batches: Iterable[pa.RecordBatch]) -> Iterator[memoryview]:
    for batch in batches:
        yield from csv_chunks(pa.Table.from_batches([batch]))


def _batches(data: Rows, rows: int) -> Iterator[pa.RecordBatch]:
    """The record batches of a table or a stream, at most `rows` rows each."""
    for batch in data.to_batches() if isinstance(data, pa.Table) else data:
        for start in range(0, batch.num_rows, rows):
            yield batch.slice(start, rows)
