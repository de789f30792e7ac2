"""The venue seam: what a connector must provide, and the canonical balance it maps to.

A connector has two halves kept apart on purpose:
- `fetch` talks to the venue through the shared `HttpClient` (every response is recorded);
- `parse` is a pure function from a `RawSnapshot` to canonical balances, so live runs and
  backfills from stored snapshots go through exactly the same mapping.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any, ClassVar

import pyarrow as pa

from etl_project.http import HttpClient
from etl_project.model import AccountStatus, Balance, ParsedSnapshot, Rejected
from etl_project.raw import RawSnapshot
from etl_project.report.columns import (
    AMOUNT_COLUMNS,
    AMOUNT_SCALE,
    BALANCES_SCHEMA,
    REPORT_COLUMNS,
    TRACE_COLUMNS,
)
from etl_project.settings import SourceConfig

__all__ = [
    "AccountStatus",
    "Balance",
    "Connector",
    "ParsedSnapshot",
    "Rejected",
    "amount_problem",
    "balances_table",
]

_MAX_INTEGER_DIGITS = 38 - AMOUNT_SCALE


class Connector(ABC):
    """Base of every venue connector. Subclasses set `kind` and `settings_type`."""

    kind: ClassVar[str]
    #: A frozen dataclass of the venue's config fields; `Secret`-typed fields are secrets.
    settings_type: ClassVar[type[Any]]

    def __init__(self, source: SourceConfig, http: HttpClient) -> None:
        self.source = source
        self.settings = source.settings
        self.http = http
        #: The report date being fetched (the pipeline sets it; sources with dated files use it).
        self.report_date: date = datetime.now(UTC).date()

    @abstractmethod
    def fetch(self) -> None:
        """Call the venue. Responses reach the recorder through `self.http`; errors raise."""

    @classmethod
    def reads_history(cls, settings: Any) -> bool:
        """True when a past date can still be fetched from the venue (e.g. a dated report file):
        the date's live window then never closes. Live balance APIs answer only "now"."""
        return False

    @classmethod
    @abstractmethod
    def parse(cls, snapshot: RawSnapshot, source: SourceConfig) -> ParsedSnapshot:
        """Map a stored snapshot to canonical balances. Pure: no network, no clock."""

    @classmethod
    def parse_stored(
        cls, path: Path, responses: int, source: SourceConfig
    ) -> Iterator[ParsedSnapshot]:
        """`parse` of the snapshot file at `path` (holding `responses` responses), in parts.

        One part by default: an API venue's snapshot is small. A venue whose snapshot can be
        large (a report file of millions of rows) streams it part by part instead."""
        yield cls.parse(RawSnapshot.from_bytes(path.read_bytes()), source)


def amount_problem(name: str, value: Decimal) -> str | None:
    """Why an amount cannot be stored exactly as NUMERIC(38,20), or None when it can."""
    if not value.is_finite():
        return f"{name}: {value} is not a finite number"
    exponent = value.as_tuple().exponent
    assert isinstance(exponent, int)
    if -exponent > AMOUNT_SCALE and value != value.quantize(Decimal(1).scaleb(-AMOUNT_SCALE)):
        return f"{name}: {value:f} has more than {AMOUNT_SCALE} fractional digits"
    if value.adjusted() >= _MAX_INTEGER_DIGITS:
        return f"{name}: {value:f} has more than {_MAX_INTEGER_DIGITS} integer digits"
    return None


def balances_table(
    source: SourceConfig, balances: Iterable[Balance]
) -> tuple[pa.Table, list[Rejected]]:
    """Canonical balances -> Arrow table with report defaults; unrepresentable amounts rejected.

    Applies the per-source report rules every venue shares: `mainType` (Client unless
    configured per account), `System Account`, `Account in Ledger` = TRUE, missing amounts 0.
    """
    columns: dict[str, list[Any]] = {name: [] for name in (*REPORT_COLUMNS, *TRACE_COLUMNS)}
    rejected: list[Rejected] = []
    zero = Decimal(0)
    for b in balances:
        problems = [p for k, v in b.amounts.items() if (p := amount_problem(k, v))]
        unknown = sorted(set(b.amounts) - set(AMOUNT_COLUMNS))
        if unknown:
            raise ValueError(f"connector produced unknown amount columns: {unknown}")
        if problems:
            rejected.append(Rejected(source.name, "exact_decimal", "; ".join(problems), _record(b)))
            continue
        main_type = source.main_types.get(b.venue_account_id) or source.main_types.get(
            b.account_uuid, "Client"
        )
        system = b.venue_account_id in source.system_accounts or (
            b.account_uuid in source.system_accounts
        )
        row: dict[str, Any] = {
            "userUUID": b.user_uuid,
            "accountUUID": b.account_uuid,
            "Account Group UUID": b.account_group_uuid,
            "Account Group": b.account_group,
            "User": b.user,
            "Email": b.email,
            "mainType": main_type,
            "subMainType": b.sub_main_type,
            "Ccy": b.ccy,
            "Account in Ledger": True,
            "System Account": system,
            "source": source.name,
            "venue": source.kind,
            "venue_account_id": b.venue_account_id,
            "wallet": b.wallet,
        }
        for name in AMOUNT_COLUMNS:
            row[name] = b.amounts.get(name, zero)
        for name, values in columns.items():
            values.append(row[name])
    table = pa.Table.from_pydict(columns, schema=BALANCES_SCHEMA)
    return table, rejected


def _record(b: Balance) -> dict[str, Any]:
    """A rejected balance as JSON-friendly text (amounts as exact strings)."""
    return {
        "userUUID": b.user_uuid,
        "accountUUID": b.account_uuid,
        "Ccy": b.ccy,
        "venue_account_id": b.venue_account_id,
        "wallet": b.wallet,
        **{k: format(v, "f") for k, v in b.amounts.items()},
    }
