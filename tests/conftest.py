"""Shared fixtures: the venue simulator, moto's standalone S3 server, PostgreSQL.

Services that CI must provide fail loudly when `CI` is set instead of skipping.
"""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

SEEDS = Path(__file__).resolve().parents[1].parent / "shared" / "seeds"
FIXTURES = Path(__file__).resolve().parent / "fixtures"
PG_URL = os.environ.get(
    "ETL_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
IN_CI = bool(os.environ.get("CI"))


def _unavailable(what: str) -> None:
    if IN_CI:
        pytest.fail(f"{what} is required in CI but is not reachable", pytrace=False)
    pytest.skip(f"{what} not reachable")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@pytest.fixture(scope="session")
def moto_server() -> Iterator[str]:
    """moto's standalone server, spoken to over real HTTP. Yields its endpoint URL."""
    try:
        from moto.server import ThreadedMotoServer
    except ImportError:
        _unavailable("moto[server]")
        raise
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()


@pytest.fixture()
def s3_location(moto_server: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """A fresh bucket on the moto server; AWS_* env points boto3 at it. Yields s3://bucket/prefix."""
    import boto3

    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_server)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    bucket = f"etl-{uuid.uuid4().hex[:12]}"
    boto3.client("s3", endpoint_url=moto_server).create_bucket(Bucket=bucket)
    return f"s3://{bucket}/lake"


@pytest.fixture(scope="session")
def postgres_url() -> str:
    """SQLAlchemy URL of the test PostgreSQL; fails in CI when it is down."""
    import sqlalchemy as sa

    try:
        engine = sa.create_engine(PG_URL)
        with engine.connect() as conn:
            conn.execute(sa.text("select 1"))
        engine.dispose()
    except Exception as exc:
        _unavailable(f"PostgreSQL at {PG_URL} ({type(exc).__name__})")
    return PG_URL


@pytest.fixture()
def pg_schema(postgres_url: str) -> Iterator[str]:
    """A throw-away PostgreSQL schema; yields a URL whose search_path is that schema."""
    import sqlalchemy as sa

    schema = f"t_{uuid.uuid4().hex[:10]}"
    engine = sa.create_engine(postgres_url)
    with engine.begin() as conn:
        conn.execute(sa.text(f"create schema {schema}"))
    try:
        yield f"{postgres_url}?options=-csearch_path%3D{schema}"
    finally:
        with engine.begin() as conn:
            conn.execute(sa.text(f"drop schema {schema} cascade"))
        engine.dispose()


@pytest.fixture()
def simulator() -> Iterator[object]:
    """A running venue simulator on 127.0.0.1 with deterministic data (seed 7)."""
    from etl_project.simulator import Simulator, SimulatorConfig

    sim = Simulator(SimulatorConfig(seed=7))
    sim.start()
    try:
        yield sim
    finally:
        sim.stop()
