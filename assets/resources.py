"""Resources: the outside world (config with venue credentials, object store, warehouse).

Values that may hold secrets keep their `${VAR}` form until a run opens them, so nothing
secret is ever part of the resource config Dagster stores and shows.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

import dagster as dg

from etl_project.config import AppConfig, load_config, substitute_env
from etl_project.sinks.object_store import ObjectStore, open_store
from etl_project.sinks.warehouse import Warehouse


class EtlConfigResource(dg.ConfigurableResource):  # type: ignore[misc]
    """The operator's YAML config; loaded and validated (with `${VAR}`) when a run starts."""

    config_path: str

    def load(self) -> AppConfig:
        return load_config(self.config_path)


class ObjectStoreResource(dg.ConfigurableResource):  # type: ignore[misc]
    """Local folder or `s3://bucket/prefix` (boto3; `AWS_ENDPOINT_URL` honoured)."""

    location: str

    def open(self) -> ObjectStore:
        return open_store(substitute_env(self.location, os.environ, "storage"))


class WarehouseResource(dg.ConfigurableResource):  # type: ignore[misc]
    """Any SQLAlchemy URL: DuckDB by default, PostgreSQL in production."""

    url: str

    def open(self) -> Warehouse:
        return Warehouse(substitute_env(self.url, os.environ, "warehouse"))

    @contextmanager
    def session(self) -> Iterator[Warehouse]:
        """An open warehouse whose tables exist (created on first use), disposed afterwards."""
        warehouse = self.open()
        try:
            warehouse.ensure_schema()
            yield warehouse
        finally:
            warehouse.dispose()
