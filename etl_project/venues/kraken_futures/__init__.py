"""The kraken futures venue: `connector` (fetch + parse) and its parts."""

from etl_project.venues.kraken_futures.connector import KrakenFuturesConnector

__all__ = ["KrakenFuturesConnector"]
