"""`etl-balances`: run a report date, backfill a range, start the simulator, run the demo."""

from __future__ import annotations

import argparse
import os
import re
import sys
from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from assets.runner import RunSummary, run_report
from etl_project.errors import ConfigError

#: Demo credentials (the simulator's own, not secrets) reach the config as ${VAR}, like real ones.
DEMO_ENV = {
    "DEMO_KRAKEN_API_KEY": "kraken_api_key",
    "DEMO_KRAKEN_API_SECRET": "kraken_api_secret",
    "DEMO_SAXO_ACCESS_TOKEN": "saxo_access_token",
    "DEMO_PLATFORM_API_TOKEN": "platform_api_token",
    "DEMO_SETTLEMENT_REPORT_TOKEN": "settlement_report_api_token",
}


def _date(text: str) -> date:
    # date.fromisoformat also takes 20261120 and 2026-W47-5: a report date is spelled one way.
    if not re.fullmatch(r"\d{4}-\d{2}-\d{2}", text):
        raise argparse.ArgumentTypeError(f"not a date (YYYY-MM-DD): {text!r}")
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a date (YYYY-MM-DD): {text!r}") from None


def _out_of_range(config_path: str, *days: date) -> str | None:
    """Why a report date cannot be run (before report.start_date, or in the future), or None."""
    from etl_project.config import read_layout

    start = date.fromisoformat(read_layout(config_path).report.start_date)
    today = datetime.now(UTC).date()
    for day in days:
        if day < start:
            return f"{day} is before report.start_date {start} ({config_path})"
        if day > today:
            return f"{day} is in the future: the latest report date is today, {today} (UTC)"
    return None


def _print_summary(summary: RunSummary) -> None:
    state = "OK" if summary.success else "FAILED"
    for line in summary.failures:  # causes first, then the summary
        print(f"  failed: {line}", file=sys.stderr, flush=True)
    print(f"{summary.report_date}: {state}, {summary.rows} rows, {summary.completeness}")
    for line in summary.gaps:
        print(f"  gap: {line}")
    for line in summary.failed_checks:
        print(f"  check failed: {line}")
    for line in summary.accounting:
        print(f"  rows: {line}")
    for name, where in summary.outputs.items():
        print(f"  {name:<10} {where}")


def cmd_run(args: argparse.Namespace) -> int:
    if problem := _out_of_range(args.config, args.date):
        print(f"etl-balances run: --date {problem}", file=sys.stderr)
        return 2
    summary = run_report(args.config, args.date, quiet=not args.verbose)
    _print_summary(summary)
    return 0 if summary.success else 1


def cmd_backfill(args: argparse.Namespace) -> int:
    if args.end < args.start:
        print("backfill: --end is before --start", file=sys.stderr)
        return 2
    if problem := _out_of_range(args.config, args.start, args.end):
        print(f"etl-balances backfill: {problem}", file=sys.stderr)
        return 2
    day, ok = args.start, True
    while day <= args.end:
        summary = run_report(args.config, day, quiet=not args.verbose)
        _print_summary(summary)
        ok = ok and summary.success
        day += timedelta(days=1)
    return 0 if ok else 1


def cmd_accounts(args: argparse.Namespace) -> int:
    """List the account registry, or retire / reinstate one account of a source."""
    from etl_project.config import load_config
    from etl_project.sinks import account_registry as registry
    from etl_project.sinks.warehouse import Warehouse

    config = load_config(args.config)
    config.source(args.source) if args.source else None  # a typo is a config error, exit 2
    warehouse = Warehouse(config.warehouse)
    try:
        warehouse.ensure_schema()
        with warehouse.transaction() as conn:
            if args.action == "list":
                for row in registry.read_registry(conn, args.source):
                    retired = f", retired on {row['retired_on']}" if row["retired_on"] else ""
                    label = (
                        f"{row['account_name']} ({row['account_id']})"
                        if row["account_name"]
                        else row["account_id"]
                    )
                    print(
                        f"{row['source']}/{label}: first seen {row['first_seen']}, "
                        f"last seen {row['last_seen']}{retired}"
                    )
                return 0
            if not args.source or not args.account:
                print(
                    f"accounts {args.action}: --source and --account are required", file=sys.stderr
                )
                return 2
            if args.action == "retire":
                found = registry.retire_account(
                    conn, args.source, args.account, args.on, args.reason or "retired"
                )
            else:
                found = registry.reinstate_account(conn, args.source, args.account)
    finally:
        warehouse.dispose()
    if not found:
        print(
            f"accounts {args.action}: {args.source}/{args.account} is not in the registry",
            file=sys.stderr,
        )
        return 2
    print(f"{args.source}/{args.account}: {args.action}d")
    return 0


