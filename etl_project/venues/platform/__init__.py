"""The platform venue: `connector` (fetch + parse) and its parts."""

from etl_project.venues.platform.connector import PlatformConnector

__all__ = ["PlatformConnector"]
