"""The day page: one self-contained HTML file that shows a report date at a glance.

Finance opens it from the object store or a mail attachment, often offline, so it carries
everything inline (CSS, SVG; no script, no font, no CDN) and a Content-Security-Policy that
forbids the browser to fetch anything at all. Every text that came from a venue (account
names, reasons, user names) goes through `html.escape`; the CSP is a second wall should one
ever slip through. Values are shown exactly as sent (like the JSON file, not the CSV's
formula guard): this page is read, not opened by a spreadsheet.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal
from html import escape

from etl_project.day_page.data import SHOWN_ROWS, TOP_MOVEMENTS
from etl_project.day_page.model import DayPicture, exact_sub, money_text
from etl_project.day_page.style import STYLE
from etl_project.day_page.svg import currency_charts

Cell = str | int | Decimal | None

#: Nothing may be fetched or run: inline styles and `data:` images only.
CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:; base-uri 'none'"


def render_day_page(picture: DayPicture) -> str:
    """The HTML page of `picture` (a str; write it as UTF-8)."""
    d = picture.report_date.isoformat()
    body = "".join(
        (
            _header(picture),
            _section("totals", "Totals per venue and currency", _totals(picture)),
            _section("completeness", f"Completeness per source on {d}", _completeness(picture)),
            _section("movements", "Top movements", _movements(picture)),
            _section("restatements", f"Restatements of {d}", _restatements(picture)),
            _footer(),
        )
    )
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        f'<meta http-equiv="Content-Security-Policy" content="{CSP}">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        '<link rel="icon" href="data:,">'
        f"<title>Settlement balances {d}</title><style>{STYLE}</style></head>"
        f"<body><main>{body}</main></body></html>\n"
    )


def _header(p: DayPicture) -> str:
    d = p.report_date.isoformat()
    state = p.status.completeness if p.status else "not published"
    badge = f'<span id="status" class="badge {_slug(state)}">{escape(state)}</span>'
    facts: list[tuple[str, str]] = []
    if p.status is not None:
        facts += [
            ("run_id", f'<code id="run-id">{escape(p.status.run_id)}</code>'),
            ("published", f'<span id="published-at">{escape(_when(p.status.published_at))}</span>'),
            ("report rows", f"{p.status.report_rows:,}"),
            ("quarantined rows", f"{p.status.rejected_rows:,}"),
        ]
    if p.previous_date is not None:
        prev = p.previous_date
        facts.append(
            (
                "previous published date",
                f"{prev.report_date.isoformat()} ({escape(prev.completeness)})",
            )
        )
    items = "".join(f"<div><dt>{k}</dt><dd>{v}</dd></div>" for k, v in facts)
    warning = ""
    if not p.published:
        cause = f": {escape(p.status.cause)}" if p.status and p.status.cause else ""
        warning = (
            f'<p class="warning" id="not-published">{d} is not published ({escape(state)}{cause}).'
            " Only complete and partial dates count; movements are not shown.</p>"
        )
    return (
        f"<header><h1>Settlement balance report {d} {badge}</h1>"
        f'<dl class="facts">{items}</dl>{warning}</header>'
    )


def _totals(p: DayPicture) -> str:
    n = len(p.dates)
    intro = (
        f"<p>Sum of <code>Total</code> per venue and currency over the last {n} published "
        "date(s) up to this one. Hover a point for its exact value; a hollow point is a "
        "partial date; a break in a line is a date the venue did not report.</p>"
    )
    rows: list[list[Cell]] = []
    for t in p.venue_totals():
        rows.append([t.venue, t.ccy, t.previous, t.current, t.change])
    prev = p.previous_date.report_date.isoformat() if p.previous_date else "previous"
    table = _table(
        "venue-totals",
        ["venue", "ccy", f"total {prev}", f"total {p.report_date.isoformat()}", "change"],
        rows,
        "No totals: the date is not published or has no rows.",
    )
    return intro + currency_charts(p.series, p.dates) + table


def _completeness(p: DayPicture) -> str:
    rows: list[list[Cell]] = [
        [
            s.source,
            s.venue,
            s.expected,
            s.received,
            s.failed,
            "yes" if s.source_failed else "",
            s.report_rows,
        ]
        for s in p.sources
    ]
    sources = _table(
        "sources",
        ["source", "venue", "accounts expected", "received", "failed", "source failed", "rows"],
        rows,
        "No completeness rows for this date.",
    )
    gaps = _table(
        "gaps",
        ["source", "account id", "account name", "reason"],
        [[g.source, g.account_id, g.account_name, g.reason] for g in p.gaps],
        "No gaps: every expected account arrived.",
    )
    more = _more(len(p.gaps), p.gap_count, "settlement_source_completeness")
    return sources + f"<h3>Gaps ({p.gap_count})</h3>" + gaps + more


def _movements(p: DayPicture) -> str:
    if p.previous_date is None or not p.published:
        return '<p class="empty">No previous published date to compare with.</p>'
    prev, d = p.previous_date.report_date.isoformat(), p.report_date.isoformat()
    intro = (
        f"<p>The {TOP_MOVEMENTS} largest absolute changes of <code>Total</code> per account and "
        f"currency from {prev} to {d} (a row missing on one side counts as 0). Currencies "
        "are not converted: a change is in its own currency.</p>"
    )
    rows: list[list[Cell]] = [
        [
            m.venue,
            m.source,
            m.user_name,
            m.venue_account_id,
            m.wallet,
            m.account_uuid,
            m.ccy,
            m.previous,
            m.current,
            m.change,
        ]
        for m in p.movements
    ]
    head = ["venue", "source", "user", "venue account", "wallet", "accountUUID", "ccy"]
    table = _table(
        "top-movements", [*head, f"total {prev}", f"total {d}", "change"], rows, "No row changed."
    )
    return intro + table


def _restatements(p: DayPicture) -> str:
    versions = _table(
        "versions",
        [
            "run_id",
            "state",
            "completeness",
            "rows",
            "added",
            "removed",
            "changed",
            "previous run_id",
            "published",
        ],
        [
            [
                v.run_id,
                v.state,
                v.completeness,
                v.report_rows,
                v.added,
                v.removed,
                v.changed,
                v.previous_run_id,
                _when(v.published_at),
            ]
            for v in p.versions
        ],
        "No versions recorded for this date.",
    )
    rows: list[list[Cell]] = []
    for r in p.restatements:
        delta = exact_sub(r.new_total or Decimal(0), r.old_total or Decimal(0))
        rows.append(
            [
                r.run_id,
                r.change,
                r.account_uuid,
                r.ccy,
                r.old_total,
                r.new_total,
                delta,
                r.changed_columns,
            ]
        )
    restated = _table(
        "restated-rows",
        [
            "run_id",
            "change",
            "accountUUID",
            "ccy",
            "old total",
            "new total",
            "difference",
            "changed columns",
        ],
        rows,
        "Nothing restated: this date was published once, or re-published unchanged.",
    )
    more = _more(len(p.restatements), p.restatement_count, "settlement_report_restatements")
    return (
        f"<h3>Versions ({len(p.versions)})</h3>{versions}"
        f"<h3>Restated rows ({p.restatement_count})</h3>{restated}{more}"
    )


def _footer() -> str:
    return (
        "<footer>Read from the warehouse tables settlement_report_status, "
        "settlement_balance_report, settlement_source_completeness, settlement_report_versions "
        "and settlement_report_restatements. Amounts are exact decimals, never rounded. "
        "This file needs no network.</footer>"
    )


# --- building blocks --------------------------------------------------------------------------


def _section(id_: str, title: str, content: str) -> str:
    return f'<section id="{id_}"><h2>{escape(title)}</h2>{content}</section>'


def _table(id_: str, headers: Sequence[str], rows: Sequence[Sequence[Cell]], empty: str) -> str:
    """A table whose every cell is escaped here: Decimals exact, ints with separators."""
    if not rows:
        return f'<p class="empty" id="{id_}-empty">{escape(empty)}</p>'
    head = "".join(f"<th>{escape(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(_cell(c) for c in row) + "</tr>" for row in rows)
    return (
        f'<div class="scroll"><table id="{id_}"><thead><tr>{head}</tr></thead>'
        f"<tbody>{body}</tbody></table></div>"
    )


def _cell(value: Cell) -> str:
    if isinstance(value, Decimal):
        cls = "num neg" if value < 0 else "num"
        return f'<td class="{cls}">{escape(money_text(value))}</td>'
    if isinstance(value, int) and not isinstance(value, bool):
        return f'<td class="num">{value:,}</td>'
    if value is None:
        return '<td class="none">—</td>'
    return f"<td>{escape(str(value))}</td>"


def _more(shown: int, total: int, table: str) -> str:
    if total <= shown:
        return ""
    return (
        f'<p class="more">Showing {shown} of {total:,} (at most {SHOWN_ROWS}); '
        f"the rest are in the warehouse table <code>{table}</code>.</p>"
    )


def _when(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%S UTC")


def _slug(state: str) -> str:
    return "".join(ch if ch.isalnum() else "-" for ch in state.lower())
