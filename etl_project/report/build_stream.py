"""The report of a date built in bounded memory: DuckDB drops all-zero rows, sorts and counts
keys (spilling to disk past its memory limit), then the sorted rows are validated and written
batch by batch. Same rows, order and rejects as validating the whole report at once.

Why it is split this way: the sort and the duplicate count are the only steps that need every
row at once; DuckDB does them out of core. Everything per row (lineage, the pandera model) runs
on one batch at a time. Rows whose (accountUUID, Ccy) is repeated are validated together as one
frame at the end (they are all quarantined, with the same reason as in a whole-frame check), so
no check is lost by batching. Rejects come back in the order of the sorted report.
"""

from __future__ import annotations

import tempfile
from collections import Counter
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from etl_project.model import Rejected
from etl_project.report.columns import AMOUNT_COLUMNS, BALANCES_SCHEMA, REPORT_SCHEMA, SORT_KEY
from etl_project.report.lineage import with_lineage
from etl_project.report.schema import KEY_COLUMNS, ReportModel
from etl_project.report.validate import split_valid_at

#: Rows validated and written at once.
BATCH_ROWS = 128 * 1024
#: DuckDB's memory for the sort; beyond it DuckDB spills to its temp directory (sorting 1M
#: report rows took 4.1 s with 1 GB, 4.5 s with 512 MB, 9.6 s with 256 MB).
MEMORY_LIMIT = "512MB"

_COUNT = "_key_rows"


@dataclass
class BuiltReport:
    """What building wrote: row counts per source and the rejects, in report order."""

    rows: int = 0
    rows_by_source: Counter[str] = field(default_factory=Counter)
    rejected: list[Rejected] = field(default_factory=list)


def build_report_stream(
    inputs: Sequence[Path],
    write: Callable[[pa.Table], None],
    *,
    report_date: date,
    run_id: str,
    snapshot_at: Mapping[str, datetime],
    keep_zero_sources: Collection[str] = (),
    batch_rows: int = BATCH_ROWS,
) -> BuiltReport:
    """Build the report from staged balances files (`BALANCES_SCHEMA` Parquet, in source
    order), handing each validated batch (`REPORT_SCHEMA`, report order) to `write`."""
    built = BuiltReport()
    if not inputs:
        return built
    with tempfile.TemporaryDirectory(prefix="etl-report-") as work:
        sorted_path = Path(work) / "sorted.parquet"
        _sort(inputs, sorted_path, Path(work), keep_zero_sources)
        repeated: list[pa.Table] = []
        repeated_at: list[np.ndarray] = []
        found: list[tuple[int, Rejected]] = []
        offset = 0
        for batch in pq.ParquetFile(sorted_path).iter_batches(batch_size=batch_rows):
            table = pa.Table.from_batches([batch])
            once = pc.equal(table.column(_COUNT), 1)
            positions = np.arange(offset, offset + table.num_rows)
            offset += table.num_rows
            again = pc.invert(once)
            if pc.any(again).as_py():
                repeated.append(table.filter(again))
                repeated_at.append(positions[again.to_numpy(zero_copy_only=False)])
                table = table.filter(once)
                positions = positions[once.to_numpy(zero_copy_only=False)]
            _validate(table, positions, write, built, found, report_date, run_id, snapshot_at)
        if repeated:
            _validate(
                pa.concat_tables(repeated),
                np.concatenate(repeated_at),
                write,
                built,
                found,
                report_date,
                run_id,
                snapshot_at,
            )
    found.sort(key=lambda item: item[0])
    built.rejected = [r for _, r in found]
    return built


def _validate(
    table: pa.Table,
    positions: np.ndarray,
    write: Callable[[pa.Table], None],
    built: BuiltReport,
    found: list[tuple[int, Rejected]],
    report_date: date,
    run_id: str,
    snapshot_at: Mapping[str, datetime],
) -> None:
    if not table.num_rows:
        return
    staged = with_lineage(table.drop_columns([_COUNT]), report_date, run_id, snapshot_at)
    valid, rejected, bad = split_valid_at(staged, ReportModel)
    found.extend(zip(positions[bad].tolist(), rejected, strict=True))
    if valid.num_rows:
        valid = valid if valid.schema.equals(REPORT_SCHEMA) else valid.cast(REPORT_SCHEMA)
        write(valid)
        built.rows += valid.num_rows
        for row in pc.value_counts(valid.column("source")).to_pylist():
            built.rows_by_source[row["values"]] += row["counts"]


def _quoted(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _sort(
    inputs: Sequence[Path], target: Path, work: Path, keep_zero_sources: Collection[str]
) -> None:
    """Non-zero (or kept) rows of every input, sorted by SORT_KEY (text byte order, nulls
    first, ties in input order) with the count of their key, written to `target`."""
    columns = ", ".join(_quoted(n) for n in BALANCES_SCHEMA.names)
    parts = " UNION ALL ".join(
        f"SELECT {columns}, {i} AS _file, file_row_number AS _row "
        f"FROM read_parquet({_literal(str(path))}, file_row_number = true)"
        for i, path in enumerate(inputs)
    )
    non_zero = " OR ".join(f"{_quoted(n)} <> 0" for n in AMOUNT_COLUMNS)
    keep = f"coalesce({non_zero}, true)"  # a null amount is not "all zero": validation sees it
    if keep_zero_sources:
        names = ", ".join(_literal(s) for s in sorted(keep_zero_sources))
        keep += f" OR source IN ({names})"
    key = ", ".join(_quoted(n) for n in KEY_COLUMNS)
    same_key = " AND ".join(
        f"r.{_quoted(n)} IS NOT DISTINCT FROM d.{_quoted(n)}" for n in KEY_COLUMNS
    )
    order = ", ".join(f"r.{_quoted(n)} ASC NULLS FIRST" for n in SORT_KEY)
    selected = ", ".join(f"r.{_quoted(n)}" for n in BALANCES_SCHEMA.names)
    # The repeated keys by an aggregate (it spills; a window over every row would not), joined
    # back to the rows: most keys occur once and are not in `d` at all.
    query = (
        f"WITH rows AS (SELECT * FROM ({parts}) WHERE {keep}), "
        f"d AS (SELECT {key}, count(*) AS n FROM rows GROUP BY ALL HAVING count(*) > 1) "
        f"SELECT {selected}, coalesce(d.n, 1) AS {_COUNT} FROM rows r LEFT JOIN d ON {same_key} "
        f"ORDER BY {order}, r._file, r._row"
    )
    con = duckdb.connect()
    try:
        con.execute(f"SET memory_limit = {_literal(MEMORY_LIMIT)}")
        con.execute(f"SET temp_directory = {_literal(str(work / 'spill'))}")
        con.execute("SET preserve_insertion_order = true")
        con.execute(
            f"COPY ({query}) TO {_literal(str(target))} "
            "(FORMAT parquet, ROW_GROUP_SIZE 131072, COMPRESSION lz4_raw)"
        )
    finally:
        con.close()


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"
