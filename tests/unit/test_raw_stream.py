"""Raw snapshots read as a stream: the same head, metadata and body bytes as reading the whole
envelope, for both codecs, bodies from memory or from a file, escapes cut at any chunk edge,
non-UTF-8 bodies, and files landed before streaming existed."""

from __future__ import annotations

import gzip
from datetime import UTC, date, datetime
from pathlib import Path

import pytest

from etl_project import raw, raw_stream
from etl_project.http import RawResponse
from etl_project.sinks.object_store import LocalObjectStore

AT = datetime(2026, 11, 30, 23, 59, tzinfo=UTC)
#: Every escape json.dumps writes, a multi-byte character, a backslash run at the very end.
BODY = ('h1,h2\r\n"a ""q"" \\ b",\u00e9\u20ac\x1b\x00\t\n' * 50_000 + "\\\\\\").encode()
#: Only two-byte escapes (the fast path): quotes, line ends, tab, backspace, form feed, slash.
SIMPLE_BODY = ('"a","b / c"\r\n\b\f\t"d"\n' * 80_000).encode()


def _snapshot(tmp_path: Path) -> raw.RawSnapshot:
    big = tmp_path / "report.csv"
    big.write_bytes(BODY)
    legacy = tmp_path / "legacy.txt"
    legacy.write_bytes(b"\xff\xfe latin-1 page")
    snap = raw.RawSnapshot("s", "settlement_report", date(2026, 11, 30), AT, error=None)
    snap.responses += [
        RawResponse("GET", "https://x/r.csv", 503, {"Retry-After": "1"}, b'{"e": "busy"}', "t1"),
        RawResponse("GET", "https://x/r.csv", 500, {}, b"\xff\x00", "t2"),
        RawResponse("READ", str(legacy), 200, {}, b"", "t3", body_path=str(legacy)),
        RawResponse("READ", str(big), 200, {"Content-Type": "text/csv"}, b"", "t4", str(big)),
    ]
    return snap


@pytest.mark.parametrize("codec", ["gzip", "zstd"])
def test_streamed_reading_equals_whole_reading(
    tmp_path: Path, codec: raw.Codec, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(raw_stream, "_CHUNK", 4093)  # chunk edges fall inside escapes
    store = LocalObjectStore(tmp_path / "store")
    key = raw.land(store, _snapshot(tmp_path), codec)
    path = Path(store.uri(key))
    whole = raw.RawSnapshot.from_bytes(path.read_bytes())

    head = raw_stream.read_head(path)
    assert (head["source"], head["error"], head["snapshot_at"]) == ("s", None, AT.isoformat())
    metas = raw_stream.response_metas(path)
    assert [(m["status"], m["url"], m["received_at"]) for m in metas] == [
        (r.status, r.url, r.received_at) for r in whole.responses
    ]
    for index, response in enumerate(whole.responses):
        assert b"".join(raw_stream.body_chunks(path, index)) == response.body
    assert whole.responses[3].body == BODY
    with pytest.raises(IndexError):
        list(raw_stream.body_chunks(path, 4))


@pytest.mark.parametrize("body", [SIMPLE_BODY, b'"', b"", b"x\\\\\"y"])
def test_bodies_with_only_two_byte_escapes(
    tmp_path: Path, body: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(raw_stream, "_CHUNK", 1021)
    snap = raw.RawSnapshot("s", "settlement_report", date(2026, 11, 30), AT)
    snap.responses.append(RawResponse("READ", "/r.csv", 200, {}, body, "t"))
    path = tmp_path / "s.json.gz"
    path.write_bytes(snap.to_bytes())
    assert b"".join(raw_stream.body_chunks(path, 0)) == body


def test_a_file_backed_body_lands_the_same_envelope_as_an_in_memory_one(tmp_path: Path) -> None:
    snap = _snapshot(tmp_path)
    in_memory = raw.RawSnapshot(
        snap.source, snap.venue, snap.report_date, snap.snapshot_at,
        [*snap.responses[:2],
         RawResponse("READ", snap.responses[2].url, 200, {}, b"\xff\xfe latin-1 page", "t3"),
         RawResponse("READ", snap.responses[3].url, 200, {"Content-Type": "text/csv"}, BODY, "t4")],
    )  # fmt: skip
    assert snap.envelope_json() == in_memory.envelope_json()


def test_a_snapshot_landed_before_streaming_still_reads(tmp_path: Path) -> None:
    """Old files: gzip level 9 of the same v1 envelope, bodies held in memory."""
    snap = raw.RawSnapshot("s", "kraken_futures", date(2026, 11, 1), AT, error="boom")
    snap.responses.append(RawResponse("GET", "https://k/a", 200, {}, b'{"a": "\\u00e9"}', "t"))
    path = tmp_path / "old.json.gz"
    path.write_bytes(gzip.compress(snap.envelope_json(), compresslevel=9, mtime=0))

    assert raw_stream.read_head(path)["error"] == "boom"
    assert b"".join(raw_stream.body_chunks(path, 0)) == b'{"a": "\\u00e9"}'


def test_a_file_that_is_not_a_snapshot_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "x.json.gz"
    path.write_bytes(b"plain text")
    with pytest.raises(ValueError, match="neither gzip nor zstd"):
        raw_stream.read_head(path)
