"""Simulator over HTTP -> Dagster materialisation -> CSV, JSON, Parquet and warehouse rows.

Seed 003's example payload is served verbatim by the simulator, and every output is compared,
column by column, with the rows spec §3 prescribes (a hand-written fixture).
"""

from __future__ import annotations

import gzip
import json
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path

import pytest
import sqlalchemy as sa

from etl_project.report.columns import AMOUNT_COLUMNS, COLUMNS, REPORT_COLUMNS
from etl_project.report.serialise import read_csv_rows, read_json_rows, read_parquet
from etl_project.simulator import DEFAULT_KRAKEN_API_KEY, DEFAULT_KRAKEN_API_SECRET
from etl_project.sinks.files import report_keys
from etl_project.sinks.object_store import open_store
from tests.integration.helpers import FIXTURES, expected_seed003_rows, materialise, write_config

TODAY = datetime.now(UTC).date()


@pytest.fixture()
def kraken_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TEST_KRAKEN_KEY", DEFAULT_KRAKEN_API_KEY)
    monkeypatch.setenv("TEST_KRAKEN_SECRET", DEFAULT_KRAKEN_API_SECRET)


def _text(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, Decimal):
        text = format(value, "f")
        if "." in text:
            text = text.rstrip("0").rstrip(".")
        return "0" if text in ("-0", "") else text
    return str(value)


def assert_outputs_match(
    store_location: str, warehouse_url: str, day: date, expected: list[dict[str, str]]
) -> None:
    store = open_store(store_location)
    keys = report_keys(day)
    assert read_csv_rows(store.get(keys["csv"])) == expected
    json_rows = [
        {k: _text(v) for k, v in row.items()} for row in read_json_rows(store.get(keys["json"]))
    ]
    assert json_rows == expected
    parquet = read_parquet(store.get(keys["parquet"]))
    assert parquet.column_names[:33] == list(REPORT_COLUMNS)
    assert [
        {k: _text(v) for k, v in row.items() if k in REPORT_COLUMNS} for row in parquet.to_pylist()
    ] == expected
    assert set(parquet.column("report_date").to_pylist()) == {day}
    engine = sa.create_engine(warehouse_url)
    with engine.connect() as conn:
        rows = (
            conn.execute(
                sa.text(
                    "select * from settlement_balance_report where report_date = :d "
                    "order by user_uuid, account_uuid, ccy"
                ),
                {"d": day},
            )
            .mappings()
            .all()
        )
    engine.dispose()
    sql = {c.name: c.sql for c in COLUMNS}
    assert [{name: _text(row[sql[name]]) for name in REPORT_COLUMNS} for row in rows] == expected
    assert {row["source"] for row in rows} == {"kraken_main"}
    assert {row["venue"] for row in rows} == {"kraken_futures"}


def test_seed003_end_to_end_duckdb_local(simulator, tmp_path: Path, kraken_env: None) -> None:
    simulator.serve_payload(
        "kraken_futures", (FIXTURES / "kraken_futures_seed003.json").read_bytes()
    )
    storage = str(tmp_path / "lake")
    warehouse = f"duckdb:///{tmp_path / 'wh.duckdb'}"
    config = write_config(
        tmp_path, storage=storage, warehouse=warehouse, kraken_url=simulator.kraken_base_url
    )
    result = materialise(config, TODAY)
    assert result.success
    expected = expected_seed003_rows()
    assert len(expected) > 0
    assert_outputs_match(storage, warehouse, TODAY, expected)

    # The verbatim response was landed, gzip-compressed, under the spec's raw layout.
    store = open_store(storage)
    raw = store.list(f"raw/venue=kraken_futures/source=kraken_main/date={TODAY}/")
    assert len(raw) == 1 and raw[0].endswith(".json.gz")
    envelope = json.loads(gzip.decompress(store.get(raw[0])))
    body = envelope["responses"][0]["body"]
    assert body.encode() == (FIXTURES / "kraken_futures_seed003.json").read_bytes()
    assert DEFAULT_KRAKEN_API_SECRET not in gzip.decompress(store.get(raw[0])).decode()

    # Re-running the same date leaves exactly the same rows (no duplicates), files replaced.
    again = materialise(config, TODAY)
    assert again.success
    assert_outputs_match(storage, warehouse, TODAY, expected)
    engine = sa.create_engine(warehouse)
    with engine.connect() as conn:
        count = conn.execute(sa.text("select count(*) from settlement_balance_report")).scalar()
    engine.dispose()
    assert count == len(expected)


@pytest.mark.s3
@pytest.mark.postgres
def test_seed003_end_to_end_s3_postgres(
    simulator, tmp_path: Path, kraken_env: None, s3_location: str, pg_schema: str
) -> None:
    simulator.serve_payload(
        "kraken_futures", (FIXTURES / "kraken_futures_seed003.json").read_bytes()
    )
    config = write_config(
        tmp_path, storage=s3_location, warehouse=pg_schema, kraken_url=simulator.kraken_base_url
    )
    assert materialise(config, TODAY).success
    assert_outputs_match(s3_location, pg_schema, TODAY, expected_seed003_rows())
    assert materialise(config, TODAY).success
    assert_outputs_match(s3_location, pg_schema, TODAY, expected_seed003_rows())


def test_generated_data_amounts_are_exact_everywhere(
    simulator, tmp_path: Path, kraken_env: None
) -> None:
    """Simulator-generated values (tiny, negative, 19 decimals) survive to every output."""
    storage = str(tmp_path / "lake")
    warehouse = f"duckdb:///{tmp_path / 'wh.duckdb'}"
    config = write_config(
        tmp_path, storage=storage, warehouse=warehouse, kraken_url=simulator.kraken_base_url
    )
    assert materialise(config, TODAY).success
    store = open_store(storage)
    csv_rows = read_csv_rows(store.get(report_keys(TODAY)["csv"]))
    assert csv_rows, "the simulator's data produced no rows"
    json_rows = read_json_rows(store.get(report_keys(TODAY)["json"]))
    for csv_row, json_row in zip(csv_rows, json_rows, strict=True):
        for name in AMOUNT_COLUMNS:
            assert Decimal(csv_row[name]) == json_row[name]
            assert "e" not in csv_row[name].lower()
