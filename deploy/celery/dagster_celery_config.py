"""Settings of the Celery workers that execute this project's steps (dagster-celery).

Start a worker with this folder on PYTHONPATH and Dagster's own Celery app:

    PYTHONPATH=deploy/celery celery -A dagster_celery.app worker -Q dagster -n w1@%h \
        --concurrency 2 --prefetch-multiplier 1 --without-gossip --without-mingle -l INFO

`dagster_celery.app` loads its defaults, then this module (`dagster_celery_config`, found on
PYTHONPATH) over them. Why not `dagster-celery worker start -y celery.yaml`: that command
writes the resolved broker URL, password included, into a file under $DAGSTER_HOME; here the
broker URL is read from the environment when the worker starts and never written anywhere.

The producer side (the run worker submitting the steps) is configured in
assets/deployment.py; broker and backend must match.
"""

from os import environ as _environ

#: e.g. amqp://etl:<password>@rabbitmq.internal:5672/etl (RabbitMQ). Required.
broker_url = _environ["DAGSTER_CELERY_BROKER_URL"]
#: Step results travel back to the run worker over the broker (dagster-celery's default).
result_backend = "rpc://"

# A step's message is acknowledged when the step has finished, not when a worker takes it: if
# the worker dies mid-step (SIGKILL, OOM, machine lost), RabbitMQ hands the message to another
# worker and the step runs again there, in the same run. Every step of this project may run
# again: snapshots and staging are overwritten, and a publish either committed (the re-run
# publishes the same rows again as a new version; the date's lock in PostgreSQL keeps the two
# apart) or did not (the re-run publishes). docs/deploy.md, "When a worker dies".
task_acks_late = True
task_reject_on_worker_lost = True
# One message per worker process at a time: a long step never holds a second one hostage.
worker_prefetch_multiplier = 1
# A worker that lost the broker cancels its running steps (their messages go back to the queue
# and another worker runs them) instead of finishing them unacknowledged, twice.
worker_cancel_long_running_tasks_on_connection_loss = True
broker_connection_retry_on_startup = True
# Detect a dead broker connection within a minute (RabbitMQ also drops a silent client).
broker_heartbeat = 30
# Nothing reads a step result after its run has taken it.
result_expires = 3600
