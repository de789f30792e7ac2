"""Raw snapshots: every venue response of one fetch, landed verbatim before parsing.

One snapshot = one compressed JSON envelope at
`raw/venue=<kind>/source=<name>/date=<D>/<snapshot_at>.json.gz` (spec §1), or `.json.zst` when
landed with zstd. The envelope keeps each response's body as the exact text received (base64
when not UTF-8), its status, URL and audit headers; request headers (where credentials live)
are never recorded. Backfills replay these files through the same parser, so they are the
system of record.

Why it is written the way it is: a settlement report body is hundreds of MB, so the envelope is
streamed into the compressor (small JSON header, then the body escaped chunk by chunk) instead of
being built as one str, encoded and compressed in three full copies, and compression is fast
(gzip level 1, or zstd level 1) instead of gzip level 9, which took ~22 s of a ~57 s 1M-row run.
The JSON text is byte for byte what `json.dumps(doc, ensure_ascii=False)` gave before, so the
envelope stays v1 and every file landed so far replays unchanged; only the container may differ.
A file's codec is read from its magic bytes, never from its name.
"""

from __future__ import annotations

import base64
import codecs
import gzip
import io
import json
import re
import threading
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any, Literal

import pyarrow as pa

from etl_project.http import RawResponse
from etl_project.sinks.object_store import ObjectStore

FORMAT = "etl-balances/raw-snapshot/v1"

#: Compression container of a snapshot file. The JSON envelope inside is the same for both.
Codec = Literal["gzip", "zstd"]

#: What `land` writes. zstd is ~3x faster to land and ~1.4x faster to read back than gzip
#: level 1, with a ~20 % smaller file (1M-row report: land 0.96 s vs 2.7 s, read 1.2 s vs 1.7 s,
#: 79 MiB vs 101 MiB), but only switch together with every reader of raw listings: they must
#: accept `.json.zst` (`is_snapshot_key`), or replays stop finding the new snapshots.
LAND_CODEC: Codec = "gzip"

#: zlib level for gzip output: level 1 is ~5x faster than the old level 9 for ~18 % more bytes.
GZIP_LEVEL = 1

#: File-name suffix per codec; `is_snapshot_key` accepts all of them (old files are `.json.gz`).
SUFFIXES: dict[Codec, str] = {"gzip": ".json.gz", "zstd": ".json.zst"}
CONTENT_TYPES: dict[Codec, str] = {"gzip": "application/gzip", "zstd": "application/zstd"}

_GZIP_MAGIC = b"\x1f\x8b"
_ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"

#: Body bytes escaped and compressed per step: large enough that per-call overhead vanishes,
#: small enough that the working set beside the body stays a few MiB.
_CHUNK = 1 << 20


def snapshot_stamp(moment: datetime) -> str:
    """File-name-safe UTC timestamp, sortable as text (`20261121T000512.123456Z`)."""
    return moment.astimezone(UTC).strftime("%Y%m%dT%H%M%S.%fZ")


def parse_stamp(stamp: str) -> datetime:
    return datetime.strptime(stamp, "%Y%m%dT%H%M%S.%fZ").replace(tzinfo=UTC)


def raw_prefix(kind: str, source: str, report_date: date) -> str:
    return f"raw/venue={kind}/source={source}/date={report_date.isoformat()}/"


def raw_key(
    kind: str, source: str, report_date: date, snapshot_at: datetime, codec: Codec | None = None
) -> str:
    """Where `land` puts a snapshot; the suffix names the codec for people and tools (zstd -d)."""
    suffix = SUFFIXES[codec or LAND_CODEC]
    return f"{raw_prefix(kind, source, report_date)}{snapshot_stamp(snapshot_at)}{suffix}"


def is_snapshot_key(key: str) -> bool:
    """Is `key` a landed snapshot of any codec? Listings must accept old `.json.gz` files too."""
    return key.endswith(tuple(SUFFIXES.values()))


