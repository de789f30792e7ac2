"""`writing`/`reading`: objects written from and read into local files, on a folder and on S3
(moto's server), atomically: a block that fails leaves the previous object."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pytest

from etl_project import staging
from etl_project.sinks.object_store import LocalObjectStore, ObjectStore, S3ObjectStore


def _roundtrip(store: ObjectStore) -> None:
    store.put("a/b.txt", b"old")
    with store.writing("a/b.txt", "text/plain") as path:
        path.write_bytes(b"new " * 100_000)
    assert store.get("a/b.txt") == b"new " * 100_000
    with pytest.raises(RuntimeError, match="half way"), store.writing("a/b.txt") as path:
        path.write_bytes(b"half")
        raise RuntimeError("half way")
    assert store.get("a/b.txt") == b"new " * 100_000
    assert store.list("a/") == ["a/b.txt"]  # no temp file left behind
    with store.reading("a/b.txt") as path:
        assert path.read_bytes()[:8] == b"new new "
    with pytest.raises(FileNotFoundError), store.reading("a/missing.txt"):
        pass

    schema = pa.schema([("n", pa.int64())])
    with staging.table_writer(store, "t.parquet", schema) as writer:
        for start in range(0, 30, 10):
            writer.write_batch(pa.record_batch([pa.array(range(start, start + 10))], schema=schema))
    with staging.table_reader(store, "t.parquet") as parquet:
        got = [v for b in parquet.iter_batches(batch_size=7) for v in b.column(0).to_pylist()]
    assert got == list(range(30))


def test_local_folder_streams(tmp_path: Path) -> None:
    _roundtrip(LocalObjectStore(tmp_path / "store"))
    assert not list((tmp_path / "store").rglob(".tmp-*"))


@pytest.mark.s3
def test_s3_streams(s3_location: str) -> None:
    _roundtrip(S3ObjectStore(s3_location))
