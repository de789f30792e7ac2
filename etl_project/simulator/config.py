"""What the simulator serves and its fixed test credentials, importable without the server."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["DEFAULT_KRAKEN_API_KEY", "DEFAULT_KRAKEN_API_SECRET", "SimulatorConfig"]

#: Fixed simulator credentials (test data, not secrets of any real account).
DEFAULT_KRAKEN_API_KEY = "sim-kraken-futures-api-key"
DEFAULT_KRAKEN_API_SECRET = (
    "wpLLtJYEpwT1u5wzZIHx9RDl13CoOh1+Yls2EsPRY5G9tDv/8PNM0PQDlZEXAYxCLzQc31udkiwnXR8N57uUYw=="
)


@dataclass(frozen=True)
class SimulatorConfig:
    """How the simulator listens and what it serves; same seed -> same data."""

    seed: int = 7
    host: str = "127.0.0.1"
    port: int = 0
    kraken_subaccounts: int = 3
    kraken_api_key: str = DEFAULT_KRAKEN_API_KEY
    kraken_api_secret: str = DEFAULT_KRAKEN_API_SECRET
    # Saxo OpenAPI (etl_project/simulator/saxo.py)
    saxo_accounts: int = 3
    saxo_page_size: int = 2  # small, so the default data exercises __next paging
    saxo_rate_limit_per_minute: int = 120
    saxo_access_token: str = "sim-saxo-access-token"
    saxo_client_id: str = "sim-saxo-client"
    saxo_client_secret: str = "sim-saxo-client-secret"
    saxo_refresh_token: str = "sim-saxo-refresh-token"
    # Multi-exchange platform (etl_project/simulator/platform.py)
    platform_accounts: int = 4  # one of them archived
    platform_failed_accounts: int = 1  # listed in errors[] of the cached-balance endpoint
    platform_api_token: str = "sim-platform-api-token"
    # Settlement platform report files (etl_project/simulator/settlement_report.py)
    settlement_report_accounts: int = 3
    settlement_report_api_token: str = "sim-settlement-report-token"
    settlement_report_first_date: str = "2020-01-01"
