"""Seeded, deterministic Saxo OpenAPI data for the simulator (see `simulator/saxo.py`).

Accounts are shaped like `GET /port/v1/accounts/me` entries and balances like seed 001's
example body. Amounts are exact `Decimal`s (2 fractional digits, written by `data.dumps`).
The third account (index `UNRELIABLE_INDEX`) is deterministically the unreliable one.
"""

from __future__ import annotations

import base64
import random
from decimal import Decimal, localcontext
from typing import Any

from etl_project.simulator import data

#: Index of the account whose balances are not reliably calculated (when it exists).
UNRELIABLE_INDEX = 2
UNRELIABLE = "ApproximatedPrice"
CURRENCIES = ("EUR", "USD", "DKK", "CHF", "GBP")
ACCOUNT_TYPES = ("Normal", "Normal", "Normal", "TaxSaving")


def _key(rng: random.Random) -> str:
    """A Saxo-style opaque key (`X1JlUyeXTMK3mBxzd-D2UA==`): 16 random bytes, URL-safe base64."""
    return base64.urlsafe_b64encode(rng.randbytes(16)).decode("ascii")


def saxo_accounts(rng: random.Random, count: int) -> list[dict[str, Any]]:
    """`accounts/me` entries: two accounts per client; odd ones in a named account group."""
    accounts: list[dict[str, Any]] = []
    client: dict[str, str] = {}
    for i in range(count):
        if i % 2 == 0:
            client = {"key": _key(rng), "id": str(rng.randint(1_000_000, 9_999_999)),
                      "group": _key(rng)}  # fmt: skip
        currency = CURRENCIES[i % len(CURRENCIES)]
        entry: dict[str, Any] = {
            "AccountGroupKey": client["key"] if i % 2 == 0 else client["group"],
            "AccountId": f"{client['id']}/{currency}{i}",
            "AccountKey": _key(rng),
            "AccountSubType": "None",
            "AccountType": ACCOUNT_TYPES[i % len(ACCOUNT_TYPES)],
            "Active": True,
            "ClientId": client["id"],
            "ClientKey": client["key"],
            "Currency": currency,
            "CurrencyDecimals": 2,
            "DisplayName": f"Account {i + 1}",
        }
        if i % 2 == 1:
            entry["AccountGroupName"] = "Hedging"
        accounts.append(entry)
    return accounts


def saxo_balances(rng: random.Random, index: int, currency: str) -> dict[str, Any]:
    """A balances body like seed 001's example; amounts exact `Decimal`s with 2 decimals."""
    with localcontext() as ctx:
        ctx.prec = 60
        cash = data.decimal(rng, 5_000_000, 2)
        blocked = Decimal(0) if index % 2 == 0 else data.decimal(rng, 10_000, 2)
        cost = -data.decimal(rng, 5_000, 2)
        margin = -data.decimal(rng, 500_000, 2)
        non_margin = data.decimal(rng, 1_000_000, 2)
        unrealized = data.decimal(rng, 100_000, 2, negative=rng.random() < 0.5)
        pending = [-data.decimal(rng, 500, 2), data.decimal(rng, 500, 2), Decimal(0)][index % 3]
        total = cash + non_margin + unrealized + cost + pending
    return {
        "CalculationReliability": UNRELIABLE if index == UNRELIABLE_INDEX else "Ok",
        "CashAvailableForTrading": cash - blocked,
        "CashBalance": cash,
        "CashBlocked": blocked,
        "ChangesScheduled": False,
        "ClosedPositionsCount": 0,
        "CollateralAvailable": cash - blocked + margin,
        "CostToClosePositions": cost,
        "Currency": currency,
        "CurrencyDecimals": 2,
        "MarginAvailableForTrading": cash - blocked + margin,
        "MarginUsedByCurrentPositions": margin,
        "NetPositionsCount": 0,
        "NonMarginPositionsValue": non_margin,
        "OpenPositionsCount": rng.randint(0, 12),
        "OrdersCount": rng.randint(0, 4),
        "TotalValue": total,
        "TransactionsNotBooked": pending,
        "UnrealizedPositionsValue": unrealized,
    }
