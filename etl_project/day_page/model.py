"""What the day page shows, as frozen values: the page is rendered from these alone, so the
renderer never touches the database and tests can build a picture by hand.

Money is `Decimal` everywhere (the warehouse's NUMERIC(38,20), summed by the database);
`money_text` is the only way a value becomes text, so what finance reads is exact.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal, localcontext

#: The statuses under which a date counts as published (docs/publishing.md).
PUBLISHED = ("complete", "partial")


def money_text(value: Decimal | None, *, empty: str = "—") -> str:
    """An exact amount for people: thousands separators, no trailing zeros, no exponent.

    `format(…, ",f")` prints every digit a Decimal holds (no rounding to the context's
    precision, unlike `normalize`), so 38-digit sums survive."""
    if value is None:
        return empty
    text = format(value, ",f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text


def exact_sub(a: Decimal, b: Decimal) -> Decimal:
    """`a - b` without rounding: the default context keeps only 28 digits, a NUMERIC(38,20)
    difference may need 40."""
    with localcontext() as ctx:
        ctx.prec = 100
        return a - b


@dataclass(frozen=True)
class PublishedDate:
    """A published report date in the chart window and whether it was complete or partial."""

    report_date: date
    completeness: str


@dataclass(frozen=True)
class SeriesPoint:
    """Sum of `total` of one (venue, ccy) on one date; `rows == 0` marks a zero filled in
    because the venue reported that day but had no row in this currency."""

    report_date: date
    total: Decimal
    rows: int


@dataclass(frozen=True)
class Series:
    """One line of a chart: a venue's total in one currency over the published dates."""

    venue: str
    ccy: str
    points: tuple[SeriesPoint, ...]

    def on(self, day: date | None) -> SeriesPoint | None:
        return next((p for p in self.points if p.report_date == day), None)


@dataclass(frozen=True)
class VenueTotal:
    """A (venue, ccy) total on D against the previous published date; None = venue absent."""

    venue: str
    ccy: str
    previous: Decimal | None
    current: Decimal | None

    @property
    def change(self) -> Decimal | None:
        if self.previous is None or self.current is None:
            return None
        return exact_sub(self.current, self.previous)


@dataclass(frozen=True)
class DayStatus:
    """D's row of `settlement_report_status`."""

    completeness: str
    run_id: str
    published_at: datetime
    report_rows: int
    rejected_rows: int
    cause: str | None

    @property
    def published(self) -> bool:
        return self.completeness in PUBLISHED


@dataclass(frozen=True)
class SourceCompleteness:
    """Accounts expected/received/failed of one source on D (`source_failed`: the whole
    source delivered nothing, completeness row `*`), and its rows in the report."""

    source: str
    venue: str
    expected: int
    received: int
    failed: int
    source_failed: bool
    report_rows: int


@dataclass(frozen=True)
class Gap:
    """A failed or vanished account (or `*`, a whole source) of D, with the venue's reason."""

    source: str
    account_id: str
    account_name: str | None
    reason: str | None


@dataclass(frozen=True)
class Movement:
    """Change of one account's total in one currency between the previous published date
    and D (a row absent on one side counts as 0: added, gone or dropped as all-zero)."""

    account_uuid: str
    ccy: str
    venue: str
    source: str
    user_name: str
    venue_account_id: str
    wallet: str
    previous: Decimal | None
    current: Decimal | None
    change: Decimal


@dataclass(frozen=True)
class Version:
    """One published version (run) of D from `settlement_report_versions`."""

    run_id: str
    previous_run_id: str | None
    state: str
    completeness: str
    report_rows: int
    added: int
    removed: int
    changed: int
    published_at: datetime


@dataclass(frozen=True)
class RestatedRow:
    """One row of `settlement_report_restatements` for D."""

    run_id: str
    previous_run_id: str
    account_uuid: str
    ccy: str
    change: str
    old_total: Decimal | None
    new_total: Decimal | None
    changed_columns: str | None
    restated_at: datetime


@dataclass(frozen=True)
class DayPicture:
    """Everything the page of report date D shows, read in one database snapshot."""

    report_date: date
    status: DayStatus | None
    previous_date: PublishedDate | None
    dates: tuple[PublishedDate, ...]
    series: tuple[Series, ...]
    sources: tuple[SourceCompleteness, ...]
    gaps: tuple[Gap, ...]
    gap_count: int
    movements: tuple[Movement, ...]
    versions: tuple[Version, ...]
    restatements: tuple[RestatedRow, ...]
    restatement_count: int

    @property
    def published(self) -> bool:
        return self.status is not None and self.status.published

    def venue_totals(self) -> list[VenueTotal]:
        """Per (venue, ccy): D's total against the previous published date's."""
        if not self.published:
            return []
        previous = None if self.previous_date is None else self.previous_date.report_date
        rows = []
        for s in self.series:
            old, new = s.on(previous), s.on(self.report_date)
            if old is None and new is None:
                continue
            rows.append(
                VenueTotal(
                    s.venue,
                    s.ccy,
                    None if old is None else old.total,
                    None if new is None else new.total,
                )
            )
        return rows