def cmd_simulate(args: argparse.Namespace) -> int:
    from etl_project.simulator import SimulatorConfig, serve_forever
    from etl_project.simulator.config import CLI_OPTIONS

    config = SimulatorConfig(
        seed=args.seed,
        host=args.host,
        port=args.port,
        **{name: getattr(args, name) for name in CLI_OPTIONS},
    )
    serve_forever(config)  # prints the bound URL and each venue's base URL
    return 0


def demo_sources(sim_url: str) -> str:
    """The `sources:` block of the demo config: all four venue kinds on the simulator."""
    return (
        "sources:\n"
        "  - name: kraken_demo\n"
        "    kind: kraken_futures\n"
        f"    base_url: {sim_url}/derivatives/api/v3\n"
        "    api_key: ${DEMO_KRAKEN_API_KEY}\n"
        "    api_secret: ${DEMO_KRAKEN_API_SECRET}\n"
        "    account_group: Demo\n"
        "  - name: saxo_demo\n"
        "    kind: saxo\n"
        f"    base_url: {sim_url}/sim/openapi\n"
        "    access_token: ${DEMO_SAXO_ACCESS_TOKEN}\n"
        "  - name: platform_demo\n"
        "    kind: platform\n"
        f"    base_url: {sim_url}\n"
        "    api_token: ${DEMO_PLATFORM_API_TOKEN}\n"
        "  - name: settlement_platform_demo\n"
        "    kind: settlement_report\n"
        f"    location: {sim_url}/reports/client-balance/{{date}}.csv\n"
        "    api_token: ${DEMO_SETTLEMENT_REPORT_TOKEN}\n"
    )


def write_demo_config(workdir: Path, sim_url: str) -> Path:
    """The embedded default: simulator venues, a local folder, a DuckDB file."""
    workdir.mkdir(parents=True, exist_ok=True)
    path = workdir / "config.yaml"
    path.write_text(
        f"storage: {workdir / 'lake'}\n"
        f"warehouse: duckdb:///{workdir / 'warehouse.duckdb'}\n" + demo_sources(sim_url),
        encoding="utf-8",
    )
    return path


def cmd_demo(args: argparse.Namespace) -> int:
    from etl_project.config import load_config
    from etl_project.report.batches import report_batches
    from etl_project.report.summary import markdown_table, totals_by
    from etl_project.simulator import Simulator, SimulatorConfig
    from etl_project.sinks.object_store import open_store
    from etl_project.stages.report import staged_report_file

    sim_config = SimulatorConfig(seed=args.seed, kraken_subaccounts=args.kraken_subaccounts)
    for var, attr in DEMO_ENV.items():
        os.environ.setdefault(var, getattr(sim_config, attr))
    sim = Simulator(sim_config)
    sim.start()
    try:
        config_path = write_demo_config(Path(args.dir).resolve(), sim.url)
        print(f"simulator: {sim.url}   config: {config_path}")
        summary = run_report(str(config_path), args.date, quiet=not args.verbose)
    finally:
        sim.stop()
    _print_summary(summary)
    if summary.success:
        store = open_store(load_config(config_path).storage)
        with staged_report_file(store, args.date) as (parquet, _):
            totals = totals_by(report_batches(parquet, ["Ccy", "Total"]), ["Ccy"])
        print("\nTotals per currency:")
        print(markdown_table(totals))
    return 0 if summary.success else 1


#: `dagster dev` says it is superseded by `dg dev` (package dagster-dg-cli, and a `dg` project
#: layout): this project runs `dagster dev` on purpose, so that notice is not shown.
_DEV_SUPERSEDED = "ignore:Function `dev_command` is superseded:FutureWarning"


def ui_command(workspace: Path, port: int) -> list[str]:
    """The `dagster dev` command line of `etl-balances ui` (tests start the very same)."""
    return [
        sys.executable,
        "-W",
        _DEV_SUPERSEDED,
        "-m",
        "dagster",
        "dev",
        "-w",
        str(workspace),
        "-p",
        str(port),
    ]


