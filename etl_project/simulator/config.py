"""What the simulator serves and its fixed test credentials, importable without the server."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from dataclasses import dataclass

__all__ = [
    "CLI_OPTIONS",
    "DEFAULT_KRAKEN_API_KEY",
    "DEFAULT_KRAKEN_API_SECRET",
    "SimulatorConfig",
    "add_cli_options",
]

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


#: Fields `etl-balances simulate` takes as options (`--saxo-accounts N`, ...): how much each
#: venue serves and how fast Saxo may be read, e.g. production's two-minute Saxo source with
#: `--saxo-accounts 300 --saxo-page-size 100 --saxo-rate-limit-per-minute 120`.
#: Field -> (lowest value allowed, what it is).
CLI_OPTIONS: dict[str, tuple[int, str]] = {
    "kraken_subaccounts": (0, "Kraken Futures subaccounts"),
    "saxo_accounts": (0, "Saxo accounts"),
    "saxo_page_size": (1, "Saxo accounts per page of the account listing"),
    "saxo_rate_limit_per_minute": (1, "Saxo requests allowed per rolling minute (then 429)"),
    "platform_accounts": (0, "platform accounts (the last one archived)"),
    "settlement_report_accounts": (0, "users in the settlement platform's report"),
}


def add_cli_options(parser: argparse.ArgumentParser) -> None:
    """One option per `CLI_OPTIONS` field, defaulting to `SimulatorConfig`'s own value (so the
    command and the tests' simulator serve the same data unless told otherwise)."""
    defaults = SimulatorConfig()
    for name, (low, what) in CLI_OPTIONS.items():
        default = getattr(defaults, name)
        parser.add_argument(
            "--" + name.replace("_", "-"),
            type=_at_least(low),
            default=default,
            metavar="N",
            help=f"{what} (default: {default})",
        )


def _at_least(low: int) -> Callable[[str], int]:
    """An argparse type: a whole number of at least `low` (a rate limit of 0 would answer
    every request with 429; a negative count means nothing)."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"must be at least {low}: {text}")
        return value

    return parse
