"""Object store: a local folder by default, S3 through boto3 for `s3://bucket/prefix`.

Keys are always `/`-separated and relative to the store's root, so the layout of spec §1
(`raw/…`, `reports/…`, `quarantine/…`, `staging/…`) is the same on both.
"""

from __future__ import annotations

import os
import socket
import stat
import tempfile
from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from etl_project import failpoints

_Keys = list[str]


class ObjectStore(ABC):
    """The few operations the pipeline needs; both backends behave identically."""

    @abstractmethod
    def put(self, key: str, data: bytes, content_type: str = "application/octet-stream") -> str:
        """Write `data` at `key` atomically (readers see old or new, never half); return its URI."""

    @abstractmethod
    def get(self, key: str) -> bytes:
        """Read the object at `key`; `FileNotFoundError` when there is none."""

    @abstractmethod
    def list(self, prefix: str) -> list[str]:
        """Keys under `prefix`, sorted."""

    @abstractmethod
    def delete(self, key: str) -> None:
        """Remove `key` if present."""

    @abstractmethod
    def uri(self, key: str) -> str:
        """Where a person finds `key` (a path or an s3:// URI)."""

    def exists(self, key: str) -> bool:
        try:
            self.get(key)
        except FileNotFoundError:
            return False
        return True

    @contextmanager
    def writing(self, key: str, content_type: str = "application/octet-stream") -> Iterator[Path]:
        """A local file to write `key`'s content into; when the block ends without an error it
        becomes the object at `key` atomically, otherwise nothing is written.

        Why: a report of millions of rows is written batch by batch to disk and then moved or
        uploaded (S3 multipart, streamed), never held as one `bytes` in memory."""
        fd, tmp = tempfile.mkstemp(prefix=f"{_TMP}{_HOST}-{os.getpid()}-")
        os.close(fd)
        try:
            yield Path(tmp)
            self.put(key, Path(tmp).read_bytes(), content_type)
        finally:
            Path(tmp).unlink(missing_ok=True)

    @contextmanager
    def reading(self, key: str) -> Iterator[Path]:
        """A local file holding `key`'s content for the block (a folder store's own file, an S3
        object downloaded streamed to a temp file); `FileNotFoundError` when there is none."""
        fd, tmp = tempfile.mkstemp(prefix=f"{_TMP}{_HOST}-{os.getpid()}-")
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(self.get(key))
            yield Path(tmp)
        finally:
            Path(tmp).unlink(missing_ok=True)

    def copy(self, source: str, target: str) -> str:
        """Copy the object at `source` to `target` atomically; return the target's URI."""
        return self.put(target, self.get(source))

    def sweep_temp(self, prefixes: Iterable[str]) -> _Keys:
        """Remove temp objects that a killed writer left under `prefixes`; return their keys.

        Only a local folder has any: an S3 `put_object` is atomic and leaves nothing."""
        return []


def _current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


#: Published files get the permissions any new file gets (0666 & ~umask), not mkstemp's 0600.
_FILE_MODE = 0o666 & ~_current_umask()
_HOST = socket.gethostname().replace("-", "_")
_TMP = ".tmp-"


