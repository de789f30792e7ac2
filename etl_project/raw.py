"""Raw snapshots: every venue response of one fetch, landed verbatim before parsing.

One snapshot = one gzip JSON envelope at
`raw/venue=<kind>/source=<name>/date=<D>/<snapshot_at>.json.gz` (spec §1). The envelope
keeps each response's body as the exact text received (base64 when not UTF-8), its status,
URL and audit headers; request headers (where credentials live) are never recorded.
Backfills replay these files through the same parser, so they are the system of record.
"""

from __future__ import annotations

import base64
import gzip
import json
import threading
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

from etl_project.http import RawResponse
from etl_project.sinks.object_store import ObjectStore

FORMAT = "etl-balances/raw-snapshot/v1"


def snapshot_stamp(moment: datetime) -> str:
    """File-name-safe UTC timestamp, sortable as text (`20261121T000512.123456Z`)."""
    return moment.astimezone(UTC).strftime("%Y%m%dT%H%M%S.%fZ")


def parse_stamp(stamp: str) -> datetime:
    return datetime.strptime(stamp, "%Y%m%dT%H%M%S.%fZ").replace(tzinfo=UTC)


def raw_prefix(kind: str, source: str, report_date: date) -> str:
    return f"raw/venue={kind}/source={source}/date={report_date.isoformat()}/"


def raw_key(kind: str, source: str, report_date: date, snapshot_at: datetime) -> str:
    return f"{raw_prefix(kind, source, report_date)}{snapshot_stamp(snapshot_at)}.json.gz"


@dataclass
class RawSnapshot:
    """The responses of one fetch of one source, plus the error that ended it, if any."""

    source: str
    venue: str
    report_date: date
    snapshot_at: datetime
    responses: list[RawResponse] = field(default_factory=list)
    error: str | None = None

    def to_bytes(self) -> bytes:
        doc: dict[str, Any] = {
            "format": FORMAT,
            "source": self.source,
            "venue": self.venue,
            "report_date": self.report_date.isoformat(),
            "snapshot_at": self.snapshot_at.astimezone(UTC).isoformat(),
            "error": self.error,
            "responses": [_encode_response(r) for r in self.responses],
        }
        return gzip.compress(json.dumps(doc, ensure_ascii=False).encode("utf-8"), mtime=0)

    @classmethod
    def from_bytes(cls, data: bytes) -> RawSnapshot:
        doc = json.loads(gzip.decompress(data))
        if doc.get("format") != FORMAT:
            raise ValueError(f"not a raw snapshot envelope: format={doc.get('format')!r}")
        return cls(
            source=doc["source"],
            venue=doc["venue"],
            report_date=date.fromisoformat(doc["report_date"]),
            snapshot_at=datetime.fromisoformat(doc["snapshot_at"]),
            responses=[_decode_response(r) for r in doc["responses"]],
            error=doc.get("error"),
        )


def _encode_response(r: RawResponse) -> dict[str, Any]:
    out: dict[str, Any] = {
        "method": r.method,
        "url": r.url,
        "status": r.status,
        "headers": dict(r.headers),
        "received_at": r.received_at,
    }
    try:
        out["body"] = r.body.decode("utf-8")
    except UnicodeDecodeError:
        out["body_base64"] = base64.b64encode(r.body).decode("ascii")
    return out


def _decode_response(d: dict[str, Any]) -> RawResponse:
    body = d["body"].encode("utf-8") if "body" in d else base64.b64decode(d["body_base64"])
    return RawResponse(
        method=d["method"],
        url=d["url"],
        status=d["status"],
        headers=d.get("headers", {}),
        body=body,
        received_at=d["received_at"],
    )


class SnapshotRecorder:
    """Collects responses as the HTTP layer receives them (thread-safe)."""

    def __init__(self, snapshot: RawSnapshot) -> None:
        self.snapshot = snapshot
        self._lock = threading.Lock()

    def record(self, response: RawResponse) -> None:
        with self._lock:
            self.snapshot.responses.append(response)


def land(store: ObjectStore, snapshot: RawSnapshot) -> str:
    """Write the snapshot envelope; returns its key."""
    key = raw_key(snapshot.venue, snapshot.source, snapshot.report_date, snapshot.snapshot_at)
    store.put(key, snapshot.to_bytes(), content_type="application/gzip")
    return key


def latest_snapshot_key(
    store: ObjectStore, kind: str, source: str, report_date: date
) -> str | None:
    """The most recent stored snapshot of a source for a date (stamps sort as text)."""
    keys = [k for k in store.list(raw_prefix(kind, source, report_date)) if k.endswith(".json.gz")]
    return keys[-1] if keys else None
