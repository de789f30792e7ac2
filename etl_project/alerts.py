"""Alerts to a Slack-compatible incoming webhook (Slack, Mattermost, Teams' Slack shim, …).

The webhook URL embeds a secret token, so it never appears in a message, a log line or an
exception chain: only its host does. One retry on a 5xx or a connection failure, then an
`AlertError` with a one-line message.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import urlparse

import requests

from etl_project.errors import EtlError

log = logging.getLogger(__name__)

DEFAULT_WEBHOOK_ENV = "ETL_ALERT_WEBHOOK_URL"
#: Slack's limits: a section text holds 3000 characters, a field 2000, a section 10 fields.
MAX_TEXT = 3000
MAX_FIELD = 2000
MAX_FIELDS = 10
MAX_REASON = 500


class AlertError(EtlError):
    """An alert could not be delivered; the message names the webhook host, never the URL."""


def webhook_url_from_env(var: str = DEFAULT_WEBHOOK_ENV) -> str | None:
    """The webhook URL from environment variable `var`; None when unset or blank."""
    value = os.environ.get(var, "").strip()
    return value or None


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def alert_payload(text: str, fields: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The JSON body `post_alert` sends: `text` (notification fallback) and Block Kit blocks."""
    blocks: list[dict[str, Any]] = [
        {"type": "section", "text": {"type": "mrkdwn", "text": _clip(text, MAX_TEXT)}}
    ]
    if fields:
        items = list(fields.items())[:MAX_FIELDS]
        blocks.append(
            {
                "type": "section",
                "fields": [
                    {"type": "mrkdwn", "text": _clip(f"*{key}*\n{value}", MAX_FIELD)}
                    for key, value in items
                ],
            }
        )
    return {"text": text, "blocks": blocks}


def post_alert(
    webhook_url: str,
    text: str,
    *,
    fields: Mapping[str, str] | None = None,
    timeout: float = 5.0,
    retry_delay: float = 1.0,
) -> None:
    """POST `text` (and optional `fields`) to a Slack-compatible webhook.

    Retries once on a 5xx, a timeout or a connection error (after `retry_delay` seconds);
    raises `AlertError` when the final attempt fails or the webhook answers another non-2xx.
    """
    parsed = urlparse(webhook_url)
    host = parsed.hostname
    if parsed.scheme not in ("http", "https") or not host:
        raise AlertError("alert webhook URL is not a valid http(s) URL")
    body = json.dumps(alert_payload(text, fields), ensure_ascii=False).encode("utf-8")
    headers = {"Content-Type": "application/json; charset=utf-8"}
    problem = ""
    for attempt in (1, 2):
        try:
            response = requests.post(webhook_url, data=body, headers=headers, timeout=timeout)
        except requests.RequestException as exc:
            # str(exc) carries the full URL: keep only the exception's class name.
            problem = f"{type(exc).__name__}"
            retry = isinstance(exc, requests.ConnectionError | requests.Timeout)
        else:
            status = response.status_code
            response.close()
            if 200 <= status < 300:
                if attempt > 1:
                    log.info("alert delivered to %s on retry", host)
                return
            problem = f"HTTP {status}"
            retry = status >= 500
        if not retry or attempt == 2:
            break
        log.warning("alert to %s failed (%s); retrying once", host, problem)
        time.sleep(retry_delay)
    tries = "after a retry" if attempt == 2 else "no retry"
    log.error("alert to %s failed: %s (%s)", host, problem, tries)
    raise AlertError(f"alert to webhook host {host} failed: {problem} ({tries})")


def _one_line(text: str, limit: int = MAX_REASON) -> str:
    return _clip(" ".join(text.split()), limit)


def format_run_failure(run_id: str, job: str, partition: str | None, reasons: Sequence[str]) -> str:
    """A run-failure alert: a one-line headline, then one bullet per reason."""
    where = f" for {partition}" if partition else ""
    headline = f":rotating_light: Run failed: {job}{where} (run {run_id})"
    lines = [f"• {_one_line(r)}" for r in reasons if r.strip()] or ["• no reason given"]
    return "\n".join([headline, *lines])


def format_check_failure(check: str, asset: str, partition: str | None, summary: str) -> str:
    """A failed-check alert: a one-line headline naming check, asset and partition, then the
    check's summary."""
    where = f" for {partition}" if partition else ""
    headline = f":warning: Check failed: {check} on {asset}{where}"
    return f"{headline}\n{_one_line(summary, MAX_TEXT - len(headline) - 1)}"
