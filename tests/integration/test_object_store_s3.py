"""S3ObjectStore against moto's standalone server over real HTTP; parity with the local store."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlparse

import boto3
import pytest

from etl_project.sinks.object_store import LocalObjectStore, ObjectStore, S3ObjectStore, open_store

pytestmark = pytest.mark.s3

RAW = "raw/venue=kraken_futures/source=kraken main/date=2024-03-31/2024-03-31T23:59:59Z.json.gz"
REPORT = "reports/settlement_balance/date=2024-03-31/settlement_balance_2024-03-31.csv"
KEYS = [RAW, REPORT, "reports/settlement_balance/date=2024-03-30/ü.json", "raw2/x"]


def bucket_of(location: str) -> str:
    return urlparse(location).netloc


def all_objects(location: str) -> list[str]:
    client = boto3.client("s3")
    listing = client.list_objects_v2(Bucket=bucket_of(location))
    return sorted(o["Key"] for o in listing.get("Contents", []))


def test_put_get_uri_and_where_the_object_lands(s3_location: str) -> None:
    store = open_store(s3_location)
    assert isinstance(store, S3ObjectStore)
    uri = store.put(RAW, b"\x1f\x8b payload", content_type="application/gzip")
    assert uri == f"{s3_location}/{RAW}" == store.uri(RAW)
    assert store.get(RAW) == b"\x1f\x8b payload"
    assert all_objects(s3_location) == [f"lake/{RAW}"]
    head = boto3.client("s3").head_object(Bucket=bucket_of(s3_location), Key=f"lake/{RAW}")
    assert head["ContentType"] == "application/gzip"
    store.put(RAW, b"v2")  # overwrite
    assert store.get(RAW) == b"v2"


def test_list_is_sorted_relative_and_prefix_bound(s3_location: str) -> None:
    store = open_store(s3_location)
    for key in reversed(KEYS):
        store.put(key, key.encode())
    assert store.list("") == sorted(KEYS)
    assert store.list("reports/") == sorted(k for k in KEYS if k.startswith("reports/"))
    assert store.list("reports/settlement_balance/date=2024-03-3") == sorted(KEYS[1:3])
    assert store.list("raw/venue=kraken_futures/") == [RAW]
    assert store.list("nothing/here/") == []
    # a sibling prefix of the store (lake2 next to lake) is not part of it
    sibling = S3ObjectStore(s3_location + "2")
    sibling.put("raw/other", b"x")
    assert "raw/other" not in store.list("")
    assert store.list("raw/") == [RAW]
    assert sibling.list("") == ["raw/other"]


def test_missing_key_delete_and_exists(s3_location: str) -> None:
    store = open_store(s3_location)
    with pytest.raises(FileNotFoundError, match=f"lake/{REPORT}"):
        store.get(REPORT)
    assert not store.exists(REPORT)
    store.put(REPORT, b"a,b\n")
    assert store.exists(REPORT)
    store.delete(REPORT)
    store.delete(REPORT)  # deleting what is gone is fine
    assert not store.exists(REPORT)
    with pytest.raises(FileNotFoundError):
        store.get(REPORT)
    assert all_objects(s3_location) == []


@pytest.mark.parametrize("suffix", ["", "/"])
def test_bucket_root_and_trailing_slash(s3_location: str, suffix: str) -> None:
    root = S3ObjectStore(f"s3://{bucket_of(s3_location)}{suffix}")
    assert root.prefix == ""
    assert root.put("a/b.txt", b"1") == f"s3://{bucket_of(s3_location)}/a/b.txt"
    assert root.list("a/") == ["a/b.txt"]
    prefixed = S3ObjectStore(f"{s3_location}/deeper/{suffix}")
    prefixed.put("c.txt", b"2")
    assert prefixed.list("") == ["c.txt"]
    assert sorted(root.list("")) == ["a/b.txt", "lake/deeper/c.txt"]


def run_script(store: ObjectStore) -> dict[str, object]:
    """The same operations on any store; the observable outcome."""
    for key in KEYS:
        store.put(key, key.encode())
    store.delete(KEYS[-1])
    out: dict[str, object] = {
        prefix: store.list(prefix)
        for prefix in ("", "raw/", "reports/", "reports/settlement_balance/date=2024-03-3", "no/")
    }
    out["get"] = [store.get(k) for k in KEYS[:-1]]
    out["exists"] = [store.exists(k) for k in KEYS]
    try:
        store.get(KEYS[-1])
    except FileNotFoundError:
        out["missing"] = "FileNotFoundError"
    return out


def test_s3_and_local_stores_behave_the_same(s3_location: str, tmp_path: Path) -> None:
    assert run_script(open_store(s3_location)) == run_script(LocalObjectStore(tmp_path / "lake"))


def test_prefix_without_slash_matches_the_same_keys(s3_location: str, tmp_path: Path) -> None:
    s3, local = open_store(s3_location), LocalObjectStore(tmp_path / "lake")
    for store in (s3, local):
        store.put("raw/a", b"1")
        store.put("raw2/b", b"2")
    assert s3.list("raw") == local.list("raw")


def test_folder_like_key_is_missing_on_both(s3_location: str, tmp_path: Path) -> None:
    s3, local = open_store(s3_location), LocalObjectStore(tmp_path / "lake")
    for store in (s3, local):
        store.put("raw/a", b"1")
    assert s3.exists("raw") is False
    assert local.exists("raw") is False
