"""Helpers for the end-to-end tests: a config file pointed at the simulator."""

from __future__ import annotations

import csv
import io
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"


def write_config(
    tmp: Path, *, storage: str, warehouse: str, kraken_url: str, extra: str = ""
) -> Path:
    """A config with one Kraken source on the simulator; secrets through ${VAR}."""
    path = tmp / "config.yaml"
    path.write_text(
        f"storage: {storage}\n"
        f"warehouse: {warehouse}\n"
        "sources:\n"
        "  - name: kraken_main\n"
        "    kind: kraken_futures\n"
        f"    base_url: {kraken_url}\n"
        "    api_key: ${TEST_KRAKEN_KEY}\n"
        "    api_secret: ${TEST_KRAKEN_SECRET}\n"
        "report:\n"
        "  venue_retries: 0\n"
        "  venue_retry_delay_seconds: 0\n" + extra,
        encoding="utf-8",
    )
    return path


def expected_seed003_rows() -> list[dict[str, str]]:
    """Spec §3's rows for seed 003's example, written by hand in the fixture."""
    text = (FIXTURES / "kraken_futures_seed003_expected.csv").read_text(encoding="utf-8")
    return list(csv.DictReader(io.StringIO(text)))


def store_past_snapshots(config_path: Path, days: list[date], source: str = "kraken_main") -> None:
    """Snapshots of `source` taken at the end of each past day, as the daily schedule would
    have taken them, so those dates can later be rebuilt without a venue call."""
    from etl_project.config import load_config
    from etl_project.sinks.object_store import open_store
    from etl_project.stages.snapshot import fetch_live

    config = load_config(config_path)
    store = open_store(config.storage)
    for day in days:
        taken_at = datetime.combine(day + timedelta(days=1), time(0), tzinfo=UTC)
        outcome, error = fetch_live(config.source(source), store, day, taken_at)
        assert error is None and outcome.ok, outcome.reason


def materialise(config_path: Path, day: date, **kwargs: Any) -> Any:
    """Every asset and check of the config's definitions, materialised for one partition on an
    ephemeral instance (keyword arguments go to `dg.materialize`)."""
    import dagster as dg

    from assets.definitions import build_definitions

    defs = build_definitions(config_path)
    kwargs.setdefault("instance", dg.DagsterInstance.ephemeral())
    return dg.materialize(
        [*defs.assets, *defs.asset_checks],  # type: ignore[list-item]
        resources=defs.resources,
        partition_key=day.isoformat(),
        **kwargs,
    )
