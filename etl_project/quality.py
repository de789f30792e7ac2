"""Data-quality checks of a published report, as pure functions returning `CheckOutcome`.

Dagster asset checks wrap them; nothing here does I/O. Every verdict on an amount is decided
with exact `Decimal` arithmetic; the movement check only uses a float64 pass to narrow down
which pairs could breach (see `_candidates`). `check_results_rows` shapes outcomes as rows of
`CHECK_RESULTS_TABLE`, which keeps every check's latest outcome per report date.
"""

from __future__ import annotations

import decimal
import re
from collections.abc import Mapping
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from etl_project.checks import CheckOutcome

#: Enough digits for exact sums and differences of NUMERIC(38,20) values.
_EXACT = decimal.Context(prec=80, traps=[decimal.InvalidOperation, decimal.Inexact])
#: Division for display only (percentages), with room for any ratio of two such values.
_DISPLAY = decimal.Context(prec=80)
_HHMM = re.compile(r"([01]\d|2[0-3]):([0-5]\d)")
TOP_BREACHES = 10


def completeness(details: Mapping[str, Any]) -> CheckOutcome:
    """Passed iff the report's manifest details say "complete"; otherwise names every gap."""
    state = details.get("completeness")
    gaps = list(details.get("gaps") or [])
    if state == "complete":
        return CheckOutcome(True, "complete: every expected account was received", {"gaps": 0})
    named = "; ".join(
        f"{g.get('source', '?')}/{g.get('account') or g.get('account_id', '*')}: "
        f"{g.get('reason') or 'failed'}"
        for g in gaps
    )
    summary = f"{state or 'unknown'}: {named or 'no gaps named'}"
    return CheckOutcome(False, summary, {"completeness": str(state), "gaps": len(gaps)})


def _key_names(table: pa.Table) -> tuple[str, str, str]:
    """(account, ccy, total) column names: report names, or the warehouse's SQL names."""
    if "accountUUID" in table.column_names:
        return "accountUUID", "Ccy", "Total"
    return "account_uuid", "ccy", "total"


def _totals(table: pa.Table) -> pa.Table:
    """One row per (account, ccy) with its Total (columns account, ccy, total).

    Report and warehouse totals are already one row per pair; repeated pairs (only in
    hand-built inputs) are summed exactly in Python, since Arrow's decimal sums can overflow."""
    account, ccy, total = _key_names(table)
    pairs = table.select([account, ccy, total]).rename_columns(["account", "ccy", "total"])
    if pairs.group_by(["account", "ccy"]).aggregate([]).num_rows == pairs.num_rows:
        return pairs
    sums: dict[tuple[str, str], Decimal] = {}
    for a, c, t in zip(*(pairs.column(n).to_pylist() for n in pairs.column_names), strict=True):
        sums[(a, c)] = _EXACT.add(sums.get((a, c), Decimal(0)), Decimal(t or 0))
    return pa.table(
        {
            "account": [a for a, _ in sums],
            "ccy": [c for _, c in sums],
            # Wide enough for a sum past NUMERIC(38,20).
            "total": pa.array(list(sums.values()), pa.decimal256(76, 20)),
        }
    )


#: Below this threshold (percent) every pair is a candidate; above, floats narrow them with
#: this relative safety margin (`_candidates`, and the warehouse's twin in `quality_runs`).
FLOAT_NARROWING_MIN_PCT = 1e-6


def _candidates(joined: pa.Table, threshold: float) -> pa.Table:
    """The joined pairs that may breach `threshold`, found vectorised in float64.

    Floats only narrow the search; `_breaches` decides exactly in Decimal. The float error
    (~1e-15 relative) is far inside the 1e-6 safety margin for any threshold >= 1e-6 %, so no
    breach is missed; below that every pair goes to the exact test."""
    if threshold < FLOAT_NARROWING_MIN_PCT:
        return joined
    as_float = [
        pc.fill_null(pc.cast(joined.column(n), pa.float64(), safe=False), 0.0)
        for n in ("total_t", "total_p")
    ]
    today, before = as_float
    delta = pc.abs(pc.subtract(today, before))
    maybe = pc.or_(
        pc.equal(before, 0.0),
        pc.greater_equal(
            pc.multiply(delta, 100.0),
            pc.multiply(pc.abs(before), threshold * (1 - FLOAT_NARROWING_MIN_PCT)),
        ),
    )
    return joined.filter(maybe)


