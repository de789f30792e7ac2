"""Seeded, deterministic venue data for the simulator, and an exact JSON writer.

Numbers are carried as `Decimal` or as `Num` (the exact JSON text, e.g. `3.46e-9`) and written
verbatim, never through a binary float, so the simulator can send the awkward values real
venues send: exponent form, 19 fractional digits, negative margins, zeros.
Everything derives from the `random.Random` passed in: same seed, same bytes.
"""

from __future__ import annotations

import json
import random
import re
import uuid
from decimal import Context, Decimal, localcontext
from typing import Any

_JSON_NUMBER = re.compile(r"-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?")


class Num(str):
    """A JSON number given as its exact text (`"3.46e-9"`), written without quotes."""

    def __new__(cls, text: str) -> Num:
        if not _JSON_NUMBER.fullmatch(text):
            raise ValueError(f"{text!r} is not a JSON number")
        return super().__new__(cls, text)


def plain(value: Decimal) -> str:
    """Plain decimal text without exponent or padding zeros (`5.77`, `0`, `0.00000000346`)."""
    text = format(value, "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text


def dumps(value: Any) -> str:
    """JSON text with `Decimal`/`Num` numbers written exactly; floats are refused."""
    if isinstance(value, Num):
        return str.__str__(value)
    if isinstance(value, Decimal):
        if not value.is_finite():
            raise ValueError(f"{value} cannot be written as JSON")
        return plain(value)
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, dict):
        items = (f"{json.dumps(str(k), ensure_ascii=False)}: {dumps(v)}" for k, v in value.items())
        return "{" + ", ".join(items) + "}"
    if isinstance(value, list | tuple):
        return "[" + ", ".join(dumps(v) for v in value) + "]"
    raise TypeError(f"cannot write {type(value).__name__} as exact JSON")


# --- primitives ------------------------------------------------------------------------------


def seeded_uuid(rng: random.Random) -> str:
    """A random-looking (version 4) UUID drawn from `rng`."""
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def _digits(rng: random.Random, count: int) -> str:
    """`count` random digits, the last one non-zero (no padding zeros in venue text)."""
    if count <= 0:
        return ""
    return "".join(str(rng.randint(0, 9)) for _ in range(count - 1)) + str(rng.randint(1, 9))


def decimal(
    rng: random.Random, whole_max: int, frac_digits: int, negative: bool = False
) -> Decimal:
    """`whole.frac` with exactly `frac_digits` fractional digits (last non-zero)."""
    whole = rng.randint(0, whole_max)
    text = f"{whole}.{_digits(rng, frac_digits)}" if frac_digits > 0 else str(whole)
    return Decimal(f"-{text}" if negative else text)


def tiny(rng: random.Random) -> Num:
    """A dust amount in exponent form as JavaScript writes it: `3.46e-9`."""
    return Num(f"{rng.randint(1, 9)}.{rng.randint(0, 9)}{rng.randint(1, 9)}e-{rng.randint(7, 9)}")


# --- Kraken Futures ----------------------------------------------------------------------------

KRAKEN_HOLDING = ("gbp", "bch", "xrp", "usd", "eth", "usdt", "ltc", "usdc", "xbt")
KRAKEN_FUTURES = ("f-xrp:usd", "f-eth:usd", "f-xbt:usd", "f-ltc:usd", "f-xrp:xbt", "f-bch:usd")
KRAKEN_FLEX = ("eth", "usdt", "gbp", "xbt", "usdc", "usd")
#: USD price and collateral haircut per currency (fixed: only amounts are drawn).
_PRICE = {
    "gbp": ("1.27", "0.01"), "bch": ("310.5", "0.1"), "xrp": ("0.62", "0.1"),
    "usd": ("1", "0"), "eth": ("3293.15", "0.0625"), "usdt": ("1", "0.02"),
    "ltc": ("84.2", "0.1"), "usdc": ("1", "0.02"), "xbt": ("67250.5", "0.05"),
}  # fmt: skip
_FIRST = ("Ada", "Grace", "Alan", "Edsger", "Barbara", "Donald", "Frances", "Ken", "Radia")
_LAST = ("Lovelace", "Hopper", "Turing", "Dijkstra", "Liskov", "Knuth", "Allen", "Perlman")
_EXACT = Context(prec=80)


