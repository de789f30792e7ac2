"""Reading a raw snapshot file as a stream: its head, its responses' metadata, and one
response's body in chunks, without decompressing the file into memory or decoding the JSON
envelope as one document.

Why: a settlement report snapshot holds a body of hundreds of MB to GB; `RawSnapshot.from_bytes`
needs the file, its text and the body at once (several times the body). Here memory is one
chunk. It reads exactly the v1 envelope that `raw` writes (`json.dumps(doc,
ensure_ascii=False)` text, any codec, old files included), relying on two facts of JSON text:
a `"` inside a string is always escaped, so the member names below cannot occur inside a
value; and a string ends at the first `"` preceded by an even number of backslashes.
"""

from __future__ import annotations

import base64
import gzip
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any, cast

import numpy as np
import pyarrow as pa

__all__ = ["body_chunks", "read_head", "response_metas", "responses"]

_GZIP_MAGIC = b"\x1f\x8b"
_ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
_CHUNK = 1 << 22
_RESPONSES = b', "responses": ['
_BODY = b', "body": "'
_BODY64 = b', "body_base64": "'
_QUOTE, _BACKSLASH = 0x22, 0x5C
#: The byte each two-byte escape `\\<code>` stands for, indexed by the code byte.
_DECODE = np.arange(256, dtype=np.uint8)
for _code, _char in {b"b": 8, b"f": 12, b"n": 10, b"r": 13, b"t": 9}.items():
    _DECODE[_code[0]] = _char
_ESCAPE = re.compile(rb'\\(["\\/bfnrt]|u[0-9a-fA-F]{4})')
_SIMPLE = {b'"': b'"', b"\\": b"\\", b"/": b"/", b"b": b"\b", b"f": b"\f", b"n": b"\n",
           b"r": b"\r", b"t": b"\t"}  # fmt: skip


def _open(path: Path) -> IO[bytes]:
    with open(path, "rb") as fh:
        magic = fh.read(4)
    if magic.startswith(_ZSTD_MAGIC):
        return pa.input_stream(str(path), compression="zstd")  # type: ignore[return-value]
    if magic.startswith(_GZIP_MAGIC):
        return cast(IO[bytes], gzip.open(path, "rb"))
    raise ValueError("not a raw snapshot file: neither gzip nor zstd")


class _Reader:
    """Decompressed text with a look-ahead buffer."""

    def __init__(self, stream: IO[bytes]) -> None:
        self._stream = stream
        self.buf = b""
        self.eof = False

    def fill(self) -> bool:
        if self.eof:
            return False
        data = self._stream.read(_CHUNK)
        if not data:
            self.eof = True
            return False
        self.buf += data
        return True

    def until(self, marker: bytes) -> bytes:
        """Everything before `marker` (consumed with it); ValueError when it never comes."""
        while (at := self.buf.find(marker)) < 0:
            if not self.fill():
                raise ValueError(f"raw snapshot envelope: {marker!r} not found")
        text, self.buf = self.buf[:at], self.buf[at + len(marker) :]
        return text

    def string(self) -> Iterator[bytes]:
        """The rest of the JSON string the reader is inside, still escaped, chunk by chunk."""
        while True:
            end = _string_end(self.buf)
            if end is not None:
                piece, self.buf = self.buf[:end], self.buf[end + 1 :]
                yield piece
                return
            keep = _open_escape(self.buf)
            piece, self.buf = self.buf[: len(self.buf) - keep], self.buf[len(self.buf) - keep :]
            if piece:
                yield piece
            if not self.fill():
                raise ValueError("raw snapshot envelope: a body string does not end")


def _string_end(buf: bytes) -> int | None:
    """Offset of the `"` that ends the JSON string `buf` starts inside: the first quote after
    an even run of backslashes. Quotes are found by numpy (a CSV may quote every field, each
    escaped as one backslash and a quote); Python counts runs only where two backslashes
    precede a quote (text holding a literal backslash right before a quote: rare)."""
    data = np.frombuffer(buf, np.uint8)
    quotes = np.flatnonzero(data == _QUOTE)
    one = np.zeros(len(quotes), bool)  # a backslash right before the quote
    one[quotes > 0] = data[quotes[quotes > 0] - 1] == _BACKSLASH
    two = np.zeros(len(quotes), bool)  # and another before that
    two[quotes > 1] = data[quotes[quotes > 1] - 2] == _BACKSLASH
    two &= one
    plain = quotes[~one]
    end = int(plain[0]) if len(plain) else None
    for at in quotes[two].tolist():
        if end is not None and at > end:
            break
        start = at
        while start > 0 and data[start - 1] == _BACKSLASH:
            start -= 1
        if (at - start) % 2 == 0:
            return int(at)
    return end


