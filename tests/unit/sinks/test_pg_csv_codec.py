"""`read_pg_csv`, the reader of `COPY … TO STDOUT (FORMAT csv)` output behind the PostgreSQL
warehouse's reads: quoted line breaks inside text stay in the value even where pyarrow's
16 MiB read blocks end (they broke the parse of reports over ~16 MiB before)."""

from __future__ import annotations

from decimal import Decimal

import pyarrow as pa

from etl_project.report.columns import AMOUNT_TYPE
from etl_project.sinks.warehouse_tables import read_pg_csv

SCHEMA = pa.schema([("user_name", pa.string()), ("n", pa.int64()), ("total", AMOUNT_TYPE)])


def test_quoted_line_breaks_across_read_blocks() -> None:
    rows = 700_000  # ~24 MiB: more than one read block
    line = '"O\'Brien, ""Bob""\nline {i} \\. ü",{i},-0.0009056832839642471\n'
    data = "".join(line.format(i=i) for i in range(rows)).encode()
    assert len(data) > 16 << 20
    table = read_pg_csv(data, SCHEMA)
    assert table.num_rows == rows
    assert table.column("n").to_pylist() == list(range(rows))
    assert table.column("user_name")[rows - 1].as_py() == f'O\'Brien, "Bob"\nline {rows - 1} \\. ü'
    assert set(table.column("total").to_pylist()) == {Decimal("-0.0009056832839642471")}


def test_null_and_empty_text_and_no_rows() -> None:
    table = read_pg_csv(b',1,0\n"",2,5.77\n', SCHEMA)
    assert table.column("user_name").to_pylist() == [None, ""]
    assert table.column("total").to_pylist() == [Decimal(0), Decimal("5.77")]
    assert read_pg_csv(b"", SCHEMA).equals(SCHEMA.empty_table())
