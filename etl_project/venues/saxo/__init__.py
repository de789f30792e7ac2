"""The saxo venue: `connector` (fetch + parse) and its parts."""

from etl_project.venues.saxo.connector import SaxoConnector

__all__ = ["SaxoConnector"]
