"""Config (spec §4): one YAML file, ${VAR} from the environment, validated up front."""

from __future__ import annotations

from pathlib import Path

import pytest

from etl_project.config import Secret, load_config, read_layout
from etl_project.errors import ConfigError

SECRET = "c2VjcmV0LWJ5dGVz"  # base64 of b"secret-bytes"

GOOD = """\
storage: ./lake
warehouse: duckdb:///./wh.duckdb
sources:
  - name: kraken_main
    kind: kraken_futures
    base_url: https://futures.kraken.com/derivatives/api/v3
    api_key: ${KF_KEY}
    api_secret: ${KF_SECRET}   # a trailing comment
    account_group: Desk A
"""
ENV = {"KF_KEY": "the-key", "KF_SECRET": SECRET}


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_good_config_substitutes_variables(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, GOOD), env=ENV)
    source = config.source("kraken_main")
    assert source.kind == "kraken_futures"
    assert source.account_group == "Desk A"
    assert isinstance(source.settings.api_secret, Secret)
    assert source.settings.api_secret.reveal() == SECRET
    assert SECRET not in repr(config)  # secrets never show in reprs (logs, exceptions)
    assert config.storage == "./lake"
    assert config.report.live_cutoff_hours == 6.0


def test_missing_variable_is_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"environment variable\(s\) not set: KF_SECRET"):
        load_config(write(tmp_path, GOOD), env={"KF_KEY": "k"})


def test_commented_out_variable_is_not_required(tmp_path: Path) -> None:
    text = GOOD + "    # refresh_token: ${NOT_SET}\n"
    load_config(write(tmp_path, text), env=ENV)


def test_unknown_kind(tmp_path: Path) -> None:
    text = GOOD.replace("kind: kraken_futures", "kind: kraken_spot")
    with pytest.raises(
        ConfigError, match=r"sources\[0\] \(kraken_main\): unknown kind 'kraken_spot'"
    ):
        load_config(write(tmp_path, text), env=ENV)


def test_duplicate_source_name(tmp_path: Path) -> None:
    second = GOOD.split("sources:\n", 1)[1]
    with pytest.raises(ConfigError, match="duplicate source name 'kraken_main'"):
        load_config(write(tmp_path, GOOD + second), env=ENV)


@pytest.mark.parametrize("url", ["futures.kraken.com/api", "ftp://x/y", "https://"])
def test_bad_url(tmp_path: Path, url: str) -> None:
    text = GOOD.replace("https://futures.kraken.com/derivatives/api/v3", url)
    with pytest.raises(ConfigError, match="not a valid http/https URL"):
        load_config(write(tmp_path, text), env=ENV)


def test_unknown_field_and_missing_field(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="unknown field\\(s\\) for kind 'kraken_futures': apikey"):
        load_config(write(tmp_path, GOOD + "    apikey: x\n"), env=ENV)
    text = GOOD.replace("    api_key: ${KF_KEY}\n", "")
    with pytest.raises(ConfigError, match="missing required field 'api_key'"):
        load_config(write(tmp_path, text), env=ENV)


def test_bad_report_settings(tmp_path: Path) -> None:
    text = GOOD + "report:\n  schedule_utc: '25:00'\n"
    with pytest.raises(ConfigError, match="schedule_utc must be HH:MM"):
        load_config(write(tmp_path, text), env=ENV)


def test_layout_needs_no_secrets(tmp_path: Path) -> None:
    layout = read_layout(write(tmp_path, GOOD))
    assert [(s.name, s.kind) for s in layout.sources] == [("kraken_main", "kraken_futures")]


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read config"):
        load_config(tmp_path / "nope.yaml", env=ENV)
