"""Baseline 2, the hand-tuned one: the same report job as one DuckDB script.

Why it exists: it is the yardstick for "how fast could this be" on this machine. It does the
report's essential work exactly (amounts typed DECIMAL(38,20) from the text, never a float)
and produces the same CSV bytes as the product for a valid file, so `bench_e2e.py` can compare
both the time and the output:

1. `read_csv` with every column typed explicitly (no sniffing): text, BOOLEAN for the two
   flags (accepts TRUE/FALSE in any case), DECIMAL(38,20) for the 22 amounts; a value that is
   not an exact decimal with <= 20 fractional digits fails the script.
2. Canonicalise as the product does: lower-case UUIDs, `Ccy` upper-cased with XBT->BTC and
   XDG->DOGE, an empty `Email` is null; drop rows whose 22 amounts are all 0; sort by
   (userUUID, accountUUID, Ccy). The result is the table `settlement_balance_report` in the
   DuckDB file `OUTDIR/report.duckdb`.
3. Checks in SQL on that table, failing the script with a one-line reason: non-null and
   canonical UUIDs, non-null flags, unique (accountUUID, Ccy), Ccy matches ^[A-Z0-9]{2,15}$.
   (The product also quarantines single bad rows instead of failing; a valid file has none.)
4. COPY to `report.csv` (amounts in plain notation: `5.77`, `0`, `0.00000000346`; TRUE/FALSE;
   text that starts like a spreadsheet formula gets a leading `'`, as the product does),
   `report.json` (one JSON array; amounts are exact JSON numbers but keep DuckDB's 20-digit
   scale, `5.77000000000000000000`, so the file is larger than the product's) and
   `report.parquet` (zstd, decimal(38,20)).

Not done here (the product does it): landing the raw file, lineage columns, quarantine,
versions and status files, the warehouse's other tables, Dagster bookkeeping.

Usage: `python benchmarks/baseline_duckdb.py REPORT.csv OUTDIR`.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import duckdb
from report_format import (
    AMOUNT_COLUMNS,
    COLUMNS,
    FLAG_COLUMNS,
    HEAD_COLUMNS,
    UUID_COLUMNS,
    run_cli,
)

TABLE = "settlement_balance_report"
UUIDS = UUID_COLUMNS
FLAGS = FLAG_COLUMNS
TEXTS = tuple(c for c in HEAD_COLUMNS if c not in FLAGS)
UUID_RE = "^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$"
CCY_RE = "^[A-Z0-9]{2,15}$"
#: Leading characters the product's CSV writer guards with `'` (etl_project.report.serialise).
FORMULA_LEADS = "=+-@\t\r\n\uff1d\uff0b\uff0d\uff20"


def q(name: str) -> str:
    """A quoted SQL identifier (the report's names have spaces and mixed case)."""
    return '"' + name.replace('"', '""') + '"'


def lit(text: str) -> str:
    """A SQL string literal."""
    return "'" + text.replace("'", "''") + "'"


def column_types() -> str:
    """The `columns=` struct of read_csv: every column typed, none sniffed."""
    types = {c: "VARCHAR" for c in HEAD_COLUMNS} | {c: "BOOLEAN" for c in FLAGS}
    types |= {c: "DECIMAL(38,20)" for c in AMOUNT_COLUMNS}
    return "{" + ", ".join(f"{lit(c)}: {lit(types[c])}" for c in COLUMNS) + "}"


def build_sql(source: Path) -> str:
    """CREATE TABLE … AS the canonical, filtered, sorted report."""
    select: list[str] = []
    for c in COLUMNS:
        if c in UUIDS:
            select.append(f"lower({q(c)}) AS {q(c)}")
        elif c == "Ccy":
            upper = f"upper(trim({q(c)}))"
            select.append(
                f"CASE {upper} WHEN 'XBT' THEN 'BTC' WHEN 'XDG' THEN 'DOGE' ELSE {upper} END"
                f" AS {q(c)}"
            )
        elif c == "Email":
            select.append(f"nullif({q(c)}, '') AS {q(c)}")
        else:
            select.append(q(c))
    non_zero = " OR ".join(f"{q(c)} <> 0" for c in AMOUNT_COLUMNS)
    return (
        f"CREATE OR REPLACE TABLE {TABLE} AS SELECT {', '.join(select)}"
        f" FROM read_csv({lit(str(source))}, header = true, auto_detect = false,"
        f" delim = ',', quote = '\"', escape = '\"', columns = {column_types()})"
        f" WHERE ({non_zero}) IS NOT FALSE"  # a null amount is not "all zero"
        " ORDER BY userUUID, accountUUID, Ccy"
    )


CHECKS: tuple[tuple[str, str], ...] = (
    (
        "null or non-canonical UUID",
        " OR ".join(
            f"NOT coalesce(regexp_full_match({q(c)}, {lit(UUID_RE)}), false)" for c in UUIDS
        ),
    ),
    ("null flag", " OR ".join(f"{q(c)} IS NULL" for c in FLAGS)),
    ("Ccy is not ^[A-Z0-9]{2,15}$", f"NOT coalesce(regexp_full_match(Ccy, {lit(CCY_RE)}), false)"),
)


def check(con: duckdb.DuckDBPyConnection) -> list[str]:
    """One line per failed check (empty when the table is a valid report)."""
    failures = []
    counts = ", ".join(f"count(*) FILTER (WHERE {cond})" for _, cond in CHECKS)
    found = con.execute(f"SELECT {counts} FROM {TABLE}").fetchone()
    assert found is not None
    for (name, _), bad in zip(CHECKS, found, strict=True):
        if bad:
            failures.append(f"{bad} row(s): {name}")
    dupes = con.execute(
        f"SELECT count(*) FROM (SELECT 1 FROM {TABLE}"
        " GROUP BY accountUUID, Ccy HAVING count(*) > 1)"
    ).fetchone()
    if dupes and dupes[0]:
        failures.append(f"{dupes[0]} (accountUUID, Ccy) key(s) repeated")
    return failures


def plain(column: str) -> str:
    """SQL text of an amount in plain notation: DECIMAL(38,20) prints 20 fractional digits,
    so strip the padding zeros, then a bare dot (`5.77`, `0`, `100`, `0.00000000346`)."""
    return f"rtrim(rtrim(CAST({q(column)} AS VARCHAR), '0'), '.')"


def csv_select() -> str:
    """The report as CSV text columns: plain-notation amounts, TRUE/FALSE, guarded formulas."""
    # contains(), not `IN (…)` nor list_contains: DuckDB plans a constant list of this length
    # as a MARK hash join, which does not keep the table's row order (seen at 1M rows: the CSV
    # came out unsorted). A scalar string function keeps the plan a plain projection.
    leads = lit(FORMULA_LEADS)
    out: list[str] = []
    for c in COLUMNS:
        if c in FLAGS:
            out.append(f"CASE WHEN {q(c)} THEN 'TRUE' ELSE 'FALSE' END AS {q(c)}")
        elif c in AMOUNT_COLUMNS:
            out.append(f"{plain(c)} AS {q(c)}")
        elif c in TEXTS:
            out.append(
                f"CASE WHEN {q(c)} <> '' AND contains({leads}, left({q(c)}, 1))"
                f" THEN '''' || {q(c)} ELSE {q(c)} END"
                f" AS {q(c)}"
            )
    return f"SELECT {', '.join(out)} FROM {TABLE}"


def run(source: Path, outdir: Path) -> dict[str, float]:
    """The whole job; seconds per step. Raises SystemExit(1) when a check fails."""
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

    con = duckdb.connect(str(database))
    # Keep the file's order guarantee explicit: COPY of a table scan keeps insertion order.
    con.execute("SET preserve_insertion_order = true")
    con.execute(build_sql(source))
    lap("read+type+sort")
    failures = check(con)
    lap("checks")
    if failures:
        print(f"{source}: report invalid: " + "; ".join(failures), file=sys.stderr)
        raise SystemExit(1)
    csv_path, json_path, parquet_path = (outdir / f"report.{e}" for e in ("csv", "json", "parquet"))
    con.execute(
        f"COPY ({csv_select()}) TO {lit(str(csv_path))}"
        " (FORMAT csv, HEADER true, DELIMITER ',', QUOTE '\"', NULL '')"
    )
    lap("csv")
    # The table itself: DuckDB writes DECIMAL as an exact JSON number (20-digit scale).
    # Not CAST(text AS JSON): that reparses the number as a double (82.36006931913189 ->
    # 82.3600693191319), which is exactly what this script must not do.
    con.execute(f"COPY {TABLE} TO {lit(str(json_path))} (FORMAT json, ARRAY true)")
    lap("json")
    con.execute(f"COPY {TABLE} TO {lit(str(parquet_path))} (FORMAT parquet, COMPRESSION zstd)")
    lap("parquet")
    con.execute("CHECKPOINT")
    con.close()
    lap("close")
    return steps


if __name__ == "__main__":
    run_cli(__doc__, run)