def _plain(value: Decimal) -> str:
    """A Decimal in plain notation without trailing zeros: 0E-20 -> 0, 1.50 -> 1.5."""
    if value.is_zero():
        return "0"
    text = format(value, "f")
    return text.rstrip("0").rstrip(".") if "." in text else text


def _threshold(threshold_pct: float) -> Decimal:
    if threshold_pct < 0:
        raise ValueError(f"threshold_pct must be >= 0, got {threshold_pct}")
    return Decimal(str(threshold_pct))


def _percent(delta: Decimal, base: Decimal) -> Decimal:
    """delta / base in percent, rounded to 0.01 for display."""
    ratio = _DISPLAY.divide(_DISPLAY.multiply(delta, Decimal(100)), base)
    return ratio.quantize(Decimal("0.01"), context=_DISPLAY)


def _magnitude(value: Decimal | None) -> Decimal:
    return Decimal(0) if value is None else value.copy_abs()


def _breaches(previous: Decimal, today: Decimal, threshold: Decimal) -> bool:
    """|today - previous| / |previous| * 100 > threshold, exactly (previous 0: today != 0)."""
    delta = _EXACT.subtract(today, previous).copy_abs()
    if previous.is_zero():
        return not delta.is_zero()
    return _EXACT.multiply(delta, Decimal(100)) > _EXACT.multiply(threshold, previous.copy_abs())


def movement(today: pa.Table, previous: pa.Table | None, threshold_pct: float) -> CheckOutcome:
    """Flag (accountUUID, Ccy) pairs whose Total moved by more than `threshold_pct` percent
    since the previous report; a pair missing on one side counts as 0 there."""
    threshold = _threshold(threshold_pct)
    if previous is None:
        return movement_verdict(None, 0, threshold_pct)
    joined = _totals(today).join(
        _totals(previous),
        keys=["account", "ccy"],
        join_type="full outer",
        left_suffix="_t",
        right_suffix="_p",
        coalesce_keys=True,
    )
    candidates = _candidates(joined, float(threshold))
    return movement_verdict(candidates, joined.num_rows, threshold_pct)


def movement_verdict(candidates: pa.Table | None, pairs: int, threshold_pct: float) -> CheckOutcome:
    """The movement check's verdict from the pairs that may breach (`account, ccy, total_t,
    total_p`: a superset of the breaches, e.g. narrowed in floats) out of `pairs` compared,
    decided exactly in Decimal; `candidates` None: there is no previous report.

    Why apart from `movement`: the warehouse can join two days' totals and narrow them itself
    (`quality_runs.movement`), so only the candidates, not millions of pairs, reach Python."""
    threshold = _threshold(threshold_pct)
    if candidates is None:
        return CheckOutcome(True, "no previous report to compare with", {"breaches": 0})
    rows: list[tuple[Decimal | None, Decimal, tuple[str, str], Decimal, Decimal]] = []
    for a, c, t_raw, p_raw in zip(
        *(candidates.column(n).to_pylist() for n in ("account", "ccy", "total_t", "total_p")),
        strict=True,
    ):
        t, p = t_raw or Decimal(0), p_raw or Decimal(0)
        if _breaches(p, t, threshold):
            delta = _EXACT.subtract(t, p)
            pct = None if p.is_zero() else _percent(delta, p.copy_abs())
            rows.append((pct, delta.copy_abs(), (str(a), str(c)), p, t))
    # Largest relative change first; a pair new since the previous report (no % change) tops.
    rows.sort(
        key=lambda r: (r[0] is not None, _magnitude(r[0]).copy_negate(), r[1].copy_negate(), r[2])
    )
    table = [
        "| accountUUID | Ccy | previous Total | today Total | change % |",
        "|---|---|---|---|---|",
        *(
            f"| {a} | {c} | {_plain(p)} | {_plain(t)} | {'new' if pct is None else f'{pct:+}'} |"
            for pct, _, (a, c), p, t in rows[:TOP_BREACHES]
        ),
    ]
    metadata: dict[str, Any] = {
        "breaches": len(rows),
        "pairs_compared": pairs,
        "threshold_pct": threshold_pct,
    }
    if rows:
        metadata["top_breaches"] = "\n".join(table)
        summary = (
            f"{len(rows)} of {pairs} (accountUUID, Ccy) pairs moved more than "
            f"{threshold_pct:g}% since the previous report"
        )
        return CheckOutcome(False, summary, metadata)
    summary = f"no (accountUUID, Ccy) pair moved more than {threshold_pct:g}% ({pairs} compared)"
    return CheckOutcome(True, summary, metadata)