@dataclass
class RawSnapshot:
    """The responses of one fetch of one source, plus the error that ended it, if any."""

    source: str
    venue: str
    report_date: date
    snapshot_at: datetime
    responses: list[RawResponse] = field(default_factory=list)
    error: str | None = None

    def to_bytes(self, codec: Codec = "gzip") -> bytes:
        """The compressed envelope, streamed so that peak memory stays ~the bodies themselves.

        gzip (the default) is the `.json.gz` form that `zcat` and `gzip.decompress` read;
        `land` writes `LAND_CODEC`. Either way the decompressed text is exactly the v1 envelope.
        """
        if codec == "gzip":
            return _gzip(self._write_envelope)
        if codec == "zstd":
            return _zstd(self._write_envelope)
        raise ValueError(f"unknown raw snapshot codec {codec!r}")

    def envelope_json(self) -> bytes:
        """The uncompressed v1 envelope (UTF-8 JSON), for inspection and tests."""
        parts: list[bytes] = []
        self._write_envelope(parts.append)
        return b"".join(parts)

    def _write_envelope(self, write: Callable[[bytes], object]) -> None:
        """Emit `json.dumps(doc, ensure_ascii=False)` of the v1 envelope piece by piece.

        Key order and separators are those of the dict the old code dumped, so files written
        before and after this change hold identical JSON; only each body is written in chunks.
        """
        head = {
            "format": FORMAT,
            "source": self.source,
            "venue": self.venue,
            "report_date": self.report_date.isoformat(),
            "snapshot_at": self.snapshot_at.astimezone(UTC).isoformat(),
            "error": self.error,
        }
        write(_open_object(head) + b', "responses": [')
        for i, response in enumerate(self.responses):
            if i:
                write(b", ")
            _write_response(response, write)
        write(b"]}")

    @classmethod
    def from_bytes(cls, data: bytes) -> RawSnapshot:
        """Read a snapshot file of any codec (by magic bytes): decompress once, parse once."""
        text = _decompress(data).decode("utf-8", "surrogatepass")  # what json.loads(bytes) does
        doc = json.loads(text)
        del text  # the body strs live on in `doc`; drop the envelope before encoding them
        if not isinstance(doc, dict) or doc.get("format") != FORMAT:
            found = doc.get("format") if isinstance(doc, dict) else None
            raise ValueError(f"not a raw snapshot envelope: format={found!r}")
        responses = doc["responses"]
        decoded: list[RawResponse] = []
        for i, r in enumerate(responses):
            decoded.append(_decode_response(r))
            responses[i] = None  # free each body str as soon as its bytes exist
        return cls(
            source=doc["source"],
            venue=doc["venue"],
            report_date=date.fromisoformat(doc["report_date"]),
            snapshot_at=datetime.fromisoformat(doc["snapshot_at"]),
            responses=decoded,
            error=doc.get("error"),
        )


# --- writing ----------------------------------------------------------------------------------


def _open_object(obj: dict[str, Any]) -> bytes:
    """`json.dumps(obj)` without its closing brace, so more members can follow."""
    return json.dumps(obj, ensure_ascii=False)[:-1].encode("utf-8")


def _write_response(r: RawResponse, write: Callable[[bytes], object]) -> None:
    meta: dict[str, Any] = {
        "method": r.method,
        "url": r.url,
        "status": r.status,
        "headers": dict(r.headers),
        "received_at": r.received_at,
    }
    if r.body_path is not None and _file_is_utf8(r.body_path):
        write(_open_object(meta) + b', "body": "')
        with open(r.body_path, "rb") as fh:
            while piece := fh.read(_CHUNK):
                write(_escape(piece))
        write(b'"}')
    elif r.body_path is not None:
        with open(r.body_path, "rb") as fh:
            meta["body_base64"] = base64.b64encode(fh.read()).decode("ascii")
        write(json.dumps(meta, ensure_ascii=False).encode("utf-8"))
    elif _is_utf8(r.body):
        write(_open_object(meta) + b', "body": "')
        for piece in _escaped_chunks(r.body):
            write(piece)
        write(b'"}')
    else:  # rare (e.g. an error page in a legacy charset): base64 in one go, as before
        meta["body_base64"] = base64.b64encode(r.body).decode("ascii")
        write(json.dumps(meta, ensure_ascii=False).encode("utf-8"))


def _is_utf8(body: bytes) -> bool:
    """Would `body.decode("utf-8")` succeed? Checked without a full-size copy of the body."""
    if body.isascii():  # the common case (CSV and JSON reports), and allocation-free
        return True
    decoder = codecs.getincrementaldecoder("utf-8")()
    try:
        for start in range(0, len(body), _CHUNK):
            decoder.decode(body[start : start + _CHUNK])
        decoder.decode(b"", final=True)
    except UnicodeDecodeError:
        return False
    return True


