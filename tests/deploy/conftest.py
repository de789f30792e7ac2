"""Fixtures of the deployment test: a fresh PostgreSQL database for the Dagster instance, the
RabbitMQ broker, and the `deploy` marker."""

from __future__ import annotations

import socket
import uuid
from collections.abc import Iterator

import pytest

from tests.conftest import PG_URL, _unavailable

BROKER_URL = "amqp://guest:guest@127.0.0.1:5672//"


def pytest_configure(config: pytest.Config) -> None:
    # Until pyproject.toml lists it (`--strict-markers`).
    config.addinivalue_line(
        "markers",
        "deploy: starts the production deployment (Dagster on PostgreSQL + daemon, Celery "
        "workers on RabbitMQ, S3 on moto); needs PostgreSQL and RabbitMQ (required when CI is set)",
    )


@pytest.fixture(scope="session")
def rabbitmq_url() -> str:
    """The broker of the Celery workers (RabbitMQ on 127.0.0.1:5672, guest/guest)."""
    try:
        with socket.create_connection(("127.0.0.1", 5672), timeout=2):
            pass
    except OSError as exc:
        _unavailable(f"RabbitMQ at 127.0.0.1:5672 ({type(exc).__name__})")
    return BROKER_URL


@pytest.fixture()
def instance_db(postgres_url: str) -> Iterator[str]:
    """A database of its own for the Dagster instance (runs, event logs, schedules); dropped
    afterwards. Yields its name."""
    import sqlalchemy as sa

    name = f"dagster_deploy_{uuid.uuid4().hex[:10]}"
    engine = sa.create_engine(PG_URL, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(sa.text(f'create database "{name}"'))
    try:
        yield name
    finally:
        with engine.connect() as conn:
            conn.execute(sa.text(f'drop database if exists "{name}" with (force)'))
        engine.dispose()
