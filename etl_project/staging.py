"""Staged intermediate results in the object store (stage -> audit -> publish).

Each stage writes a JSON manifest (status, reason, counts) and, when it has rows, a Parquet
file. Downstream stages read these, so every step can be re-run alone, in another process,
and nothing reaches the published report files or the warehouse until the audit passed.
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from etl_project.sinks.object_store import ObjectStore


def snapshot_manifest_key(source: str, report_date: date) -> str:
    return f"staging/snapshots/source={source}/date={report_date.isoformat()}/manifest.json"


def balances_keys(source: str, report_date: date) -> tuple[str, str]:
    base = f"staging/balances/source={source}/date={report_date.isoformat()}/"
    return base + "manifest.json", base + "balances.parquet"


def accounts_key(source: str, report_date: date) -> str:
    """Per-account status of a source's snapshot (Parquet: a report lists ~10^5 accounts)."""
    return balances_keys(source, report_date)[1].replace("balances.parquet", "accounts.parquet")


def completeness_key(report_date: date) -> str:
    """Completeness rows of the staged report (Parquet)."""
    return report_keys(report_date)[1].replace("report.parquet", "completeness.parquet")


def report_keys(report_date: date) -> tuple[str, str]:
    base = f"staging/report/date={report_date.isoformat()}/"
    return base + "manifest.json", base + "report.parquet"


def put_json(store: ObjectStore, key: str, doc: dict[str, Any]) -> None:
    store.put(
        key,
        json.dumps(doc, indent=2, sort_keys=True, default=str).encode("utf-8"),
        content_type="application/json",
    )


def get_json(store: ObjectStore, key: str) -> dict[str, Any] | None:
    try:
        doc: dict[str, Any] = json.loads(store.get(key))
    except FileNotFoundError:
        return None
    return doc


#: Staged files are written once and read once or twice by this product: lz4 without
#: dictionaries writes ~1.7x and reads ~4x faster than pyarrow's default (snappy with
#: dictionaries) for a similar size (1M report rows: 0.64 s / 0.34 s, 73 MB).
PARQUET_OPTIONS: dict[str, Any] = {"compression": "lz4", "use_dictionary": False}


def put_table(store: ObjectStore, key: str, table: pa.Table) -> None:
    sink = io.BytesIO()
    pq.write_table(table, sink, **PARQUET_OPTIONS)
    store.put(key, sink.getvalue(), content_type="application/vnd.apache.parquet")


def get_table(store: ObjectStore, key: str, schema: pa.Schema) -> pa.Table:
    table = pq.read_table(io.BytesIO(store.get(key)))
    return table.select(schema.names).cast(schema)


def read_parquet(store: ObjectStore, key: str) -> pa.Table:
    """A staged Parquet file as it was written (no schema coercion)."""
    return pq.read_table(io.BytesIO(store.get(key)))


@contextmanager
def table_writer(store: ObjectStore, key: str, schema: pa.Schema) -> Iterator[pq.ParquetWriter]:
    """A Parquet writer for `key`: batches written to it go to disk as they come, and the file
    becomes the object at `key` when the block succeeds (memory bounded by one batch)."""
    with (
        store.writing(key, "application/vnd.apache.parquet") as path,
        pq.ParquetWriter(path, schema, **PARQUET_OPTIONS) as writer,
    ):
        yield writer


@contextmanager
def table_reader(store: ObjectStore, key: str) -> Iterator[pq.ParquetFile]:
    """The staged Parquet file at `key`, to read batch by batch (`iter_batches`)."""
    with store.reading(key) as path:
        yield pq.ParquetFile(path)

