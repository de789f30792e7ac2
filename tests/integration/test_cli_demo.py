"""`etl-balances demo`, the README's first command: what it prints is what an operator reads."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from assets.cli import DEMO_ENV, main
from etl_project.simulator import SimulatorConfig


def test_demo_prints_outcome_gap_failed_check_and_output_paths(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    defaults = SimulatorConfig()
    for var, attr in DEMO_ENV.items():  # restored after the test (demo only sets defaults)
        monkeypatch.setenv(var, getattr(defaults, attr))
    today = datetime.now(UTC).date()
    assert main(["demo", "--dir", str(tmp_path)]) == 0
    lines = capsys.readouterr().out.splitlines()

    assert lines[1] == f"{today}: OK, 60 rows, partial"
    failed = (
        "okxdex-arb-3 (9bd50cc3-6f7b-4d9f-904a-a772658e976e): "
        "OKXDEX API error: request timed out after 10s"
    )
    assert lines[2] == f"  gap: platform_demo/{failed}"
    assert lines[3] == (
        "  check failed: completeness on settlement_balance_report: "
        f"partial: platform_demo/{failed}"
    )
    # Every delivered row is accounted for, per source.
    assert lines[4:8] == [
        "  rows: kraken_demo: delivered 63 = published 43 + dropped all-zero 20 + quarantined 0",
        "  rows: platform_demo: delivered 6 = published 6 + dropped all-zero 0 + quarantined 0",
        "  rows: saxo_demo: delivered 3 = published 2 + dropped all-zero 0 + quarantined 1",
        "  rows: settlement_platform_demo: delivered 10 = published 9 + dropped all-zero 1 "
        "+ quarantined 0",
    ]
    outputs = dict(line.split(None, 1) for line in lines[8:16])
    for name in ("csv", "json", "parquet", "quarantine"):
        assert Path(outputs[name]).is_file(), name
    page = Path(outputs["day_page"]).read_text()  # the picture of the day, beside the report
    assert page.startswith("<!DOCTYPE html>") and f"Settlement balance report {today}" in page
    assert outputs["warehouse"] == (
        f"duckdb:///{tmp_path / 'warehouse.duckdb'} (table settlement_balance_report)"
    )
    assert outputs["checks"] == (
        f"duckdb:///{tmp_path / 'warehouse.duckdb'} (table settlement_check_results)"
    )
    assert "Totals per currency:" in lines
