"""Webhook alerts against a real local HTTP receiver: exact JSON, one retry, no leaked URL."""

from __future__ import annotations

import json
import logging

import pytest

from etl_project.alerts import (
    AlertError,
    format_check_failure,
    format_run_failure,
    post_alert,
    webhook_url_from_env,
)
from etl_project.errors import EtlError
from tests.conftest import WEBHOOK_TOKEN_PATH, Receiver

TOKEN_PATH = WEBHOOK_TOKEN_PATH


def test_posts_exact_slack_json(receiver: Receiver) -> None:
    post_alert(
        receiver.url,
        "Run failed: déjà vu",
        fields={"job": "settlement_report", "partition": "2024-03-31"},
        retry_delay=0,
    )
    assert len(receiver.posts) == 1
    path, content_type, body = receiver.posts[0]
    assert path == TOKEN_PATH
    assert content_type == "application/json; charset=utf-8"
    assert json.loads(body.decode("utf-8")) == {
        "text": "Run failed: déjà vu",
        "blocks": [
            {"type": "section", "text": {"type": "mrkdwn", "text": "Run failed: déjà vu"}},
            {
                "type": "section",
                "fields": [
                    {"type": "mrkdwn", "text": "*job*\nsettlement_report"},
                    {"type": "mrkdwn", "text": "*partition*\n2024-03-31"},
                ],
            },
        ],
    }


def test_without_fields_only_the_text_section(receiver: Receiver) -> None:
    post_alert(receiver.url, "hello", retry_delay=0)
    assert json.loads(receiver.posts[0][2]) == {
        "text": "hello",
        "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": "hello"}}],
    }


def test_500_then_200_is_delivered_on_the_retry(receiver: Receiver) -> None:
    receiver.statuses = [500]
    post_alert(receiver.url, "retry me", retry_delay=0)
    assert [json.loads(b)["text"] for _, _, b in receiver.posts] == ["retry me", "retry me"]


def test_always_500_raises_without_the_url(
    receiver: Receiver, caplog: pytest.LogCaptureFixture
) -> None:
    receiver.statuses = [500, 503, 500]
    with (
        caplog.at_level(logging.DEBUG, logger="etl_project.alerts"),
        pytest.raises(AlertError) as info,
    ):
        post_alert(receiver.url, "x", retry_delay=0)
    message = str(info.value)
    assert message == "alert to webhook host 127.0.0.1 failed: HTTP 503 (after a retry)"
    assert isinstance(info.value, EtlError)
    assert len(receiver.posts) == 2
    assert "sEcReT" not in caplog.text and "/services/" not in caplog.text
    assert "127.0.0.1" in caplog.text


def test_4xx_is_not_retried(receiver: Receiver) -> None:
    receiver.statuses = [404]
    with pytest.raises(AlertError, match=r"^alert to webhook host 127.0.0.1 failed: HTTP 404"):
        post_alert(receiver.url, "x", retry_delay=0)
    assert len(receiver.posts) == 1


def test_connection_refused_retried_then_raises_without_the_url() -> None:
    import socket

    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"http://127.0.0.1:{port}{TOKEN_PATH}"
    with pytest.raises(AlertError) as info:
        post_alert(url, "x", timeout=1, retry_delay=0)
    assert str(info.value) == (
        "alert to webhook host 127.0.0.1 failed: ConnectionError (after a retry)"
    )
    assert info.value.__cause__ is None and info.value.__context__ is None


def test_invalid_url_is_refused_without_echoing_it() -> None:
    with pytest.raises(AlertError) as info:
        post_alert("not-a-url/sEcReT", "x")
    assert "sEcReT" not in str(info.value)


def test_webhook_url_from_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ETL_ALERT_WEBHOOK_URL", raising=False)
    assert webhook_url_from_env() is None
    monkeypatch.setenv("ETL_ALERT_WEBHOOK_URL", "  ")
    assert webhook_url_from_env() is None
    monkeypatch.setenv("MY_HOOK", " https://hooks.example/x \n")
    assert webhook_url_from_env("MY_HOOK") == "https://hooks.example/x"


def test_format_run_failure() -> None:
    text = format_run_failure(
        "abc123", "settlement_report", "2024-03-31", ["kraken: HTTP 503\n  twice", " "]
    )
    assert text == (
        ":rotating_light: Run failed: settlement_report for 2024-03-31 (run abc123)\n"
        "• kraken: HTTP 503 twice"
    )
    assert format_run_failure("r", "job", None, []) == (
        ":rotating_light: Run failed: job (run r)\n• no reason given"
    )


def test_format_check_failure() -> None:
    assert format_check_failure("movement", "report", "2024-03-31", "2 of 9 pairs moved") == (
        ":warning: Check failed: movement on report for 2024-03-31\n2 of 9 pairs moved"
    )
    assert format_check_failure("freshness", "report", None, "late") == (
        ":warning: Check failed: freshness on report\nlate"
    )
