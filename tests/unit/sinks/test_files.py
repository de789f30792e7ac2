"""Report files and quarantine in a LocalObjectStore: spec §1 keys, replace on re-run."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pyarrow as pa

from etl_project.report.serialise import read_csv_rows, read_parquet, to_csv, to_json, to_parquet
from etl_project.sinks.files import (
    publish_report_files,
    quarantine_key,
    report_keys,
    write_quarantine,
)
from etl_project.sinks.object_store import LocalObjectStore
from etl_project.venues.base import Rejected
from tests.report_rows import report as report_table
from tests.report_rows import row

D = date(2024, 3, 31)


def report(*totals: str) -> pa.Table:
    """A report of date D with one row per Total."""
    return report_table(
        *(
            row(
                n,
                Total=Decimal(total),
                report_date=D,
                snapshot_at=datetime(2024, 3, 31, 23, 59, tzinfo=UTC),
            )
            for n, total in enumerate(totals)
        )
    )


def test_report_keys_follow_the_spec_layout() -> None:
    assert report_keys(D) == {
        "csv": "reports/settlement_balance/date=2024-03-31/settlement_balance_2024-03-31.csv",
        "json": "reports/settlement_balance/date=2024-03-31/settlement_balance_2024-03-31.json",
        "parquet": (
            "reports/settlement_balance/date=2024-03-31/settlement_balance_2024-03-31.parquet"
        ),
    }
    assert (
        quarantine_key(D)
        == "quarantine/settlement_balance/date=2024-03-31/quarantine_2024-03-31.json"
    )


def test_publish_writes_all_three_files(tmp_path: Path) -> None:
    store = LocalObjectStore(tmp_path)
    table = report("5.77", "0.00000000346")

    uris = publish_report_files(store, table, D)

    folder = tmp_path / "reports" / "settlement_balance" / "date=2024-03-31"
    assert uris == {
        "csv": str(folder / "settlement_balance_2024-03-31.csv"),
        "json": str(folder / "settlement_balance_2024-03-31.json"),
        "parquet": str(folder / "settlement_balance_2024-03-31.parquet"),
    }
    assert Path(uris["csv"]).read_bytes() == to_csv(table)
    assert Path(uris["json"]).read_bytes() == to_json(table)
    assert Path(uris["parquet"]).read_bytes() == to_parquet(table)
    assert store.list("reports/") == sorted(report_keys(D).values())


def test_republish_replaces_the_files(tmp_path: Path) -> None:
    store = LocalObjectStore(tmp_path)
    publish_report_files(store, report("1", "2", "3"), D)

    uris = publish_report_files(store, report("16187.33210488726"), D)

    rows = read_csv_rows(Path(uris["csv"]).read_bytes())
    assert [r["Total"] for r in rows] == ["16187.33210488726"]
    assert json.loads(Path(uris["json"]).read_bytes(), parse_float=Decimal)[0]["Total"] == Decimal(
        "16187.33210488726"
    )
    assert read_parquet(Path(uris["parquet"]).read_bytes()).num_rows == 1
    assert sorted(p.name for p in Path(uris["csv"]).parent.iterdir()) == [
        "settlement_balance_2024-03-31.csv",
        "settlement_balance_2024-03-31.json",
        "settlement_balance_2024-03-31.parquet",
    ]


def test_quarantine_is_written_with_every_field(tmp_path: Path) -> None:
    store = LocalObjectStore(tmp_path)
    record: dict[str, Any] = {
        "accountUUID": "a",
        "Total": "0.00000000346",
        "Email": None,
        "raw": Decimal("-0.0009056832839642471"),
    }
    rejected = [
        Rejected("saxo_main", "ccy_normalised", 'Ccy: ccy_normalised failed for "XBT"', record)
    ]

    uri = write_quarantine(store, rejected, D, "run-7")

    assert uri == str(tmp_path / quarantine_key(D))
    assert json.loads(Path(uri).read_bytes()) == [
        {
            "report_date": "2024-03-31",
            "run_id": "run-7",
            "source": "saxo_main",
            "check": "ccy_normalised",
            "reason": 'Ccy: ccy_normalised failed for "XBT"',
            "record": {
                "accountUUID": "a",
                "Total": "0.00000000346",
                "Email": None,
                "raw": "-0.0009056832839642471",
            },
        }
    ]


def test_empty_quarantine_is_written_and_clears_the_previous_run(tmp_path: Path) -> None:
    store = LocalObjectStore(tmp_path)
    write_quarantine(store, [Rejected("s", "c", "r", {})], D, "run-1")

    uri = write_quarantine(store, [], D, "run-2")

    assert json.loads(Path(uri).read_bytes()) == []
    assert store.list("quarantine/") == [quarantine_key(D)]
