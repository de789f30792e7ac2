"""Report reads from a local path or S3, recorded as `READ` responses (HTTP uses `HttpClient`)."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from etl_project.errors import VenueAuthError, VenueRateLimited, VenueUnavailable
from etl_project.http import RawResponse
from etl_project.venues.settlement_report.settings import SettlementReportSettings

__all__ = ["READ_METHOD", "ReportNotFound", "read_path", "read_s3", "s3_client"]

#: `RawResponse.method` of a file read from a local path or S3 (not an HTTP call).
READ_METHOD = "READ"

#: S3 error codes by meaning.
_S3_NOT_FOUND = frozenset({"NoSuchKey", "NoSuchBucket", "NotFound", "404"})
_S3_DENIED = frozenset(
    {"AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch", "ExpiredToken", "403"}
)
_S3_THROTTLED = frozenset({"SlowDown", "Throttling", "ThrottlingException", "503"})


class ReportNotFound(VenueUnavailable):
    """The report file for the date does not exist (yet): HTTP 404/410, no S3 key, no file."""


#: A local CSV report bigger than this is landed from its file, never read into memory.
ON_DISK_BYTES = 8 << 20


def read_path(
    location: str, name: str, content_type: Callable[[str], str], *, on_disk: bool = False
) -> RawResponse:
    """The file at a local path (or `file://` URL); `name` is the source, for errors.

    `on_disk`: a file over `ON_DISK_BYTES` is referenced (`RawResponse.body_path`), not read:
    the snapshot is streamed from it and the parser streams from the snapshot."""
    path = _local_path(location).resolve()
    try:
        info = path.stat()
        modified = datetime.fromtimestamp(info.st_mtime, UTC)
        if on_disk and info.st_size > ON_DISK_BYTES and path.is_file():
            shown = {"Content-Type": content_type(location), "Last-Modified": modified.isoformat()}
            return _read_response(str(path), shown, b"", body_path=str(path))
        body = path.read_bytes()
    except FileNotFoundError:
        raise ReportNotFound(name, f"report not found: {path}") from None
    except IsADirectoryError:
        raise VenueUnavailable(name, f"report location is a directory: {path}") from None
    except PermissionError:
        raise VenueAuthError(name, f"no permission to read report {path}") from None
    except OSError as exc:
        raise VenueUnavailable(
            name, f"cannot read report {path}: {exc.strerror or type(exc).__name__}"
        ) from None
    headers = {
        "Content-Type": content_type(location),
        "Last-Modified": modified.isoformat(),
    }
    return _read_response(str(path), headers, body)


def read_s3(
    location: str,
    name: str,
    client: Callable[[], Any],
    content_type: Callable[[str], str],
) -> RawResponse:
    """The object at `s3://bucket/key`, read with the S3 client `client()` returns."""
    from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError

    parsed = urlparse(location)
    bucket, key = parsed.netloc, parsed.path.lstrip("/")
    shown = f"s3://{bucket}/{key}"
    try:
        obj = client().get_object(Bucket=bucket, Key=key)
        body: bytes = obj["Body"].read()
    except ClientError as exc:
        error = exc.response.get("Error", {})
        code = str(error.get("Code") or "")
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        if code in _S3_NOT_FOUND:
            raise ReportNotFound(
                name, f"report not found: {shown} ({code})", code=code, status=status
            ) from None
        if code in _S3_DENIED:
            raise VenueAuthError(
                name, f"S3 refused reading {shown} ({code})", code=code, status=status
            ) from None
        if code in _S3_THROTTLED:
            raise VenueRateLimited(
                name, f"S3 throttled reading {shown} ({code})", code=code, status=status
            ) from None
        raise VenueUnavailable(
            name,
            f"S3 error reading {shown} ({code or 'no code'})",
            code=code or None,
            status=status,
        ) from None
    except NoCredentialsError:
        raise VenueAuthError(name, f"no AWS credentials to read {shown}") from None
    except BotoCoreError as exc:
        raise VenueUnavailable(name, f"cannot read {shown} ({type(exc).__name__})") from None
    headers = {"Content-Type": content_type(location)}
    if obj.get("ETag"):
        headers["ETag"] = str(obj["ETag"])
    if isinstance(obj.get("LastModified"), datetime):
        headers["Last-Modified"] = obj["LastModified"].astimezone(UTC).isoformat()
    return _read_response(shown, headers, body)


def s3_client(settings: SettlementReportSettings) -> Any:
    """A boto3 S3 client for a source (`AWS_ENDPOINT_URL` honoured, the source's timeouts)."""
    import boto3
    from botocore.config import Config

    return boto3.client(
        "s3",
        endpoint_url=os.environ.get("AWS_ENDPOINT_URL") or None,
        config=Config(
            connect_timeout=settings.connect_timeout,
            read_timeout=settings.read_timeout,
            retries={"mode": "standard", "max_attempts": 4},
        ),
    )


def _local_path(location: str) -> Path:
    parsed = urlparse(location)
    return Path(parsed.path) if parsed.scheme.lower() == "file" else Path(location)


def _read_response(
    url: str, headers: Mapping[str, str], body: bytes, body_path: str | None = None
) -> RawResponse:
    return RawResponse(
        method=READ_METHOD,
        url=url,
        status=200,
        headers=dict(headers),
        body=body,
        received_at=datetime.now(UTC).isoformat(timespec="microseconds"),
        body_path=body_path,
    )