def _tmp_owner_alive(name: str) -> bool:
    """Is the writer of temp file `name` (`.tmp-<host>-<pid>-<random>`) still running here?"""
    parts = name[len(_TMP) :].split("-")
    if len(parts) < 3 or parts[0] != _HOST or not parts[1].isdigit():
        return False  # another host's or an old-style temp file: the caller checks its age
    try:
        os.kill(int(parts[1]), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class LocalObjectStore(ObjectStore):
    """A folder on disk; writes go to a temp file then `os.replace` for atomicity."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root).resolve()

    def _path(self, key: str) -> Path:
        path = (self.root / key).resolve()
        if self.root not in path.parents:
            raise ValueError(f"object key escapes the store: {key!r}")
        return path

    def put(self, key: str, data: bytes, content_type: str = "application/octet-stream") -> str:
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f"{_TMP}{_HOST}-{os.getpid()}-")
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
            os.chmod(tmp, _FILE_MODE)
            failpoints.hit("store.put", key)  # written, not yet in place
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return str(path)

    @contextmanager
    def writing(self, key: str, content_type: str = "application/octet-stream") -> Iterator[Path]:
        """A temp file beside the target, renamed into place when the block succeeds."""
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f"{_TMP}{_HOST}-{os.getpid()}-")
        os.close(fd)
        try:
            yield Path(tmp)
            os.chmod(tmp, _FILE_MODE)
            failpoints.hit("store.put", key)  # written, not yet in place
            os.replace(tmp, path)
        finally:
            Path(tmp).unlink(missing_ok=True)

    @contextmanager
    def reading(self, key: str) -> Iterator[Path]:
        """The object's own file: nothing is copied."""
        path = self._path(key)
        if not path.is_file():
            raise FileNotFoundError(str(path))
        yield path

    def copy(self, source: str, target: str) -> str:
        """A hard link renamed into place: atomic, and no bytes are copied."""
        src, path = self._path(source), self._path(target)
        if not src.is_file():
            raise FileNotFoundError(str(src))
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.parent / f"{_TMP}{_HOST}-{os.getpid()}-{os.urandom(6).hex()}"
        try:
            os.link(src, tmp)
        except OSError:  # a file system without hard links
            return self.put(target, src.read_bytes())
        try:
            os.replace(tmp, path)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        return str(path)

    def sweep_temp(self, prefixes: Iterable[str], max_age_seconds: float = 3600.0) -> _Keys:
        """Delete `.tmp-*` files under `prefixes` whose writer on this host is gone (or, from
        another host, older than `max_age_seconds`)."""
        import time

        removed: _Keys = []
        now = time.time()
        for prefix in prefixes:
            base = self._path(prefix.rstrip("/")) if prefix.strip("/") else self.root
            if not base.is_dir():
                continue
            for path in base.rglob(f"{_TMP}*"):
                try:
                    info = path.lstat()
                except FileNotFoundError:
                    continue
                if not stat.S_ISREG(info.st_mode) or _tmp_owner_alive(path.name):
                    continue
                foreign = not path.name[len(_TMP) :].startswith(f"{_HOST}-")
                if foreign and now - info.st_mtime < max_age_seconds:
                    continue
                path.unlink(missing_ok=True)
                removed.append(path.relative_to(self.root).as_posix())
        return sorted(removed)

    def get(self, key: str) -> bytes:
        path = self._path(key)
        if not path.is_file():  # a folder is not an object, as on S3
            raise FileNotFoundError(str(path))
        return path.read_bytes()

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()

    def list(self, prefix: str) -> list[str]:
        # Same semantics as S3: a plain string prefix, so "raw" also matches "raw2/…".
        base = self.root / prefix
        start = base if prefix.endswith("/") else base.parent
        if not start.is_dir():
            return []
        keys = [
            p.relative_to(self.root).as_posix()
            for p in start.rglob("*")
            if p.is_file() and not p.name.startswith(".tmp-")
        ]
        return sorted(k for k in keys if k.startswith(prefix))

    def delete(self, key: str) -> None:
        self._path(key).unlink(missing_ok=True)

    def uri(self, key: str) -> str:
        return str(self._path(key))


class S3ObjectStore(ObjectStore):
    """An S3 bucket and prefix via boto3. `AWS_ENDPOINT_URL` (e.g. moto's server) is honoured."""

    def __init__(self, url: str, client: Any | None = None) -> None:
        parsed = urlparse(url)
        self.bucket = parsed.netloc
        self.prefix = parsed.path.strip("/")
        if client is None:
            import boto3

            client = boto3.client("s3", endpoint_url=os.environ.get("AWS_ENDPOINT_URL") or None)
        self.client = client

    def _key(self, key: str) -> str:
        return f"{self.prefix}/{key}" if self.prefix else key

    def put(self, key: str, data: bytes, content_type: str = "application/octet-stream") -> str:
        failpoints.hit("store.put", key)
        self.client.put_object(
            Bucket=self.bucket, Key=self._key(key), Body=data, ContentType=content_type
        )
        return self.uri(key)

    def get(self, key: str) -> bytes:
        try:
            obj = self.client.get_object(Bucket=self.bucket, Key=self._key(key))
        except self.client.exceptions.NoSuchKey:
            raise FileNotFoundError(self.uri(key)) from None
        body: bytes = obj["Body"].read()
        return body

    @contextmanager
    def writing(self, key: str, content_type: str = "application/octet-stream") -> Iterator[Path]:
        """A local temp file, uploaded streamed (multipart when large) when the block succeeds:
        an S3 upload is atomic, readers see the old object until it completes."""
        fd, tmp = tempfile.mkstemp(prefix=f"{_TMP}{_HOST}-{os.getpid()}-")
        os.close(fd)
        try:
            yield Path(tmp)
            failpoints.hit("store.put", key)
            self.client.upload_file(
                tmp, self.bucket, self._key(key), ExtraArgs={"ContentType": content_type}
            )
        finally:
            Path(tmp).unlink(missing_ok=True)

    @contextmanager
    def reading(self, key: str) -> Iterator[Path]:
        """The object downloaded streamed into a local temp file for the block."""
        fd, tmp = tempfile.mkstemp(prefix=f"{_TMP}{_HOST}-{os.getpid()}-")
        os.close(fd)
        try:
            try:
                self.client.download_file(self.bucket, self._key(key), tmp)
            except self.client.exceptions.ClientError as exc:
                code = exc.response.get("Error", {}).get("Code")
                if code in ("404", "NoSuchKey", "NotFound"):
                    raise FileNotFoundError(self.uri(key)) from None
                raise
            yield Path(tmp)
        finally:
            Path(tmp).unlink(missing_ok=True)

    def list(self, prefix: str) -> list[str]:
        paginator = self.client.get_paginator("list_objects_v2")
        strip = len(self.prefix) + 1 if self.prefix else 0
        keys: list[str] = []
        for page in paginator.paginate(Bucket=self.bucket, Prefix=self._key(prefix)):
            keys.extend(obj["Key"][strip:] for obj in page.get("Contents", []))
        return sorted(keys)

    def exists(self, key: str) -> bool:
        try:
            self.client.head_object(Bucket=self.bucket, Key=self._key(key))
        except self.client.exceptions.ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                return False
            raise
        return True

    def delete(self, key: str) -> None:
        self.client.delete_object(Bucket=self.bucket, Key=self._key(key))

    def copy(self, source: str, target: str) -> str:
        """Server-side copy: the bytes never pass through this process."""
        try:
            self.client.copy_object(
                Bucket=self.bucket,
                Key=self._key(target),
                CopySource={"Bucket": self.bucket, "Key": self._key(source)},
            )
        except self.client.exceptions.NoSuchKey:
            raise FileNotFoundError(self.uri(source)) from None
        return self.uri(target)

    def uri(self, key: str) -> str:
        return f"s3://{self.bucket}/{self._key(key)}"


def open_store(location: str) -> ObjectStore:
    """`s3://bucket/prefix` -> S3, anything else -> a local folder."""
    if location.startswith("s3://"):
        return S3ObjectStore(location)
    return LocalObjectStore(location)
