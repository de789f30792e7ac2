"""Inline SVG line charts for the day page: one small chart per currency, one line per venue.

Currencies have unrelated scales (BTC vs USD), so each gets its own chart. Coordinates are
floats (they only place pixels); every number a person reads — the axis extremes and each
point's tooltip — is the exact `Decimal` as text. No script, no external resource: the
tooltips are SVG `<title>` elements, which every browser shows on hover.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import date
from html import escape

from etl_project.day_page.model import PublishedDate, Series, money_text

WIDTH, HEIGHT = 360, 190
LEFT, RIGHT, TOP, BOTTOM = 12, 12, 34, 30
#: Venue colours, assigned in sorted venue order (colour-blind friendly, Okabe–Ito).
PALETTE = (
    "#0072B2",
    "#E69F00",
    "#009E73",
    "#CC79A7",
    "#D55E00",
    "#56B4E9",
    "#7a6a00",
    "#000000",
)


def venue_colours(series: Sequence[Series]) -> dict[str, str]:
    """The same colour for a venue in every chart and in the legend."""
    venues = sorted({s.venue for s in series})
    return {v: PALETTE[i % len(PALETTE)] for i, v in enumerate(venues)}


def legend(colours: dict[str, str]) -> str:
    items = "".join(
        f'<li><span class="swatch" style="background:{c}"></span>{escape(v)}</li>'
        for v, c in colours.items()
    )
    return f'<ul class="legend" aria-label="venues">{items}</ul>'


def currency_charts(series: Sequence[Series], dates: Sequence[PublishedDate]) -> str:
    """One `<figure>` per currency, sorted by currency code."""
    if not series or not dates:
        return '<p class="empty">No published dates with rows in this window.</p>'
    colours = venue_colours(series)
    by_ccy: dict[str, list[Series]] = {}
    for s in series:
        by_ccy.setdefault(s.ccy, []).append(s)
    charts = "".join(
        chart(ccy, by_ccy[ccy], dates, colours) for ccy in sorted(by_ccy, key=str.upper)
    )
    return legend(colours) + f'<div class="charts">{charts}</div>'


def chart(
    ccy: str, lines: Sequence[Series], dates: Sequence[PublishedDate], colours: dict[str, str]
) -> str:
    """A line per venue of one currency over the window's published dates."""
    first, last = dates[0].report_date, dates[-1].report_date
    partial = {d.report_date for d in dates if d.completeness != "complete"}
    values = [p.total for s in lines for p in s.points]
    low, high = min(values), max(values)
    span_days = (last - first).days
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    lo, hi = float(low), float(high)

    def x(day: date) -> float:
        return LEFT + (plot_w / 2 if span_days == 0 else (day - first).days / span_days * plot_w)

    def y(value: float) -> float:
        return TOP + (plot_h / 2 if hi == lo else (hi - value) / (hi - lo) * plot_h)

    parts = [
        f'<rect class="plot" x="{LEFT}" y="{TOP}" width="{plot_w}" height="{plot_h}"/>',
        f'<text class="axis" x="{LEFT}" y="{TOP - 6}">max {escape(money_text(high))}</text>',
        f'<text class="axis" x="{LEFT}" y="{TOP + plot_h + 12}">min '
        f"{escape(money_text(low))}</text>",
        f'<text class="axis" x="{LEFT}" y="{HEIGHT - 4}">{first.isoformat()}</text>',
        f'<text class="axis end" x="{WIDTH - RIGHT}" y="{HEIGHT - 4}">{last.isoformat()}</text>',
    ]
    if lo < 0 < hi:
        zero = y(0.0)
        parts.append(
            f'<line class="zero" x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{zero:.1f}" y2="{zero:.1f}"/>'
        )
    window = [d.report_date for d in dates]
    for s in lines:
        colour = colours[s.venue]
        parts.append(_path(s, window, colour, x, y))
        for p in s.points:
            note = " (no rows: 0)" if p.rows == 0 else ""
            note += " — partial day" if p.report_date in partial else ""
            tip = f"{s.venue} {s.ccy} {p.report_date.isoformat()}: {money_text(p.total)}{note}"
            hollow = ' fill="#fff"' if p.report_date in partial else f' fill="{colour}"'
            parts.append(
                f'<circle class="point" cx="{x(p.report_date):.1f}" cy="{y(float(p.total)):.1f}"'
                f' r="2.6" stroke="{colour}"{hollow}><title>{escape(tip)}</title></circle>'
            )
    label = f"Total in {ccy} per venue, {first.isoformat()} to {last.isoformat()}"
    svg = (
        f'<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" width="{WIDTH}" height="{HEIGHT}" '
        f'role="img" aria-label="{escape(label)}" xmlns="http://www.w3.org/2000/svg">'
        f"<title>{escape(label)}</title>{''.join(parts)}</svg>"
    )
    return (
        f'<figure class="chart-box" data-ccy="{escape(ccy)}">'
        f"<figcaption>{escape(ccy)}</figcaption>{svg}</figure>"
    )


def _path(
    s: Series,
    window: Sequence[date],
    colour: str,
    x: Callable[[date], float],
    y: Callable[[float], float],
) -> str:
    """The line of one venue; a date the venue is absent on breaks it (a new `M`)."""
    points = {p.report_date: p for p in s.points}
    commands: list[str] = []
    pen_down = False
    for day in window:
        p = points.get(day)
        if p is None:
            pen_down = False
            continue
        commands.append(f"{'L' if pen_down else 'M'}{x(day):.1f},{y(float(p.total)):.1f}")
        pen_down = True
    return (
        f'<path class="series" data-venue="{escape(s.venue)}" data-ccy="{escape(s.ccy)}" '
        f'd="{" ".join(commands)}" stroke="{colour}"><title>{escape(s.venue)} '
        f"{escape(s.ccy)}</title></path>"
    )
