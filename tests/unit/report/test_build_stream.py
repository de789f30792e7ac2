"""The report built batch by batch: for any batch size, the same rows in the same order and the
same rejects (reasons, order) as one batch — duplicates whose rows land in different batches
included."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from etl_project.report.build_stream import build_report_stream
from tests.unit.report.test_build import SNAPSHOTS, D, row, table, u


def _build(tmp_path: Path, tables: list[pa.Table], batch_rows: int) -> tuple[pa.Table, Any]:
    inputs = []
    for n, t in enumerate(tables):
        inputs.append(tmp_path / f"{batch_rows}-{n}.parquet")
        pq.write_table(t, inputs[-1])
    written: list[pa.Table] = []
    built = build_report_stream(
        inputs, written.append, report_date=D, run_id="r", snapshot_at=SNAPSHOTS,
        batch_rows=batch_rows,
    )  # fmt: skip
    assert all(t.num_rows <= batch_rows for t in written)
    return pa.concat_tables(written), built


def _inputs() -> list[pa.Table]:
    kraken = [row("kraken", u_, a, "BTC", Total=str(a)) for u_, a in [(5, 1), (1, 2), (3, 3)]]
    kraken += [row("kraken", 9, 7, "ETH", Total="1"), row("kraken", 2, 8, "USD")]  # 8: zero
    kraken.append(row("kraken", 4, 40, "XBT", Total="1"))  # not normalised: rejected
    saxo = [row("saxo", 0, 7, "ETH", Total="2"), row("saxo", 6, 60, "EUR", Total="6")]
    saxo += [row("saxo", 8, 7, "ETH", Total="3")]  # key (7, ETH) three times, far apart
    return [table(*kraken), table(*saxo)]


@pytest.mark.parametrize("batch_rows", [1, 2, 3, 1000])
def test_any_batch_size_gives_the_same_report_and_rejects(
    tmp_path: Path, batch_rows: int
) -> None:
    report, built = _build(tmp_path, _inputs(), batch_rows)
    whole, whole_built = _build(tmp_path, _inputs(), 10_000)

    assert report.equals(whole)
    assert [(r.source, r.check, r.reason) for r in built.rejected] == [
        (r.source, r.check, r.reason) for r in whole_built.rejected
    ]
    assert [r.record["userUUID"] for r in built.rejected] == [u(0), u(4), u(8), u(9)]
    assert [r.reason for r in built.rejected if r.record["Ccy"] == "ETH"] == [
        "duplicate (accountUUID, Ccy): listed 3 times, by sources kraken, saxo"
    ] * 3
    assert report.column("userUUID").to_pylist() == [u(1), u(3), u(5), u(6)]
    assert built.rows == 4 and dict(built.rows_by_source) == {"kraken": 3, "saxo": 1}
