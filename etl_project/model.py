"""The records every layer shares: a venue's balance, a rejected record, an account's status in
a snapshot, a parsed snapshot. Plain data; this module imports nothing of the project, so the
venues, the report, the sinks and the stages can all use it without importing each other."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import pyarrow as pa


@dataclass(frozen=True)
class Balance:
    """One (account wallet, currency) balance as a venue gave it, before report defaults.

    `amounts` holds only the report amount columns the venue fills; all others are 0.
    """

    user_uuid: str
    account_uuid: str
    account_group_uuid: str
    account_group: str
    user: str
    email: str | None
    sub_main_type: str
    ccy: str
    venue_account_id: str
    wallet: str
    amounts: Mapping[str, Decimal]


@dataclass(frozen=True)
class Rejected:
    """A record that cannot go into the report, with the reason; lands in quarantine."""

    source: str
    check: str
    reason: str
    record: Mapping[str, Any]


@dataclass(frozen=True)
class AccountStatus:
    """Completeness of one venue account in one snapshot (expected/received/failed)."""

    account_id: str
    status: str  # received | failed
    reason: str | None = None
    #: The venue's display name of the account (e.g. `okx-desk`), where the venue gives one.
    name: str | None = None


@dataclass
class ParsedSnapshot:
    """What `parse` returns: balances as Arrow (BALANCES_SCHEMA), rejects, completeness."""

    balances: pa.Table
    rejected: list[Rejected] = field(default_factory=list)
    accounts: list[AccountStatus] = field(default_factory=list)
    extra_tables: dict[str, pa.Table] = field(default_factory=dict)
