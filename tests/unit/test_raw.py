"""Raw snapshot files: fast streamed writing, and every file landed so far still replays.

The envelope is written piece by piece, so these tests pin it to what the old one-shot code
produced (`json.dumps` of the whole document, gzip level 9): same JSON text, same replay.
"""

from __future__ import annotations

import base64
import gzip
import json
import random
from datetime import UTC, date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from etl_project import raw
from etl_project.config import parse_config
from etl_project.http import RawResponse
from etl_project.raw import RawSnapshot
from etl_project.sinks.object_store import LocalObjectStore
from etl_project.stages.snapshot import stored_snapshot

DAY = date(2026, 11, 20)
AT = datetime(2026, 11, 21, 0, 5, 12, 123456, tzinfo=UTC)
CODECS: list[raw.Codec] = ["gzip", "zstd"]

#: Bodies that exercise every escaping rule: CSV with quotes and CRLF, every C0 control,
#: backslashes (also before `n`, so a naive unescape would turn them into newlines), non-ASCII
#: text, and bytes that are not UTF-8 (which must go to base64).
CSV = b'userUUID,User,Ccy,Total\r\nu1,"Smith, J. ""JJ""",EUR,1.5\nu2,\\n\\\\,BTC,0\n'
CONTROLS = bytes(range(0x20)) + b'"\\/\x7f'
UNICODE = "Zürich — 東京 😀 \u2028 end\n".encode()
BINARY = b"\x1f\x8b\x08\x00\xff\xfe\x80 not utf-8 \xc3("
EMPTY = b""


def response(body: bytes, i: int = 0) -> RawResponse:
    return RawResponse(
        method="GET",
        url=f"https://venue.example/api/v1/report?page={i}&ccy=€",
        status=200 if i % 2 == 0 else 503,
        headers={"Content-Type": "text/csv; charset=utf-8", "Date": "Sat, 21 Nov 2026"},
        body=body,
        received_at=(AT + timedelta(seconds=i)).isoformat(),
    )


def snapshot(*bodies: bytes, error: str | None = None) -> RawSnapshot:
    return RawSnapshot(
        source="settlement_platform",
        venue="settlement_report",
        report_date=DAY,
        snapshot_at=AT,
        responses=[response(b, i) for i, b in enumerate(bodies)],
        error=error,
    )


# --- the old writer, verbatim, to build v1 files as they exist in storage -------------------


def old_envelope(snap: RawSnapshot) -> bytes:
    """The JSON text `RawSnapshot.to_bytes` wrote before streaming (one `json.dumps`)."""

    def encode(r: RawResponse) -> dict[str, Any]:
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

    doc = {
        "format": "etl-balances/raw-snapshot/v1",
        "source": snap.source,
        "venue": snap.venue,
        "report_date": snap.report_date.isoformat(),
        "snapshot_at": snap.snapshot_at.astimezone(UTC).isoformat(),
        "error": snap.error,
        "responses": [encode(r) for r in snap.responses],
    }
    return json.dumps(doc, ensure_ascii=False).encode("utf-8")


def old_file(snap: RawSnapshot) -> bytes:
    """A `.json.gz` file exactly as the old code landed it (gzip level 9, mtime 0)."""
    return gzip.compress(old_envelope(snap), mtime=0)


# --- v1 compatibility ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "bodies",
    [(CSV,), (CONTROLS,), (UNICODE,), (BINARY,), (EMPTY,), (CSV, BINARY, UNICODE, EMPTY), ()],
    ids=["csv", "controls", "unicode", "binary", "empty", "mixed", "no-responses"],
)
def test_old_v1_file_replays_to_the_same_snapshot(bodies: tuple[bytes, ...]) -> None:
    original = snapshot(*bodies, error="venue said no ✗")
    replayed = RawSnapshot.from_bytes(old_file(original))
    assert replayed == original
    assert [r.body for r in replayed.responses] == list(bodies)


