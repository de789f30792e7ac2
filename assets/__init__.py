"""Dagster code location for the daily settlement balance report (a thin shell over etl_project)."""

from assets.definitions import build_definitions, defs

__all__ = ["build_definitions", "defs"]
