"""Settlement platform report read from S3 (moto's standalone server over real HTTP)."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path
from urllib.parse import urlparse

import boto3
import pytest

from etl_project.config import SourceConfig
from etl_project.http import HttpClient
from etl_project.raw import RawSnapshot, SnapshotRecorder
from etl_project.venues.settlement_report.connector import (
    ReportNotFound,
    SettlementReportConnector,
    SettlementReportSettings,
)

pytestmark = pytest.mark.s3

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
DAY = date(2026, 1, 2)


def source(location: str) -> SourceConfig:
    return SourceConfig("settlement_s3", "settlement_report", SettlementReportSettings(location))


def fetch(location: str) -> tuple[RawSnapshot, SourceConfig]:
    snapshot = RawSnapshot("settlement_s3", "settlement_report", DAY, datetime.now(UTC))
    src = source(location)
    http = HttpClient("settlement_s3", recorder=SnapshotRecorder(snapshot))
    SettlementReportConnector(src, http, report_date=DAY).fetch()
    return snapshot, src


@pytest.mark.parametrize("fmt", ["csv", "json"])
def test_report_from_s3_is_landed_verbatim_and_parsed(s3_location: str, fmt: str) -> None:
    bucket = urlparse(s3_location).netloc
    body = (FIXTURES / f"settlement_report_seed000.{fmt}").read_bytes()
    boto3.client("s3").put_object(Bucket=bucket, Key=f"client-balance/2026-01-02.{fmt}", Body=body)
    boto3.client("s3").put_object(
        Bucket=bucket, Key=f"client-balance/2026-01-03.{fmt}", Body=b"other day"
    )
    snapshot, src = fetch(f"s3://{bucket}/client-balance/{{date}}.{fmt}")
    (raw,) = snapshot.responses
    assert (raw.method, raw.url, raw.status) == (
        "READ", f"s3://{bucket}/client-balance/2026-01-02.{fmt}", 200)  # fmt: skip
    assert raw.body == body
    assert raw.headers["ETag"]
    landed = RawSnapshot.from_bytes(snapshot.to_bytes())
    assert landed.responses[0].body == body
    parsed = SettlementReportConnector.parse(landed, src)
    assert parsed.rejected == []
    assert parsed.balances.num_rows == 4
    # spec §3: the report's Ccy is normalised like every source's (XBT -> BTC)
    assert parsed.balances.column("Ccy").to_pylist() == ["BTC", "ETH", "USDT", "BTC"]
    assert str(parsed.balances.column("Total")[1].as_py()) == "-0.00090568328396424710"


def test_missing_s3_report_is_not_found(s3_location: str) -> None:
    bucket = urlparse(s3_location).netloc
    with pytest.raises(ReportNotFound) as exc:
        fetch(f"s3://{bucket}/client-balance/{{date}}.csv")
    assert str(exc.value) == (
        f"settlement_s3: report not found: s3://{bucket}/client-balance/2026-01-02.csv (NoSuchKey)"
    )
    with pytest.raises(ReportNotFound, match="NoSuchBucket"):
        fetch("s3://no-such-bucket-for-reports/{date}.csv")
