"""Fixtures shared by the end-to-end tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from assets.cli import DEMO_ENV, demo_sources
from etl_project.simulator import (
    DEFAULT_KRAKEN_API_KEY,
    DEFAULT_KRAKEN_API_SECRET,
    SimulatorConfig,
)
from tests.integration.helpers import write_config


@pytest.fixture()
def all_venues_config(simulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A config with every venue kind of the demo on the simulator, local folder + DuckDB."""
    defaults = SimulatorConfig()
    for var, attr in DEMO_ENV.items():
        monkeypatch.setenv(var, getattr(defaults, attr))
    path = tmp_path / "config.yaml"
    path.write_text(
        f"storage: {tmp_path / 'lake'}\n"
        f"warehouse: duckdb:///{tmp_path / 'wh.duckdb'}\n"
        + demo_sources(simulator.url)
        + "report:\n  venue_retries: 0\n  venue_retry_delay_seconds: 0\n",
        encoding="utf-8",
    )
    return path


@pytest.fixture()
def kraken_config(simulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """One Kraken Futures source on the simulator, local folder + DuckDB."""
    monkeypatch.setenv("TEST_KRAKEN_KEY", DEFAULT_KRAKEN_API_KEY)
    monkeypatch.setenv("TEST_KRAKEN_SECRET", DEFAULT_KRAKEN_API_SECRET)
    return write_config(
        tmp_path,
        storage=str(tmp_path / "lake"),
        warehouse=f"duckdb:///{tmp_path / 'wh.duckdb'}",
        kraken_url=simulator.kraken_base_url,
    )