def cmd_ui(args: argparse.Namespace) -> int:
    """Simulator + `dagster dev` on the demo venues, with this repo's dagster.yaml.

    `dagster dev` runs in DAGSTER_HOME, the folder whose dagster.yaml it uses: started from the
    repo, it would warn that the repo's dagster.yaml (a template) is not used. Run workers
    inherit that folder, so the demo config written here names its lake and warehouse by
    absolute paths (`data/ui/` of the repo), and points at the simulator's actual port."""
    import shutil
    import subprocess

    from etl_project.simulator import Simulator, SimulatorConfig

    repo = Path(__file__).resolve().parents[1]
    sim_config = SimulatorConfig(port=args.sim_port)
    env = dict(os.environ)
    for var, attr in DEMO_ENV.items():
        env.setdefault(var, getattr(sim_config, attr))
    home = Path(env.get("DAGSTER_HOME") or repo / ".dagster_home").resolve()
    env["DAGSTER_HOME"] = str(home)
    home.mkdir(parents=True, exist_ok=True)
    if home == repo / ".dagster_home" or not (home / "dagster.yaml").exists():
        shutil.copy(repo / "dagster.yaml", home / "dagster.yaml")
    sim = Simulator(sim_config)
    sim.start()
    try:
        if env.get("ETL_CONFIG"):  # relative to here, not to DAGSTER_HOME
            env["ETL_CONFIG"] = str(Path(env["ETL_CONFIG"]).resolve())
        else:
            env["ETL_CONFIG"] = str(write_demo_config(repo / "data" / "ui", sim.url))
        print(
            f"simulator: {sim.url}; config: {env['ETL_CONFIG']}; DAGSTER_HOME: {home}\n"
            f"Dagster UI on http://127.0.0.1:{args.port}",
            flush=True,
        )
        process = subprocess.Popen(
            ui_command(repo / "workspace.yaml", args.port), cwd=home, env=env
        )
        try:
            return process.wait()
        except KeyboardInterrupt:  # Ctrl-C reached `dagster dev` too: let it shut down
            return process.wait()
    finally:
        sim.stop()


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="etl-balances", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    today = datetime.now(UTC).date()
    env_config = os.environ.get("ETL_CONFIG")

    run = sub.add_parser("run", help="materialise one report date through the Dagster job")
    run.add_argument("--config", default=env_config, required=env_config is None)
    run.add_argument("--date", type=_date, required=True)
    run.add_argument("--verbose", action="store_true", help="show Dagster's log")
    run.set_defaults(func=cmd_run)

    backfill = sub.add_parser("backfill", help="materialise every date of a range, in order")
    backfill.add_argument("--config", default=env_config, required=env_config is None)
    backfill.add_argument("--start", type=_date, required=True)
    backfill.add_argument("--end", type=_date, required=True)
    backfill.add_argument("--verbose", action="store_true")
    backfill.set_defaults(func=cmd_backfill)

    accounts = sub.add_parser(
        "accounts", help="the account registry: list, retire or reinstate an account"
    )
    accounts.add_argument("action", choices=("list", "retire", "reinstate"))
    accounts.add_argument("--config", default=env_config, required=env_config is None)
    accounts.add_argument("--source")
    accounts.add_argument("--account", help="the venue's account id")
    accounts.add_argument("--reason", help="why it is retired (recorded)")
    accounts.add_argument("--on", type=_date, default=today, help="retired from this date")
    accounts.set_defaults(func=cmd_accounts)

    simulate = sub.add_parser("simulate", help="serve the venue simulator on 127.0.0.1")
    simulate.add_argument("--host", default="127.0.0.1")
    simulate.add_argument("--port", type=int, default=8765)
    simulate.add_argument("--seed", type=int, default=7)
    from etl_project.simulator.config import add_cli_options  # account counts, Saxo's limit

    add_cli_options(simulate)
    simulate.set_defaults(func=cmd_simulate)

    demo = sub.add_parser("demo", help="simulator + local folder + DuckDB: today's report")
    demo.add_argument("--date", type=_date, default=today)
    demo.add_argument("--dir", default="./data/demo")
    demo.add_argument("--seed", type=int, default=7)
    demo.add_argument("--kraken-subaccounts", type=int, default=3)
    demo.add_argument("--verbose", action="store_true")
    demo.set_defaults(func=cmd_demo)

    ui = sub.add_parser("ui", help="simulator + `dagster dev` on the demo venues")
    ui.add_argument("--port", type=int, default=3000)
    ui.add_argument("--sim-port", type=int, default=8765)
    ui.set_defaults(func=cmd_ui)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        code: int = args.func(args)
    except ConfigError as exc:
        print(f"config error: {exc}", file=sys.stderr)
        return 2
    return code


if __name__ == "__main__":
    raise SystemExit(main())
