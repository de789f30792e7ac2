"""The command line's one-line answers to a wrong date, and whole-value secret redaction."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from assets.cli import main
from etl_project.config import redact

TODAY = datetime.now(UTC).date()


@pytest.fixture()
def config(tmp_path: Path) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(
        f"storage: {tmp_path / 'lake'}\n"
        f"warehouse: duckdb:///{tmp_path / 'wh.duckdb'}\n"
        "sources:\n"
        "  - name: settle\n"
        "    kind: settlement_report\n"
        f"    location: {tmp_path}/{{date}}.csv\n"
        "report:\n"
        "  start_date: '2026-01-01'\n",
        encoding="utf-8",
    )
    return path


def test_a_future_date_is_one_line_and_exit_2(
    config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["run", "--config", str(config), "--date", "2099-01-01"]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err == (
        "etl-balances run: --date 2099-01-01 is in the future: the latest report date is "
        f"today, {TODAY} (UTC)\n"
    )


def test_a_date_before_the_start_date_is_one_line_and_exit_2(
    config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["run", "--config", str(config), "--date", "2025-12-31"]) == 2
    assert capsys.readouterr().err == (
        f"etl-balances run: --date 2025-12-31 is before report.start_date 2026-01-01 ({config})\n"
    )


def test_a_backfill_past_today_is_refused_before_any_run(
    config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    end = TODAY + timedelta(days=2)
    args = ["backfill", "--config", str(config), "--start", str(TODAY), "--end", str(end)]
    assert main(args) == 2
    assert capsys.readouterr().err.startswith(f"etl-balances backfill: {end} is in the future")


@pytest.mark.parametrize("text", ["20261120", "2026-W47-5", "2026-11-20T00:00", "26-11-20"])
def test_a_date_in_another_spelling_is_refused(
    text: str, config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["run", "--config", str(config), "--date", text])
    assert exc.value.code == 2
    assert f"argument --date: not a date (YYYY-MM-DD): {text!r}" in capsys.readouterr().err


def test_redaction_replaces_whole_secret_values_only() -> None:
    assert redact("kraken_x: GET /x?key=k answered 401", ["k"]) == (
        "kraken_x: GET /x?key=*** answered 401"
    )
    assert redact("token abc123 and abc1234", ["abc123"]) == "token *** and abc1234"
    assert redact("Bearer s3cr3t/with+chars=", ["s3cr3t/with+chars="]) == "Bearer ***"


def test_broken_yaml_names_the_file_line_and_column(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("storage: x\nsources: [a, b\nreport:\n  x: 1\n", encoding="utf-8")
    assert main(["run", "--config", str(path), "--date", "2026-11-20"]) == 2
    assert capsys.readouterr().err == (
        f"config error: {path}:3:7: not valid YAML: expected ',' or ']', but got ':' "
        "(while parsing a flow sequence)\n"
    )


def test_a_misspelt_report_setting_names_the_file_line_and_field(
    config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config.write_text(
        config.read_text(encoding="utf-8") + "  schedul_utc: '02:00'\n", encoding="utf-8"
    )
    assert main(["run", "--config", str(config), "--date", "2026-11-20"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"config error: {config}:9: report: unknown field(s): schedul_utc (")
    assert "__init__" not in err
