"""Alerts: a resource that posts to the Slack-compatible webhook, and the run-failure sensor.

The webhook URL is a secret (its path is the token), so it is read from the environment when
an alert is sent and never becomes resource config, metadata or a log line.
"""

import dagster as dg

from etl_project import alerts

FAILURE_SENSOR_NAME = "settlement_run_failure_alert"

#: Dagster's implicit job of all assets: what a run launched from the global asset graph, the
#: catalog or an asset's page is named (the UI picks the first of an asset's jobs in sort order,
#: and `__ASSET_JOB` sorts before `daily_settlement_report`).
ASSET_GRAPH_JOB = "__ASSET_JOB"


def job_label(job_name: str) -> str:
    """The run's real job name, and where such a run comes from when the name alone does not
    say (`__ASSET_JOB`: launched from the asset graph, not from the job or its schedule)."""
    if job_name == ASSET_GRAPH_JOB:
        return f"{job_name} (assets materialised from the asset graph)"
    return job_name


class AlertResource(dg.ConfigurableResource):  # type: ignore[misc]
    """Posts alerts to the webhook named by `webhook_env`; silent when that is unset."""

    webhook_env: str = alerts.DEFAULT_WEBHOOK_ENV

    def send(self, text: str, fields: dict[str, str] | None = None) -> bool:
        """Post `text`; False when no webhook is configured. Raises `AlertError` when the
        webhook cannot be reached (after one retry)."""
        url = alerts.webhook_url_from_env(self.webhook_env)
        if url is None:
            return False
        alerts.post_alert(url, text, fields=fields)
        return True


def _step_reason(event: dg.DagsterEvent) -> str:
    """The one line an operator needs from a failed step: a `dg.Failure`'s description, else
    the error's first line."""
    data = event.step_failure_data
    if data.user_failure_data is not None and data.user_failure_data.description:
        reason = data.user_failure_data.description
    elif data.error is not None:
        reason = data.error.message.strip().splitlines()[0]
    else:
        reason = "failed"
    return f"{event.step_key}: {reason}"


@dg.run_failure_sensor(
    name=FAILURE_SENSOR_NAME,
    default_status=dg.DefaultSensorStatus.RUNNING,
    # No `monitored_jobs`: every job of this code location, `__ASSET_JOB` (runs launched from
    # the asset graph) included, not only `daily_settlement_report`.
    description="Posts every failed run of every job of this code location (the daily job, "
    "the freshness job, runs launched from the asset graph), naming the run's job and each "
    "failed step's reason, to the webhook in $ETL_ALERT_WEBHOOK_URL.",
)
def run_failure_alert(context: dg.RunFailureSensorContext, alert: AlertResource) -> None:
    run = context.dagster_run
    reasons = [_step_reason(e) for e in context.get_step_failure_events()]
    if not reasons:  # failed outside a step (e.g. the run worker died): the run's own message
        reasons = [context.failure_event.message or "run failed"]
    partition = run.tags.get("dagster/partition")
    job = job_label(run.job_name)
    text = alerts.format_run_failure(run.run_id, job, partition, reasons)
    # An unreachable webhook (after post_alert's one retry) raises: Dagster marks the sensor's
    # tick failed with the error and moves the cursor on (no re-send); a delivered alert adds a
    # 'Sensor acted on run status' event to the failed run's log.
    if not alert.send(text, {"Job": job, "Report date": partition or "-"}):
        context.log.warning("run failed; no alert sent: $%s is not set", alert.webhook_env)
