"""Venue connectors and their registry: a new venue is its subpackage plus one line below."""

from __future__ import annotations

from etl_project.errors import ConfigError
from etl_project.venues.base import Connector
from etl_project.venues.kraken_futures.connector import KrakenFuturesConnector
from etl_project.venues.platform.connector import PlatformConnector
from etl_project.venues.saxo.connector import SaxoConnector
from etl_project.venues.settlement_report.connector import SettlementReportConnector

#: kind (as written in the config) -> connector class.
CONNECTORS: dict[str, type[Connector]] = {
    KrakenFuturesConnector.kind: KrakenFuturesConnector,
    PlatformConnector.kind: PlatformConnector,
    SaxoConnector.kind: SaxoConnector,
    SettlementReportConnector.kind: SettlementReportConnector,
}


def connector_for(kind: str, where: str = "config") -> type[Connector]:
    """The connector class for a config `kind`; an unknown kind is a clear `ConfigError`."""
    try:
        return CONNECTORS[kind]
    except KeyError:
        known = ", ".join(sorted(CONNECTORS))
        raise ConfigError(f"{where}: unknown kind {kind!r} (known: {known})") from None
