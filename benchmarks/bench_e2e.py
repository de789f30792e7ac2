"""End-to-end benchmark: the product's `etl-balances run` against two plain scripts.

Why: the library-level `bench_report.py` times the report functions on an in-memory table; it
cannot show what an operator waits for (process start, Dagster, landing the raw file, parsing,
publishing, the warehouse) nor how that compares with what a simple script on the same machine
does with the same file. This benchmark answers "how far is `etl-balances run` from the
obvious pandas script and from a hand-tuned DuckDB script", per input size:

1. Generate the settlement platform report CSV once per size (`gen_report_csv.py`; not timed).
2. Run the three contestants on that same file, each as its own process, alternating them
   (`--repeat` rounds, each round in a rotated order so no one always runs first or last):
   - `product`: `etl-balances run --config … --date D` on a fresh temp storage folder and DuckDB
     warehouse (so every repetition does the full work), one `kind: settlement_report` source
     reading `<dir>/{date}.csv`, `venue_retries: 0`;
   - `duckdb script`: `baseline_duckdb.py` (exact DECIMAL(38,20), same CSV bytes);
   - `pandas script`: `baseline_pandas.py` (floats: fast-and-wrong reference).
3. Per process: wall seconds (perf_counter around spawn..exit) and peak RSS, taken exactly from
   the kernel with `os.wait4` (the child's `ru_maxrss`, which includes any descendants it
   waited for), i.e. what `/usr/bin/time -v` reports. Linux carries the spawning process's
   high-water RSS into the child's `ru_maxrss` across exec, so this harness stays lean on
   purpose (it runs the generator as a subprocess and imports nothing heavy); the no-op child
   printed at the start shows that floor (~20 MiB).
4. Print one markdown table per size and check that the product's CSV is byte-identical to the
   DuckDB script's (the first differing line of each otherwise; never fails the benchmark).

Usage: `python benchmarks/bench_e2e.py [--sizes N …] [--with-5m] [--repeat 3] [--json OUT]`.
A contestant that fails is shown with its exit code, and its last stderr lines are printed.
"""

from __future__ import annotations

import argparse
import filecmp
import itertools
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import date
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPORT_DATE = date(2026, 11, 20)  # a past date: read from `{date}.csv`, not fetched live
DEFAULT_SIZES = (100_000, 1_000_000)
SIZE_5M = 5_000_000
PRODUCT, DUCKDB, PANDAS = "product", "duckdb script", "pandas script"
STDERR_TAIL = 15


@dataclass
class Run:
    """One process: how long it took, how much memory it peaked at, how it ended."""

    seconds: float
    peak_rss_kib: int
    exit_code: int
    stderr_tail: list[str] = field(default_factory=list)
    stdout_head: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.exit_code == 0


@dataclass
class Contestant:
    """How to run one contestant in a fresh directory, and where its report CSV lands."""

    name: str
    command: Callable[[Path, Path], list[str]]  # (input CSV, run dir) -> argv
    csv_path: Callable[[Path], Path]  # run dir -> the CSV it wrote


def measured(argv: list[str], run_dir: Path, env: dict[str, str]) -> Run:
    """Run `argv` to completion; wall time and the child's exact peak RSS via `os.wait4`."""
    out_path, err_path = run_dir / "stdout.txt", run_dir / "stderr.txt"
    with out_path.open("wb") as out, err_path.open("wb") as err:
        start = time.perf_counter()
        child = subprocess.Popen(argv, stdout=out, stderr=err, cwd=run_dir, env=env)
        _, status, usage = os.wait4(child.pid, 0)
        seconds = time.perf_counter() - start
    code = os.waitstatus_to_exitcode(status)
    child.returncode = code  # reaped by wait4: stop Popen from waiting on it again
    stderr = err_path.read_text(errors="replace").splitlines()
    stdout = out_path.read_text(errors="replace").splitlines()
    return Run(seconds, usage.ru_maxrss, code, stderr[-STDERR_TAIL:], stdout[:3])


def product_config(run_dir: Path, input_csv: Path) -> Path:
    """A config for one product run: temp storage + warehouse, the file as its only source."""
    location = input_csv.parent / "{date}.csv"
    config = run_dir / "config.yaml"
    config.write_text(
        f"storage: {json.dumps(str(run_dir / 'lake'))}\n"
        f"warehouse: {json.dumps('duckdb:///' + str(run_dir / 'wh.duckdb'))}\n"
        "sources:\n"
        "  - name: settlement_platform\n"
        "    kind: settlement_report\n"
        f"    location: {json.dumps(str(location))}\n"
        "report:\n"
        "  venue_retries: 0\n"
    )
    return config


