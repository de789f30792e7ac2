"""Identity rules (spec §2) and currency normalisation (spec §1)."""

from __future__ import annotations

import uuid

#: uuid5(NAMESPACE_URL, "urn:settlement-balance-report"), fixed by the spec.
NAMESPACE = uuid.UUID("83cdf801-2fb2-5c54-a351-239c47006e82")
assert uuid.uuid5(uuid.NAMESPACE_URL, "urn:settlement-balance-report") == NAMESPACE

#: Venue aliases of ISO-style codes (Kraken's legacy X-prefixed names).
CCY_ALIASES: dict[str, str] = {"XBT": "BTC", "XDG": "DOGE"}


def derived_uuid(name: str) -> str:
    """Stable UUID for a venue object without one: uuid5(NS, name), lower-case text."""
    return str(uuid.uuid5(NAMESPACE, name))


def venue_uuid(value: str) -> str:
    """A venue-given UUID, kept as is but lower-cased (spec §2)."""
    return value.strip().lower()


def normalise_ccy(code: str) -> str:
    """Upper-case a venue currency code and map legacy aliases (`xbt` -> `BTC`)."""
    upper = code.strip().upper()
    return CCY_ALIASES.get(upper, upper)
