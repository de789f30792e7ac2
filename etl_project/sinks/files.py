"""The report's files and its quarantine in the object store (spec §1 layout).

`reports/settlement_balance/date=<D>/settlement_balance_<D>.{csv,json,parquet}` and
`quarantine/settlement_balance/date=<D>/quarantine_<D>.json`. Keys are fixed per report date,
so a re-run replaces the previous run's files; each `put` is atomic.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import date, datetime
from decimal import Decimal

import pyarrow as pa

from etl_project.report.serialise import to_csv, to_json, to_parquet
from etl_project.sinks.object_store import ObjectStore
from etl_project.venues.base import Rejected

REPORT_PREFIX = "reports/settlement_balance"
QUARANTINE_PREFIX = "quarantine/settlement_balance"

_CONTENT_TYPES = {
    "csv": "text/csv; charset=utf-8",
    "json": "application/json",
    "parquet": "application/vnd.apache.parquet",
}


def report_keys(report_date: date) -> dict[str, str]:
    """Format -> object key of the report files of `report_date`."""
    d = report_date.isoformat()
    return {fmt: f"{REPORT_PREFIX}/date={d}/settlement_balance_{d}.{fmt}" for fmt in _CONTENT_TYPES}


def publish_report_files(store: ObjectStore, report: pa.Table, report_date: date) -> dict[str, str]:
    """Write the CSV, JSON and Parquet of `report` for `report_date`; format -> URI.

    All three are serialised before the first write, so a serialisation error leaves the
    previous files untouched.
    """
    payloads = {"csv": to_csv(report), "json": to_json(report), "parquet": to_parquet(report)}
    keys = report_keys(report_date)
    uris = {}
    for fmt, data in payloads.items():
        store.put(keys[fmt], data, content_type=_CONTENT_TYPES[fmt])
        uris[fmt] = store.uri(keys[fmt])
    return uris


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
