"""LocalObjectStore: the same contract as S3 on a folder, atomic writes, no escaping the root."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from etl_project.sinks.object_store import LocalObjectStore, open_store

RAW = "raw/venue=kraken_futures/source=kraken main/date=2024-03-31/2024-03-31T23:59:59Z.json.gz"
REPORT = "reports/settlement_balance/date=2024-03-31/settlement_balance_2024-03-31.csv"
KEYS = [RAW, REPORT, "reports/settlement_balance/date=2024-03-30/ü.json", "raw2/x"]


@pytest.fixture()
def store(tmp_path: Path) -> LocalObjectStore:
    opened = open_store(str(tmp_path / "lake"))
    assert isinstance(opened, LocalObjectStore)
    return opened


def test_put_get_uri_and_where_the_file_lands(store: LocalObjectStore, tmp_path: Path) -> None:
    uri = store.put(RAW, b"\x1f\x8b payload", content_type="application/gzip")
    path = (tmp_path / "lake" / RAW).resolve()
    assert uri == str(path) == store.uri(RAW)
    assert Path(uri).is_absolute()
    assert path.read_bytes() == b"\x1f\x8b payload"
    assert store.get(RAW) == b"\x1f\x8b payload"
    store.put(RAW, b"v2")
    assert store.get(RAW) == b"v2"
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no temp files left


def test_relative_root_is_pinned_at_creation(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    store = LocalObjectStore("./data/lake")
    monkeypatch.chdir("/")
    store.put("a.txt", b"1")
    assert (tmp_path / "data" / "lake" / "a.txt").read_bytes() == b"1"


def test_list_is_sorted_relative_and_prefix_bound(store: LocalObjectStore) -> None:
    assert store.list("") == []  # nothing written yet, the folder need not exist
    for key in reversed(KEYS):
        store.put(key, key.encode())
    assert store.list("") == sorted(KEYS)
    assert store.list("reports/") == sorted(k for k in KEYS if k.startswith("reports/"))
    assert store.list("reports/settlement_balance/date=2024-03-3") == sorted(KEYS[1:3])
    assert store.list("raw/venue=kraken_futures/") == [RAW]
    assert store.list("nothing/here/") == []


def test_list_skips_unfinished_writes(store: LocalObjectStore, tmp_path: Path) -> None:
    store.put(REPORT, b"x")
    (tmp_path / "lake" / Path(REPORT).parent / ".tmp-abc123").write_bytes(b"half")
    assert store.list("reports/") == [REPORT]


def test_missing_key_delete_and_exists(store: LocalObjectStore) -> None:
    with pytest.raises(FileNotFoundError):
        store.get(REPORT)
    assert not store.exists(REPORT)
    store.put(REPORT, b"a,b\n")
    assert store.exists(REPORT)
    store.delete(REPORT)
    store.delete(REPORT)
    assert not store.exists(REPORT)
    with pytest.raises(FileNotFoundError):
        store.get(REPORT)


@pytest.mark.parametrize(
    "key", ["../outside.txt", "a/../../outside.txt", "/etc/passwd", "", ".", "raw/.."]
)
def test_keys_escaping_the_root_are_refused(
    store: LocalObjectStore, key: str, tmp_path: Path
) -> None:
    for operation in (
        lambda: store.put(key, b"x"),
        lambda: store.get(key),
        lambda: store.delete(key),
        lambda: store.uri(key),
    ):
        with pytest.raises(ValueError, match="escapes the store"):
            operation()
    assert not (tmp_path / "outside.txt").exists()


def test_symlink_out_of_the_root_is_refused(store: LocalObjectStore, tmp_path: Path) -> None:
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    (tmp_path / "lake").mkdir()
    os.symlink(outside, tmp_path / "lake" / "link")
    with pytest.raises(ValueError, match="escapes the store"):
        store.put("link/secret.txt", b"x")
    assert list(outside.iterdir()) == []