def _holding_amount(rng: random.Random, currency: str) -> Decimal | Num:
    if currency == "xbt":
        return tiny(rng)  # always one exponent-form value
    kind = rng.choices(("zero", "decimal", "tiny", "whole"), weights=(35, 45, 10, 10))[0]
    if kind == "zero":
        return Decimal(0)
    if kind == "tiny":
        return tiny(rng)
    if kind == "whole":
        return Decimal(rng.randint(1, 5000))
    return decimal(rng, 20000, rng.randint(1, 10))


def _futures_margin(rng: random.Random, name: str) -> Decimal | Num:
    if name == "f-xbt:usd":  # negative, 19 fractional digits (like the seed's -0.000905…)
        return Decimal(f"-0.000{_digits(rng, 16)}")
    if name == "f-xrp:xbt":
        return tiny(rng)
    kind = rng.choices(("zero", "decimal", "negative"), weights=(15, 70, 15))[0]
    if kind == "zero":
        return Decimal(0)
    return decimal(rng, 20000, rng.randint(11, 17), negative=kind == "negative")


def _flex_account(rng: random.Random) -> dict[str, Any]:
    currencies: list[dict[str, Any]] = []
    value_sum = collateral_sum = Decimal(0)
    with localcontext(_EXACT):
        for currency in KRAKEN_FLEX:
            if currency != "eth" and rng.random() < 0.6:
                zero = Decimal(0)
                currencies.append(
                    {"currency": currency, "quantity": zero, "value": zero,
                     "collateral": zero, "available": zero}
                )  # fmt: skip
                continue
            price, haircut = (Decimal(x) for x in _PRICE[currency])
            quantity = decimal(rng, 50 if currency in ("eth", "xbt") else 20000, rng.randint(1, 4))
            value = (quantity * price).quantize(Decimal("0.001"))
            collateral = (value * (1 - haircut)).quantize(Decimal("0.00000001"))
            available = quantity - Decimal(f"0.000{_digits(rng, 14)}")  # 17 fractional digits
            value_sum += value
            collateral_sum += collateral
            currencies.append(
                {"currency": currency, "quantity": quantity, "value": value,
                 "collateral": collateral, "available": available}
            )  # fmt: skip
        initial = decimal(rng, 500, 2)
        pnl = decimal(rng, 300, 2, negative=rng.random() < 0.5)
        funding = decimal(rng, 5, 4, negative=rng.random() < 0.5)
        unrealized = pnl + funding
        balance_value = value_sum.quantize(Decimal("0.01"))
        collateral_value = collateral_sum.quantize(Decimal("0.01"))
        equity = collateral_value + unrealized
    return {
        "currencies": currencies,
        "initialMargin": initial,
        "initialMarginWithOrders": initial + decimal(rng, 50, 2),
        "maintenanceMargin": (initial / 2).quantize(Decimal("0.01")),
        "balanceValue": balance_value,
        "portfolioValue": balance_value + unrealized,
        "collateralValue": collateral_value,
        "pnl": pnl,
        "unrealizedFunding": funding,
        "totalUnrealized": unrealized,
        "totalUnrealizedAsMargin": unrealized,
        "availableMargin": equity - initial,  # negative when the margin exceeds the equity
        "marginEquity": equity,
    }


def kraken_subaccounts(rng: random.Random, count: int) -> dict[str, Any]:
    """A `/derivatives/api/v3/subaccounts` success body shaped like seed 003's example.

    `serverTime` is left empty for the server to fill at answer time.
    """
    master = seeded_uuid(rng)
    subaccounts: list[dict[str, Any]] = []
    for i in range(count):
        uid = seeded_uuid(rng)
        first, last = rng.choice(_FIRST), rng.choice(_LAST)
        sub: dict[str, Any] = {
            "holdingAccounts": [
                {"currency": c, "amount": _holding_amount(rng, c)} for c in KRAKEN_HOLDING
            ],
            "futuresAccounts": [
                {"name": n, "availableMargin": _futures_margin(rng, n)} for n in KRAKEN_FUTURES
            ],
            "flexAccount": _flex_account(rng),
        }
        if i % 2 == 1:
            sub["name"] = f"{first.lower()}-desk-{i}"
        sub["fullName"] = f"{first} {last}"
        sub["email"] = "email redacted" if i % 3 == 2 else f"{first}.{last}{i}@example.com".lower()
        sub["accountUid"] = uid
        subaccounts.append(sub)
    return {
        "result": "success",
        "serverTime": "",
        "masterAccountUid": master,
        "subaccounts": subaccounts,
    }