@pytest.mark.parametrize("codec", CODECS)
@pytest.mark.parametrize(
    "bodies",
    [(CSV,), (CONTROLS,), (UNICODE,), (BINARY,), (EMPTY,), (CSV, BINARY, UNICODE, EMPTY), ()],
    ids=["csv", "controls", "unicode", "binary", "empty", "mixed", "no-responses"],
)
def test_new_files_hold_the_old_envelope_text(codec: raw.Codec, bodies: tuple[bytes, ...]) -> None:
    """Streaming changed how the JSON is produced, not one byte of it: still format v1."""
    snap = snapshot(*bodies)
    assert snap.envelope_json() == old_envelope(snap)
    data = snap.to_bytes(codec)
    text = gzip.decompress(data) if codec == "gzip" else zstd_decompress(data)
    assert text == old_envelope(snap)
    assert RawSnapshot.from_bytes(data) == snap


def test_default_to_bytes_is_plain_gzip_at_a_fast_level() -> None:
    """`to_bytes()` stays what `zcat` and `gzip.decompress` read (venue tests rely on it)."""
    snap = snapshot(CSV * 1000)
    data = snap.to_bytes()
    assert data[:2] == b"\x1f\x8b"
    assert data[8] == 4  # gzip XFL: "fastest algorithm" (level 1), the old code wrote 2 (level 9)
    assert gzip.decompress(data) == old_envelope(snap)


def test_snapshot_at_in_another_zone_is_stored_as_utc() -> None:
    snap = snapshot(CSV)
    snap.snapshot_at = AT.astimezone(timezone(timedelta(hours=2)))
    assert snap.envelope_json() == old_envelope(snap)
    assert b'"snapshot_at": "2026-11-21T00:05:12.123456+00:00"' in snap.envelope_json()
    assert RawSnapshot.from_bytes(snap.to_bytes("zstd")).snapshot_at == AT


# --- escaping, at chunk boundaries ------------------------------------------------------------


def test_escape_equals_json_for_every_byte_of_ascii_and_utf8() -> None:
    text = "".join(chr(c) for c in range(0x80)) + "é€😀\u2028\ud7ff\ue000"
    body = text.encode()
    assert raw._escape(body) == json.dumps(text, ensure_ascii=False)[1:-1].encode()


