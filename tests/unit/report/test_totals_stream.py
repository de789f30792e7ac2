"""`totals_by` over a stream of record batches (the staged report read batch by batch) gives
exactly what it gives over the whole table: per-batch sums added up, carries included."""

from __future__ import annotations

from decimal import Decimal, localcontext

import pyarrow as pa
import pytest

from etl_project.report.columns import REPORT_SCHEMA
from etl_project.report.summary import totals_by
from tests.report_rows import report, row

TOTALS = [
    "900000000000000000.5",
    "900000000000000000.5",
    "-0.0009056832839642471",
    "0.99999999999999999999",
    "0.00000000000000000001",
    "-999999999999999999.99999999999999999999",
    "5.77",
    "0",
]


def sample() -> pa.Table:
    return report(
        *(
            row(n, Total=Decimal(t), Ccy=("BTC", "ETH", "USDT")[n % 3], source=f"s{n % 2}")
            for n, t in enumerate(TOTALS)
        )
    )


@pytest.mark.parametrize("keys", [["Ccy"], ["source", "Ccy"], []])
@pytest.mark.parametrize("batch_rows", [1, 3, 100])
def test_stream_totals_equal_table_totals(keys: list[str], batch_rows: int) -> None:
    table = sample()
    stream = pa.RecordBatchReader.from_batches(
        table.schema, table.to_batches(max_chunksize=batch_rows)
    )
    assert totals_by(stream, keys) == totals_by(table, keys)


def test_stream_totals_of_the_whole_report_are_exact() -> None:
    table = sample()
    stream = pa.RecordBatchReader.from_batches(table.schema, table.to_batches(max_chunksize=2))
    with localcontext(prec=80):
        total = sum((Decimal(t) for t in TOTALS), Decimal(0)).normalize()
    assert total == Decimal("800000000000000007.76909431671603575291")
    assert totals_by(stream, []) == [{"rows": len(TOTALS), "Total": total}]


def test_an_empty_stream() -> None:
    empty = pa.RecordBatchReader.from_batches(REPORT_SCHEMA, [])
    assert totals_by(empty, ["Ccy"]) == []
    empty = pa.RecordBatchReader.from_batches(REPORT_SCHEMA, [])
    assert totals_by(empty, []) == [{"rows": 0, "Total": Decimal(0)}]