def row_count(today_rows: int, previous_rows: int | None, threshold_pct: float) -> CheckOutcome:
    """Fail when the report's row count changed by more than `threshold_pct` percent."""
    threshold = _threshold(threshold_pct)
    if previous_rows is None:
        return CheckOutcome(True, "no previous report to compare with", {"today_rows": today_rows})
    metadata: dict[str, Any] = {"today_rows": today_rows, "previous_rows": previous_rows}
    change = today_rows - previous_rows
    if previous_rows:
        pct = _percent(Decimal(change), Decimal(previous_rows))
        metadata["change_pct"] = float(pct)
        described = f"{pct:+}%"
    else:
        described = "from 0"
    passed = not _breaches(Decimal(previous_rows), Decimal(today_rows), threshold)
    verdict = "within" if passed else "exceeds"
    summary = (
        f"{today_rows} rows vs {previous_rows} in the previous report ({described}, "
        f"{verdict} {threshold_pct:g}%)"
    )
    return CheckOutcome(passed, summary, metadata)


def freshness_date(now: datetime) -> date:
    """The report date a freshness check at `now` judges: yesterday in UTC."""
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError("now must be timezone-aware")
    return now.astimezone(UTC).date() - timedelta(days=1)


def freshness(report_exists_for_yesterday: bool, now: datetime, deadline_utc: str) -> CheckOutcome:
    """Fail only when it is past today's `deadline_utc` (HH:MM, UTC) and yesterday's report
    does not exist. `now` must be timezone-aware."""
    match = _HHMM.fullmatch(deadline_utc)
    if match is None:
        raise ValueError(f"deadline_utc must be HH:MM, got {deadline_utc!r}")
    yesterday = freshness_date(now)
    now_utc = now.astimezone(UTC)
    deadline = datetime.combine(
        now_utc.date(), time(int(match.group(1)), int(match.group(2))), tzinfo=UTC
    )
    metadata: dict[str, Any] = {
        "report_date": yesterday.isoformat(),
        "deadline": deadline.isoformat(),
        "exists": report_exists_for_yesterday,
    }
    if report_exists_for_yesterday:
        return CheckOutcome(True, f"report for {yesterday} is published", metadata)
    if now_utc > deadline:
        summary = (
            f"report for {yesterday} is not published and the {deadline_utc} UTC deadline passed"
        )
        return CheckOutcome(False, summary, metadata)
    summary = f"report for {yesterday} not published yet; deadline {deadline_utc} UTC not reached"
    return CheckOutcome(True, summary, metadata)


def check_results_rows(
    results: Mapping[str, CheckOutcome],
    run_id: str,
    *,
    asset: str,
    checked_at: datetime | None = None,
) -> pa.Table:
    """Rows of `CHECK_RESULTS_TABLE` (without report_date) for `results` of checks on `asset`,
    by check name."""
    at = (checked_at or datetime.now(UTC)).astimezone(UTC)
    names = sorted(results)
    return pa.table(
        {
            "asset": pa.array([asset] * len(names), pa.string()),
            "check_name": pa.array(names, pa.string()),
            "passed": pa.array([results[n].passed for n in names], pa.bool_()),
            "summary": pa.array([results[n].summary for n in names], pa.string()),
            "run_id": pa.array([run_id] * len(names), pa.string()),
            "checked_at": pa.array([at] * len(names), pa.timestamp("us", tz="UTC")),
        }
    )