def _open_escape(buf: bytes) -> int:
    """How many trailing bytes of `buf` may be an unfinished escape (kept for the next chunk)."""
    tail = buf[-6:]
    at = tail.rfind(b"\\")
    if at < 0:
        return 0
    start = len(buf) - len(tail) + at
    while start > 0 and buf[start - 1] == 0x5C:
        start -= 1
    return len(buf) - start


def _unescape(piece: bytes) -> bytes:
    if b"\\" not in piece:
        return piece
    if b"\\\\" not in piece and b"\\u" not in piece:
        # Every backslash starts a two-byte escape: drop the backslashes and map the byte after
        # each through a table, vectorised (a report has an escape per line end and quote).
        data = np.frombuffer(piece, np.uint8)
        slashes = np.flatnonzero(data == _BACKSLASH)
        out = data.copy()
        out[slashes + 1] = _DECODE[data[slashes + 1]]
        keep = np.ones(len(data), bool)
        keep[slashes] = False
        return out[keep].tobytes()
    return _ESCAPE.sub(_one, piece)


def _one(match: re.Match[bytes]) -> bytes:
    code = match[1]
    if code[:1] == b"u":
        return chr(int(code[1:], 16)).encode("utf-8", "surrogatepass")
    return _SIMPLE[code]


def read_head(path: Path) -> dict[str, Any]:
    """The envelope's members before its responses (format, source, snapshot_at, error…)."""
    with _open(path) as stream:
        reader = _Reader(stream)
        head: dict[str, Any] = json.loads(reader.until(_RESPONSES) + b"}")
    return head


def responses(path: Path) -> Iterator[tuple[dict[str, Any], Iterator[bytes]]]:
    """Each response's metadata (method, url, status, headers, received_at) and its body as
    chunks, in order; a body not read before the next response is skipped unread."""
    with _open(path) as stream:
        reader = _Reader(stream)
        reader.until(_RESPONSES)
        pending: Iterator[bytes] = iter(())
        while True:
            for _ in pending:  # the previous body, if the caller did not read it
                pass
            meta, pending = _next_response(reader)
            if meta is None:
                return
            yield meta, pending


def response_metas(path: Path) -> list[dict[str, Any]]:
    """Each response's metadata, bodies skipped."""
    return [meta for meta, _ in responses(path)]


def body_chunks(path: Path, index: int) -> Iterator[bytes]:
    """The body of response `index`, as the bytes received, chunk by chunk."""
    for at, (_, body) in enumerate(responses(path)):
        if at == index:
            yield from body
            return
    raise IndexError(f"raw snapshot holds no response {index}")


def _next_response(reader: _Reader) -> tuple[dict[str, Any] | None, Iterator[bytes]]:
    """The next response's metadata and its body chunks (to be read before anything else)."""
    while not reader.buf.lstrip(b", ") and reader.fill():
        pass
    reader.buf = reader.buf.lstrip(b", ")
    if not reader.buf or reader.buf.startswith(b"]"):
        return None, iter(())
    while True:
        found = [(at, m) for m in (_BODY, _BODY64) if (at := reader.buf.find(m)) >= 0]
        if found:
            break
        if not reader.fill():
            raise ValueError("raw snapshot envelope: a response without a body")
    at, marker = min(found)
    meta: dict[str, Any] = json.loads(reader.buf[:at] + b"}")
    reader.buf = reader.buf[at + len(marker) :]
    return meta, _body(reader, marker == _BODY64)


def _body(reader: _Reader, base64_body: bool) -> Iterator[bytes]:
    if base64_body:  # rare and small (an error page in a legacy charset)
        yield base64.b64decode(b"".join(reader.string()))
    else:
        for piece in reader.string():
            yield _unescape(piece)
    reader.until(b"}")
