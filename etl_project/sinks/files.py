"""The report's files and its quarantine in the object store (spec §1 layout).

`reports/settlement_balance/date=<D>/settlement_balance_<D>.{csv,json,parquet}` and
`quarantine/settlement_balance/date=<D>/quarantine_<D>.json`. Keys are fixed per report date,
so a re-run replaces the previous run's files; each file appears atomically.

The report files are written from a stream of record batches, read once for all three files,
each into a local file that the store moves or uploads into place (`ObjectStore.writing`): a
report of millions of rows is never one table nor one `bytes` in memory.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from contextlib import ExitStack
from datetime import date, datetime
from decimal import Decimal

import pyarrow as pa

from etl_project.model import Rejected
from etl_project.report.batches import BATCH_ROWS
from etl_project.report.serialise import write_report
from etl_project.sinks.object_store import ObjectStore

REPORT_PREFIX = "reports/settlement_balance"
QUARANTINE_PREFIX = "quarantine/settlement_balance"

#: Content type of each report file format.
CONTENT_TYPES = {
    "csv": "text/csv; charset=utf-8",
    "json": "application/json",
    "parquet": "application/vnd.apache.parquet",
}


def report_keys(report_date: date) -> dict[str, str]:
    """Format -> object key of the report files of `report_date`."""
    d = report_date.isoformat()
    return {fmt: f"{REPORT_PREFIX}/date={d}/settlement_balance_{d}.{fmt}" for fmt in CONTENT_TYPES}


def write_report_files(
    store: ObjectStore, report: pa.Table | pa.RecordBatchReader, keys: Mapping[str, str]
) -> int:
    """Write the report (a table, or a stream of record batches read once) as the files of
    `keys` (format -> key, formats of `CONTENT_TYPES`); returns the rows written.

    Every file is written in full before the first one appears, in the order of `keys`: an
    error while writing leaves every previous file untouched."""
    with ExitStack() as placed:
        paths = {  # entered last = placed first when the block ends: placed in `keys` order
            fmt: placed.enter_context(store.writing(keys[fmt], CONTENT_TYPES[fmt]))
            for fmt in reversed(list(keys))
        }
        with ExitStack() as files:
            sinks = {fmt: files.enter_context(paths[fmt].open("w+b")) for fmt in keys}
            batches = (
                report.to_batches(max_chunksize=BATCH_ROWS)
                if isinstance(report, pa.Table)
                else report
            )
            return write_report(batches, report.schema, sinks)


def publish_report_files(
    store: ObjectStore, report: pa.Table | pa.RecordBatchReader, report_date: date
) -> dict[str, str]:
    """Write the CSV, JSON and Parquet of `report` for `report_date`; format -> URI."""
    keys = report_keys(report_date)
    write_report_files(store, report, keys)
    return {fmt: store.uri(key) for fmt, key in keys.items()}


def quarantine_key(report_date: date) -> str:
    """Object key of the quarantine file of `report_date`."""
    d = report_date.isoformat()
    return f"{QUARANTINE_PREFIX}/date={d}/quarantine_{d}.json"


def write_quarantine(
    store: ObjectStore, rejected: Sequence[Rejected], report_date: date, run_id: str
) -> str:
    """Write the rejected records of `report_date` as a JSON array; return its URI.

    Always written: an empty list replaces a previous run's quarantine for that date. Each
    entry is `{report_date, run_id, source, check, reason, record}`.
    """
    key = quarantine_key(report_date)
    store.put(key, quarantine_bytes(rejected, report_date, run_id), content_type="application/json")
    return store.uri(key)


def quarantine_bytes(rejected: Sequence[Rejected], report_date: date, run_id: str) -> bytes:
    """The quarantine file's content: a JSON array of
    `{report_date, run_id, source, check, reason, record}`."""
    entries = [
        {
            "report_date": report_date.isoformat(),
            "run_id": run_id,
            "source": r.source,
            "check": r.check,
            "reason": r.reason,
            "record": dict(r.record),
        }
        for r in rejected
    ]
    data = json.dumps(entries, ensure_ascii=False, indent=2, default=_json_default) + "\n"
    return data.encode("utf-8")


def _json_default(value: object) -> object:
    """Exact text for values a record may carry beyond JSON's own types."""
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, date | datetime):
        return value.isoformat()
    if isinstance(value, bytes):
        return value.hex()
    raise TypeError(f"cannot write {type(value).__name__} to the quarantine file")
