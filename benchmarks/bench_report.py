"""Benchmark: report build + validation + CSV/JSON/Parquet + warehouse load.

Runs each size in a fresh subprocess (so peak RSS is per size) and prints seconds, rows/s and
peak memory per step. Usage: `python benchmarks/bench_report.py [--sizes 100000 1000000]
[--postgres URL [--pg-repeat 3] [--pg-copy binary|csv]]`. Synthetic rows are exact decimals of
the kinds venues send (negative, tiny, up to 19 fractional digits); generating them is not
timed. For the whole `etl-balances run` process against plain pandas / DuckDB scripts, see
`bench_e2e.py` (benchmarks/README.md).

With `--postgres` (e.g. postgresql+psycopg://postgres@127.0.0.1:5432/test) the report is also
loaded into a throw-away schema there, `--pg-repeat` times (the table emptied in between, not
timed): the "postgres load" step is the median, and a closing table gives the best and median
rows/s of the PostgreSQL load per size. `--pg-copy csv` forces the CSV COPY path of
`load_postgres_copy` instead of binary COPY, to compare the two on the same machine and load.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from etl_project.report.columns import AMOUNT_COLUMNS, AMOUNT_TYPE, BALANCES_SCHEMA, RETIRED_COLUMNS

REPORT_DATE = date(2026, 11, 20)


def synthetic_balances(rows: int, seed: int = 7) -> pa.Table:
    """`rows` canonical balances (BALANCES_SCHEMA), unique (accountUUID, Ccy), valid."""
    rng = np.random.default_rng(seed)
    accounts = max(1, rows // 8)
    account_ids = [str(uuid.UUID(int=int(x))) for x in rng.integers(0, 2**63, accounts)]
    ccys = np.array(["BTC", "ETH", "USD", "USDT", "XRP", "EUR", "GBP", "LTC"])
    idx = np.arange(rows)
    account = pa.array(account_ids).take(pa.array(idx // 8 % accounts))
    columns: dict[str, pa.Array] = {
        "userUUID": account,
        "accountUUID": account,
        "Account Group UUID": account,
        "Account Group": pa.array(np.full(rows, "Default")),
        "User": pa.array(np.full(rows, "bench user")),
        "Email": pa.nulls(rows, pa.string()),
        "mainType": pa.array(np.full(rows, "Client")),
        "subMainType": pa.array(np.full(rows, "Holding account")),
        "Ccy": pa.array(ccys[idx % 8]),
        "Account in Ledger": pa.array(np.ones(rows, dtype=bool)),
        "System Account": pa.array(np.zeros(rows, dtype=bool)),
    }
    pool = _decimal_pool(rng)
    for name in AMOUNT_COLUMNS:
        if name in RETIRED_COLUMNS:
            columns[name] = pool.take(pa.array(np.zeros(rows, dtype=np.int64)))  # pool[0] == 0
        else:
            columns[name] = pool.take(pa.array(rng.integers(0, len(pool), rows)))
    for name in ("source", "venue", "venue_account_id", "wallet"):
        columns[name] = pa.array(np.full(rows, "bench"))
    return pa.table(columns).select(BALANCES_SCHEMA.names).cast(BALANCES_SCHEMA)


def _decimal_pool(rng: np.random.Generator, size: int = 50_000) -> pa.Array:
    """Distinct exact decimals (negative, tiny, up to 19 fractional digits, zeros)."""
    units = rng.integers(-(10**12), 10**15, size)
    scales = rng.integers(0, 20, size)
    values = [Decimal(int(u)).scaleb(-int(s)) for u, s in zip(units, scales, strict=True)]
    values[: size // 10] = [Decimal(0)] * (size // 10)
    return pa.array(values, type=AMOUNT_TYPE)


def run_one(
    rows: int, postgres: str | None, pg_repeat: int = 1, pg_copy: str = "binary"
) -> dict[str, Any]:
    from etl_project.quality import movement
    from etl_project.report.build import build_report
    from etl_project.report.serialise import to_csv, to_json, to_parquet
    from etl_project.sinks.warehouse import Warehouse

    balances = synthetic_balances(rows)
    timings: dict[str, Any] = {}

    def timed(name: str, fn):  # type: ignore[no-untyped-def]
        start = time.perf_counter()
        value = fn()
        timings[name] = time.perf_counter() - start
        return value

    report, rejected = timed(
        "build+validate",
        lambda: build_report(
            [balances],
            report_date=REPORT_DATE,
            run_id="bench",
            snapshot_at={"bench": datetime(2026, 11, 21, tzinfo=UTC)},
        ),
    )
    assert not rejected and report.num_rows > 0
    timed("csv", lambda: to_csv(report))
    timed("json", lambda: to_json(report))
    timed("parquet", lambda: to_parquet(report))
    with tempfile.TemporaryDirectory() as tmp:
        wh = Warehouse(f"duckdb:///{tmp}/bench.duckdb")
        wh.ensure_schema()
        timed("duckdb load", lambda: wh.replace_report(report, REPORT_DATE))
        # The movement check's work: exact totals of two days from the warehouse, compared.
        previous = REPORT_DATE - timedelta(days=1)
        column = report.column_names.index("report_date")
        wh.replace_report(
            report.set_column(
                column, "report_date", pa.array([previous] * report.num_rows, pa.date32())
            ),
            previous,
        )
        outcome = timed(
            "movement check",
            lambda: movement(wh.read_totals(REPORT_DATE), wh.read_totals(previous), 50),
        )
        assert outcome.passed, outcome.summary
        wh.dispose()
    if postgres:
        import sqlalchemy as sa

        schema = f"bench_{uuid.uuid4().hex[:8]}"  # throw-away: leave nothing behind
        admin = sa.create_engine(postgres)
        with admin.begin() as conn:
            conn.execute(sa.text(f"create schema {schema}"))
        sep = "&" if "?" in postgres else "?"
        wh = Warehouse(f"{postgres}{sep}options=-csearch_path%3D{schema}")
        from etl_project.sinks import warehouse_loaders

        if not hasattr(warehouse_loaders, "_binary_plan"):  # a checkout before binary COPY
            pg_copy = "csv"
        elif pg_copy == "csv":  # the CSV COPY path of load_postgres_copy, for comparison
            warehouse_loaders._binary_plan = lambda *args: None
        timings["_pg_copy"] = pg_copy
        try:
            wh.ensure_schema()
            loads = []
            for _ in range(pg_repeat):
                with wh.engine.begin() as conn:
                    conn.execute(sa.text("TRUNCATE settlement_balance_report"))
                timed("postgres load", lambda: wh.replace_report(report, REPORT_DATE))
                loads.append(timings["postgres load"])
            timings["postgres load"] = sorted(loads)[len(loads) // 2]
            timings["_pg_loads"] = loads
        finally:
            wh.dispose()
            with admin.begin() as conn:
                conn.execute(sa.text(f"drop schema {schema} cascade"))
            admin.dispose()
    timings["rows"] = report.num_rows
    timings["peak_rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return timings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--postgres", default=None, help="SQLAlchemy URL to include a PG load")
    parser.add_argument("--pg-repeat", type=int, default=3, help="PG loads per size (median)")
    parser.add_argument(
        "--pg-copy", choices=["binary", "csv"], default="binary", help="COPY format of the PG load"
    )
    parser.add_argument("--one", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(run_one(args.one, args.postgres, args.pg_repeat, args.pg_copy)))
        return
    print(f"{'rows':>9}  {'step':<15} {'seconds':>8} {'rows/s':>12}  peak RSS")
    pg_loads: dict[int, list[float]] = {}
    pg_copy = args.pg_copy
    for size in args.sizes:
        cmd = [sys.executable, __file__, "--one", str(size)]
        if args.postgres:
            cmd += ["--postgres", args.postgres, "--pg-repeat", str(args.pg_repeat)]
            cmd += ["--pg-copy", args.pg_copy]
        out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
        result = json.loads(out.strip().splitlines()[-1])
        rows, peak = int(result.pop("rows")), result.pop("peak_rss_mib")
        if "_pg_loads" in result:
            pg_loads[rows] = result.pop("_pg_loads")
            pg_copy = result.pop("_pg_copy")
        total = sum(result.values())
        for step, seconds in [*result.items(), ("total", total)]:
            print(
                f"{rows:>9}  {step:<15} {seconds:>8.2f} {rows / seconds:>12,.0f}  {peak:,.0f} MiB"
                if step == "total"
                else f"{rows:>9}  {step:<15} {seconds:>8.2f} {rows / seconds:>12,.0f}"
            )
    if pg_loads:
        print(
            f"\nPostgreSQL load of settlement_balance_report ({pg_copy} COPY, "
            f"{args.pg_repeat} run(s) per size):"
        )
        print(f"{'rows':>9}  {'best rows/s':>12}  {'median rows/s':>14}  seconds")
        for rows, loads in pg_loads.items():
            best, median = min(loads), sorted(loads)[len(loads) // 2]
            runs = " ".join(f"{x:.2f}" for x in loads)
            print(f"{rows:>9}  {rows / best:>12,.0f}  {rows / median:>14,.0f}  {runs}")


if __name__ == "__main__":
    main()