def contestants(etl_balances: Path, python: str) -> list[Contestant]:
    """The three contestants, in their first-round order."""
    day = REPORT_DATE.isoformat()
    product_csv = f"reports/settlement_balance/date={day}/settlement_balance_{day}.csv"
    return [
        Contestant(
            PRODUCT,
            lambda src, run: [
                str(etl_balances),
                "run",
                "--config",
                str(product_config(run, src)),
                "--date",
                day,
            ],
            lambda run: run / "lake" / product_csv,
        ),
        Contestant(
            DUCKDB,
            lambda src, run: [python, str(HERE / "baseline_duckdb.py"), str(src), str(run / "out")],
            lambda run: run / "out" / "report.csv",
        ),
        Contestant(
            PANDAS,
            lambda src, run: [python, str(HERE / "baseline_pandas.py"), str(src), str(run / "out")],
            lambda run: run / "out" / "report.csv",
        ),
    ]


def rotated(items: list[Contestant], by: int) -> list[Contestant]:
    """`items` starting at position `by` (round r runs a different contestant first)."""
    by %= len(items)
    return items[by:] + items[:by]


def lines(path: Path) -> Iterator[bytes]:
    with path.open("rb") as handle:
        yield from handle


def compare_csv(product: Path, reference: Path) -> dict[str, object]:
    """Byte-compare two CSVs; when they differ, the first differing line of each (1-based)."""
    if filecmp.cmp(product, reference, shallow=False):
        return {"identical": True}
    pairs = itertools.zip_longest(lines(product), lines(reference))
    for number, (mine, theirs) in enumerate(pairs, start=1):
        if mine != theirs:
            return {
                "identical": False,
                "line": number,
                PRODUCT: None if mine is None else mine.decode(errors="replace").rstrip("\n"),
                DUCKDB: None if theirs is None else theirs.decode(errors="replace").rstrip("\n"),
            }
    return {"identical": False, "line": None}  # same lines, different bytes: cannot happen


def summary(runs: list[Run]) -> dict[str, object]:
    """Median and min wall seconds of the successful runs; the highest peak RSS of all runs."""
    good = [r.seconds for r in runs if r.ok]
    return {
        "median_s": statistics.median(good) if good else None,
        "min_s": min(good) if good else None,
        "peak_rss_gib": max(r.peak_rss_kib for r in runs) / 2**20,
        "failed_runs": sum(not r.ok for r in runs),
        "exit_codes": sorted({r.exit_code for r in runs}),
        "runs": [asdict(r) for r in runs],
    }


def ratio(value: object, reference: object) -> str:
    if not isinstance(value, float) or not isinstance(reference, float) or reference <= 0:
        return "–"
    return f"{value / reference:.2f}×"


def table(rows: int, stats: dict[str, dict[str, object]]) -> str:
    """The markdown table of one size."""
    head = [
        f"### {rows:,} rows",
        "",
        "| contestant | median s | min s | peak RSS GiB | vs DuckDB script | vs pandas script"
        " | exit |",
        "|---|---:|---:|---:|---:|---:|---|",
    ]
    body = []
    for name, s in stats.items():
        median, low = s["median_s"], s["min_s"]
        failed = s["failed_runs"]
        runs = len(s["runs"])  # type: ignore[arg-type]
        exit_text = "0" if not failed else f"{failed}/{runs} failed, exit {s['exit_codes']}"
        body.append(
            f"| {name} | {_num(median)} | {_num(low)} | {s['peak_rss_gib']:.2f}"
            f" | {ratio(median, stats[DUCKDB]['median_s'])}"
            f" | {ratio(median, stats[PANDAS]['median_s'])} | {exit_text} |"
        )
    return "\n".join(head + body)


def _num(value: object) -> str:
    return f"{value:.2f}" if isinstance(value, float) else "failed"