def _file_is_utf8(path: str) -> bool:
    """`_is_utf8` of a file's content, read chunk by chunk (a chunk may end mid-character)."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    try:
        with open(path, "rb") as fh:
            while piece := fh.read(_CHUNK):
                if piece.isascii() and not decoder.getstate()[0]:
                    continue  # the common case, allocation-free
                decoder.decode(piece)
        decoder.decode(b"", final=True)
    except UnicodeDecodeError:
        return False
    return True


#: What `json.dumps(..., ensure_ascii=False)` escapes in a str: `"`, `\` and C0 controls. In
#: valid UTF-8 these bytes never occur inside a multi-byte character, so escaping can run on
#: the raw bytes, cut anywhere. The table comes from json itself, so it cannot drift from it.
_ESCAPES = {
    bytes([c]): json.dumps(chr(c))[1:-1].encode("ascii") for c in (*range(0x20), 0x22, 0x5C)
}
_NEEDS_ESCAPE = re.compile(rb'[\x00-\x1f"\\]')
#: Controls other than \t \n \r: absent from real reports, escaped by the slower regex path.
_RARE = bytes(c for c in range(0x20) if c not in (0x09, 0x0A, 0x0D))


def _escape(chunk: bytes) -> bytes:
    """`json.dumps(chunk.decode(), ensure_ascii=False)[1:-1].encode()`, on the bytes.

    Five `bytes.replace` passes (C, memchr-speed) are ~2x faster than decoding to str and
    running json's encoder; the regex covers the rare chunk with other control characters.
    """
    if len(chunk.translate(None, _RARE)) != len(chunk):
        return _NEEDS_ESCAPE.sub(lambda m: _ESCAPES[m[0]], chunk)
    return (
        chunk.replace(b"\\", b"\\\\")  # first, so the backslashes added below stay single
        .replace(b'"', b'\\"')
        .replace(b"\n", b"\\n")
        .replace(b"\r", b"\\r")
        .replace(b"\t", b"\\t")
    )


def _escaped_chunks(body: bytes) -> Iterator[bytes]:
    for start in range(0, len(body), _CHUNK):
        yield _escape(body[start : start + _CHUNK])


def _gzip(emit: Callable[[Callable[[bytes], object]], None]) -> bytes:
    """Gzip (mtime 0, like `gzip.compress(..., mtime=0)`) of what `emit` writes, streamed."""
    compressor = zlib.compressobj(GZIP_LEVEL, zlib.DEFLATED, 31)  # wbits 31: gzip container
    out = io.BytesIO()
    emit(lambda piece: out.write(compressor.compress(piece)))
    out.write(compressor.flush())
    return out.getvalue()


class _KeptOpen(io.BytesIO):
    """A BytesIO that outlives Arrow closing it, so the compressed bytes can still be read.

    Arrow's own `BufferOutputStream` grows by doubling and needs a copy to become `bytes`:
    measured at 1M rows, +231 MiB and ~0.5 s more than this BytesIO (+85 MiB, no copy).
    """

    def close(self) -> None:
        """Arrow closes the stream it wraps on exit; the buffer must stay readable."""


def _zstd(emit: Callable[[Callable[[bytes], object]], None]) -> bytes:
    """One zstd frame (Arrow's default level 1) of what `emit` writes, streamed."""
    sink = _KeptOpen()
    with pa.CompressedOutputStream(sink, "zstd") as stream:
        emit(stream.write)
    return sink.getvalue()


# --- reading ----------------------------------------------------------------------------------


def _decompress(data: bytes) -> bytes:
    if data.startswith(_ZSTD_MAGIC):
        return pa.CompressedInputStream(pa.BufferReader(data), "zstd").read()
    if data.startswith(_GZIP_MAGIC):  # every snapshot landed before zstd, at any level
        return gzip.decompress(data)
    raise ValueError("not a raw snapshot file: neither gzip nor zstd")


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


def land(store: ObjectStore, snapshot: RawSnapshot, codec: Codec | None = None) -> str:
    """Write the snapshot envelope (as `LAND_CODEC` unless `codec` says); returns its key."""
    codec = codec or LAND_CODEC
    key = raw_key(
        snapshot.venue, snapshot.source, snapshot.report_date, snapshot.snapshot_at, codec
    )
    with store.writing(key, CONTENT_TYPES[codec]) as path, open(path, "wb") as fh:
        if codec == "gzip":  # streamed to disk: memory is one chunk, not the envelope
            compressor = zlib.compressobj(GZIP_LEVEL, zlib.DEFLATED, 31)
            snapshot._write_envelope(lambda piece: fh.write(compressor.compress(piece)))
            fh.write(compressor.flush())
        else:
            with pa.CompressedOutputStream(fh, "zstd") as stream:
                snapshot._write_envelope(stream.write)
    return key


def latest_snapshot_key(
    store: ObjectStore, kind: str, source: str, report_date: date
) -> str | None:
    """The most recent stored snapshot of a source for a date (stamps sort as text)."""
    keys = [k for k in store.list(raw_prefix(kind, source, report_date)) if is_snapshot_key(k)]
    return keys[-1] if keys else None
