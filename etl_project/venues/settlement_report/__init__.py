"""The settlement report venue: `connector` (fetch + parse) and its parts."""

from etl_project.venues.settlement_report.connector import SettlementReportConnector

__all__ = ["SettlementReportConnector"]