def bench_size(rows: int, args: argparse.Namespace, work: Path) -> dict[str, object]:
    """Generate one input, run every contestant `args.repeat` times, print the table."""
    input_dir = work / f"input-{rows}"
    input_csv = input_dir / f"{REPORT_DATE.isoformat()}.csv"
    start = time.perf_counter()
    generator = [sys.executable, str(HERE / "gen_report_csv.py"), str(input_csv)]
    made = subprocess.run(
        [*generator, "--rows", str(rows), "--seed", str(args.seed)], capture_output=True, text=True
    )
    if made.returncode:
        raise SystemExit(f"generating {rows:,} rows failed:\n{made.stderr}")
    size_mib = input_csv.stat().st_size / 2**20
    print(
        f"\n{rows:,} rows: input {input_csv.name} {size_mib:,.0f} MiB generated in"
        f" {time.perf_counter() - start:.1f}s (not timed); load average"
        f" {' '.join(f'{x:.1f}' for x in os.getloadavg())}",
        flush=True,
    )
    env = {k: v for k, v in os.environ.items() if k != "DAGSTER_HOME"}  # ephemeral instance
    env["PYTHONUNBUFFERED"] = "1"
    lineup = contestants(args.etl_balances, sys.executable)
    runs: dict[str, list[Run]] = {c.name: [] for c in lineup}
    comparison: dict[str, object] | None = None
    for round_no in range(args.repeat):
        csvs: dict[str, Path] = {}
        round_dir = work / f"run-{rows}-{round_no}"
        for contestant in rotated(lineup, round_no):
            run_dir = round_dir / contestant.name.replace(" ", "_")
            run_dir.mkdir(parents=True)
            run = measured(contestant.command(input_csv, run_dir), run_dir, env)
            runs[contestant.name].append(run)
            status = "ok" if run.ok else f"FAILED (exit {run.exit_code})"
            print(
                f"  round {round_no + 1}/{args.repeat} {contestant.name:<13}"
                f" {run.seconds:8.2f}s {run.peak_rss_kib / 2**20:6.2f} GiB  {status}",
                flush=True,
            )
            if contestant.name == PRODUCT and run.stdout_head:
                print(f"    product: {run.stdout_head[0]}", flush=True)
            if not run.ok:
                print("    last stderr lines:", flush=True)
                for line in run.stderr_tail:
                    print(f"    | {line}", flush=True)
            if run.ok and contestant.csv_path(run_dir).exists():
                csvs[contestant.name] = contestant.csv_path(run_dir)
        if comparison is None and PRODUCT in csvs and DUCKDB in csvs:
            comparison = compare_csv(csvs[PRODUCT], csvs[DUCKDB])
        if not args.keep:
            shutil.rmtree(round_dir, ignore_errors=True)
    stats = {name: summary(r) for name, r in runs.items()}
    print()
    print(table(rows, stats))
    print()
    if comparison is None:
        print("product CSV vs DuckDB script CSV: not compared (a run failed or wrote no CSV)")
    elif comparison["identical"]:
        print("product CSV vs DuckDB script CSV: byte-identical")
    else:
        print(f"product CSV vs DuckDB script CSV: DIFFERENT, first at line {comparison['line']}")
        print(f"  product:       {comparison.get(PRODUCT)!r}")
        print(f"  duckdb script: {comparison.get(DUCKDB)!r}")
    sys.stdout.flush()
    if not args.keep:
        shutil.rmtree(input_dir, ignore_errors=True)
    return {
        "rows": rows,
        "input_mib": size_mib,
        "load_average": os.getloadavg(),
        "contestants": stats,
        "csv_vs_duckdb": comparison,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", type=int, nargs="+", help="rows per input (default 100k 1M)")
    parser.add_argument("--with-5m", action="store_true", help="also run 5,000,000 rows")
    parser.add_argument("--repeat", type=int, default=3, help="rounds per size (default 3)")
    parser.add_argument("--seed", type=int, default=0, help="generator seed")
    parser.add_argument("--json", type=Path, help="also write the numbers to this file")
    parser.add_argument("--workdir", type=Path, help="where inputs and runs go (default: temp)")
    parser.add_argument("--keep", action="store_true", help="keep inputs and run folders")
    parser.add_argument(
        "--etl-balances",
        type=Path,
        default=Path(sys.executable).parent / "etl-balances",
        help="the product's CLI (default: next to this Python)",
    )
    args = parser.parse_args()
    if args.repeat < 1:
        parser.error("--repeat must be at least 1")
    if not args.etl_balances.exists():
        parser.error(f"{args.etl_balances} not found: run `make bench` (installs the project)")
    sizes = list(args.sizes or DEFAULT_SIZES)
    if args.with_5m and SIZE_5M not in sizes:
        sizes.append(SIZE_5M)

    work = Path(tempfile.mkdtemp(prefix="etl-bench-", dir=args.workdir))
    print(
        f"# End-to-end benchmark ({platform.python_implementation()} {platform.python_version()},"
        f" {os.cpu_count()} CPUs, {args.repeat} round(s) per size, report date {REPORT_DATE},"
        f" work dir {work})"
    )
    noop = work / "noop"
    noop.mkdir()
    floor = measured([shutil.which("true") or "/bin/true"], noop, dict(os.environ))
    print(f"peak RSS of a no-op child (inherited floor): {floor.peak_rss_kib / 1024:.0f} MiB")
    results = []
    try:
        for rows in sizes:
            results.append(bench_size(rows, args, work))
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    if args.json:
        payload = {
            "report_date": REPORT_DATE.isoformat(),
            "repeat": args.repeat,
            "seed": args.seed,
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "sizes": results,
        }
        args.json.write_text(json.dumps(payload, indent=2) + "\n")
        print(f"numbers written to {args.json}")


if __name__ == "__main__":
    main()
