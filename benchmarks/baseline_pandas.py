"""Baseline 1, the naive one: the report job as most people would first write it in pandas.

Why it exists: it is the "what would a straightforward script cost" reference for the product.
It does the report's steps with the obvious pandas calls, so the product should be faster and
leaner than this, and is expected to be slower than the hand-tuned DuckDB script:

1. `pd.read_csv` with default type inference: the 22 amounts become float64 and the flags bool.
   NOT EXACT: `-0.0009056832839642471` and `82.36006931913189` go through a binary double, so
   digits beyond ~15-17 significant ones are lost or changed in every output below. That is
   the point of the comparison, not a bug to fix here.
2. A pandera (pandas) validation of the main fields: canonical UUIDs, non-null flags, Ccy
   pattern, numeric amounts, unique (accountUUID, Ccy).
3. Drop rows whose 22 amounts are all 0 and sort by (userUUID, accountUUID, Ccy), as the report
   does (so the row count and order match the other contestants).
4. `to_csv`, `to_json(orient="records")`, `to_parquet` (pyarrow), and DuckDB loading the frame
   into a table of `OUTDIR/report.duckdb` (`CREATE TABLE … AS SELECT * FROM df`, doubles).

Usage: `python benchmarks/baseline_pandas.py REPORT.csv OUTDIR`.
"""

from __future__ import annotations

import time
from pathlib import Path

import duckdb
import pandas as pd
import pandera.pandas as pa
from report_format import AMOUNT_COLUMNS, FLAG_COLUMNS, UUID_COLUMNS, run_cli

UUID_RE = r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$"
CCY_RE = r"^[A-Z0-9]{2,15}$"
SORT_KEY = ["userUUID", "accountUUID", "Ccy"]

SCHEMA = pa.DataFrameSchema(
    {
        **{c: pa.Column(str, pa.Check.str_matches(UUID_RE)) for c in UUID_COLUMNS},
        "Ccy": pa.Column(str, pa.Check.str_matches(CCY_RE)),
        **{c: pa.Column(bool) for c in FLAG_COLUMNS},
        **{c: pa.Column(float, coerce=True) for c in AMOUNT_COLUMNS},
    },
    unique=["accountUUID", "Ccy"],
)


def run(source: Path, outdir: Path) -> dict[str, float]:
    """The whole job; seconds per step. pandera raises (exit 1) when the file is invalid."""
    outdir.mkdir(parents=True, exist_ok=True)
    database = outdir / "report.duckdb"
    database.unlink(missing_ok=True)
    steps: dict[str, float] = {}
    started = time.perf_counter()

    def lap(name: str) -> None:
        nonlocal started
        now = time.perf_counter()
        steps[name] = now - started
        started = now

    df = pd.read_csv(source)
    lap("read_csv")
    df = SCHEMA.validate(df)
    lap("pandera")
    df = df[df[list(AMOUNT_COLUMNS)].ne(0).any(axis=1)].sort_values(SORT_KEY, ignore_index=True)
    lap("drop zero+sort")
    df.to_csv(outdir / "report.csv", index=False)
    lap("to_csv")
    df.to_json(outdir / "report.json", orient="records")
    lap("to_json")
    df.to_parquet(outdir / "report.parquet", index=False)
    lap("to_parquet")
    con = duckdb.connect(str(database))
    con.register("df", df)
    con.execute("CREATE TABLE settlement_balance_report AS SELECT * FROM df")
    con.close()
    lap("duckdb load")
    return steps


if __name__ == "__main__":
    run_cli(__doc__, run)
