"""How the warehouse opens a DuckDB database: one process-wide lock per file, the file released
between operations, and a memory limit.

Why the limit: DuckDB otherwise caches what a transaction inserts up to 80 % of the machine's
memory, so loading a report of millions of rows would cost memory in proportion to the
report. Under `DUCKDB_MEMORY_LIMIT` it writes and evicts instead (and spills joins to
`<file>.tmp`); only the primary-key entries of the rows inserted in one transaction must fit
(~200 B a row: 1 GiB holds a date of ~5M rows).
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import sqlalchemy as sa

#: DuckDB's memory limit for the warehouse (DuckDB's `memory_limit` syntax).
DUCKDB_MEMORY_LIMIT = "1GB"

# One lock per DuckDB database file: DuckDB's optimistic concurrency would fail one of two
# concurrent writers in this process, so they take turns instead (other processes are kept
# out by DuckDB's file lock, which `Warehouse._connect` waits for).
_LOCKS: dict[str, threading.RLock] = {}
_LOCKS_GUARD = threading.Lock()


def duckdb_engine(
    url: sa.URL, owner: object, memory_limit: str | None
) -> tuple[sa.URL, sa.Engine, threading.RLock]:
    """(the URL with the file's absolute path, the engine, the file's lock) of a DuckDB URL.
    An in-memory database is private to `owner`."""
    database = url.database or ":memory:"
    key = f"memory:{id(owner)}"
    kwargs: dict[str, Any] = {}
    if database != ":memory:" and ":" not in database:
        path = Path(database).expanduser().resolve()
        path.parent.mkdir(parents=True, exist_ok=True)
        url = url.set(database=str(path))
        # Release the file between operations so other processes (Dagster steps, the UI, a
        # notebook) can open it.
        kwargs["poolclass"] = sa.NullPool
        key = str(path)
    with _LOCKS_GUARD:
        lock = _LOCKS.setdefault(key, threading.RLock())
    engine = sa.create_engine(url, **kwargs)
    if memory_limit:
        setting = f"SET memory_limit = '{memory_limit}'"

        @sa.event.listens_for(engine, "connect")
        def _limit(dbapi_connection: Any, _record: Any) -> None:
            dbapi_connection.execute(setting)

    return url, engine, lock