@pytest.mark.parametrize("seed", range(20))
def test_chunked_escape_equals_json_dumps(seed: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """Chunks are cut anywhere, also inside a multi-byte character; the result must not care."""
    rng = random.Random(seed)
    alphabet = ["a", ",", '"', "\\", "\n", "\r", "\t", "\b", "\x00", "\x1f", "é", "€", "😀"]
    text = "".join(rng.choice(alphabet) for _ in range(rng.randrange(0, 400)))
    monkeypatch.setattr(raw, "_CHUNK", rng.randrange(1, 9))
    body = text.encode()
    escaped = b"".join(raw._escaped_chunks(body))
    assert escaped == json.dumps(text, ensure_ascii=False)[1:-1].encode()
    snap = snapshot(body)
    assert snap.envelope_json() == old_envelope(snap)
    assert RawSnapshot.from_bytes(snap.to_bytes("zstd")).responses[0].body == body


@pytest.mark.parametrize(
    "body",
    [
        b"ascii only",
        "é€😀".encode(),
        b"\xc3",  # truncated at the very end
        b"abc\xc3(",  # invalid continuation
        b"\xed\xa0\x80",  # an encoded surrogate: not UTF-8
        b"\xf4\x90\x80\x80",  # beyond U+10FFFF
        b"ok \xe2\x82\xac ok \xff",
    ],
)
@pytest.mark.parametrize("chunk", [1, 2, 3, 1 << 20])
def test_utf8_check_agrees_with_decode(
    body: bytes, chunk: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(raw, "_CHUNK", chunk)
    try:
        body.decode("utf-8")
        expected = True
    except UnicodeDecodeError:
        expected = False
    assert raw._is_utf8(body) is expected


# --- reading -----------------------------------------------------------------------------------


def zstd_decompress(data: bytes) -> bytes:
    out: bytes = pa.CompressedInputStream(pa.BufferReader(data), "zstd").read()
    return out


def test_codec_is_told_by_magic_bytes_not_by_name() -> None:
    snap = snapshot(CSV)
    zst = snap.to_bytes("zstd")
    assert zst[:4] == b"\x28\xb5\x2f\xfd"
    assert RawSnapshot.from_bytes(zst) == RawSnapshot.from_bytes(snap.to_bytes("gzip")) == snap


def test_a_multi_member_gzip_file_still_reads() -> None:
    """`gzip.decompress` semantics are kept: concatenated members are one file."""
    text = old_envelope(snapshot(CSV))
    data = gzip.compress(text[:10], mtime=0) + gzip.compress(text[10:], mtime=0)
    assert RawSnapshot.from_bytes(data) == snapshot(CSV)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "neither gzip nor zstd"),
        (b'{"format": "etl-balances/raw-snapshot/v1"}', "neither gzip nor zstd"),
        (gzip.compress(b'{"format": "something/else"}'), "format='something/else'"),
        (gzip.compress(b"[1, 2]"), "format=None"),
    ],
)
def test_what_is_not_a_snapshot_is_refused(data: bytes, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        RawSnapshot.from_bytes(data)


def test_unknown_codec_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown raw snapshot codec"):
        snapshot(CSV).to_bytes("lz4")  # type: ignore[arg-type]


# --- landing and listing ---------------------------------------------------------------------


@pytest.mark.parametrize("codec", CODECS)
def test_land_writes_the_codec_s_suffix_and_reads_back(codec: raw.Codec, tmp_path: Path) -> None:
    store = LocalObjectStore(tmp_path)
    snap = snapshot(CSV, BINARY)
    key = raw.land(store, snap, codec)
    prefix = "raw/venue=settlement_report/source=settlement_platform/date=2026-11-20/"
    assert key == f"{prefix}20261121T000512.123456Z{raw.SUFFIXES[codec]}"
    assert raw.is_snapshot_key(key)
    assert RawSnapshot.from_bytes(store.get(key)) == snap


def test_land_default_is_land_codec(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = LocalObjectStore(tmp_path)
    assert raw.land(store, snapshot(CSV)).endswith(raw.SUFFIXES[raw.LAND_CODEC])
    monkeypatch.setattr(raw, "LAND_CODEC", "zstd")
    assert raw.land(store, snapshot(UNICODE)).endswith(".json.zst")


def test_latest_snapshot_key_sees_old_and_new_files(tmp_path: Path) -> None:
    store = LocalObjectStore(tmp_path)
    older, newer = snapshot(CSV), snapshot(UNICODE)
    newer.snapshot_at = AT + timedelta(minutes=1)
    store.put(raw.raw_key(older.venue, older.source, DAY, older.snapshot_at, "gzip"), b"x")
    key = raw.land(store, newer, "zstd")
    store.put(raw.raw_prefix(older.venue, older.source, DAY) + "notes.txt", b"not a snapshot")
    assert raw.latest_snapshot_key(store, older.venue, older.source, DAY) == key
    assert not raw.is_snapshot_key("raw/x/20261121T000512.123456Z.json")


def test_replay_finds_what_land_writes(tmp_path: Path) -> None:
    """Guard for switching `LAND_CODEC`: the replay stage must list the files `land` makes.

    zstd (`.json.zst`) needs `stages/snapshot.stored_snapshot` to filter with
    `raw.is_snapshot_key` instead of `.endswith(".json.gz")`; this fails until it does.
    """
    config = parse_config(
        {"sources": [{"name": "settlement_platform", "kind": "settlement_report",
                      "location": str(tmp_path / "{date}.csv")}]},
    )  # fmt: skip
    store = LocalObjectStore(tmp_path / "lake")
    key = raw.land(store, snapshot(CSV))
    outcome = stored_snapshot(config.sources[0], store, DAY)
    assert outcome.ok, outcome.reason
    assert outcome.details["snapshot_key"] == key
