"""The day page in a real browser: opened from file:// with the network cut off, it asks for
nothing, logs no error, draws one line per (venue, ccy) and shows the exact values.

The month behind it (4 venues, 30 published dates, one skipped, one partial, the last one
re-published) goes through the product's publish path (`tests/day_page_sample.py`); expected
values are summed here from the generated balances, independently of the page's SQL.
Set DAY_PAGE_SCREENSHOT=path.png to keep a screenshot of the page.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from etl_project.day_page.data import load_day_picture
from etl_project.day_page.model import DayPicture, money_text
from etl_project.day_page.write import write_day_page
from tests.browser.conftest import OfflinePage
from tests.day_page_sample import Account, realistic_accounts, realistic_warehouse

LAST = date(2026, 11, 30)
PREVIOUS = LAST - timedelta(days=1)
PARTIAL = LAST - timedelta(days=15)


@dataclass(frozen=True)
class Month:
    pages: dict[date, Path]
    pictures: dict[date, DayPicture]
    totals: dict[date, dict[Account, Decimal]]


@pytest.fixture(scope="module")
def month(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Month]:
    root = tmp_path_factory.mktemp("month")
    store, warehouse, totals = realistic_warehouse(root, LAST)
    try:
        pages = {
            d: Path(store.uri(write_day_page(warehouse.engine, store, d))) for d in (LAST, PARTIAL)
        }
        pictures = {d: load_day_picture(warehouse.engine, d) for d in pages}
    finally:
        warehouse.dispose()
    yield Month(pages, pictures, totals)


def venue_sums(balances: dict[Account, Decimal]) -> dict[tuple[str, str], Decimal]:
    sums: dict[tuple[str, str], Decimal] = {}
    for account, total in balances.items():
        key = (account.venue, account.ccy)
        sums[key] = sums.get(key, Decimal(0)) + total
    return sums


def cells(page: OfflinePage, table: str) -> list[list[str]]:
    rows: list[list[str]] = page.page.eval_on_selector_all(
        f"#{table} tbody tr",
        "rows => rows.map(r => Array.from(r.cells).map(c => c.textContent))",
    )
    return rows


def test_the_day_page_offline(offline_page: OfflinePage, month: Month) -> None:
    offline_page.open(month.pages[LAST])
    page, picture = offline_page.page, month.pictures[LAST]

    offline_page.assert_quiet_and_offline()
    assert page.locator("#status").inner_text().lower() == "complete"
    assert page.locator("#run-id").inner_text() == "run-20261130-rerun"
    assert len(picture.dates) == 30 and len(picture.series) == 13

    # One drawn line per (venue, ccy) series, one chart per currency.
    lines = page.eval_on_selector_all(
        "svg.chart path.series",
        "ps => ps.map(p => [p.dataset.venue, p.dataset.ccy, p.getAttribute('d'),"
        " p.getTotalLength(), p.getBoundingClientRect().width])",
    )
    assert len(lines) == len(picture.series)
    assert {(v, c) for v, c, *_ in lines} == {(s.venue, s.ccy) for s in picture.series}
    for venue, ccy, d, length, width in lines:
        assert d.startswith("M") and d.count("L") == 29, (venue, ccy, d)
        assert length > 50 and width > 50, (venue, ccy)
    ccys = sorted({a.ccy for a in realistic_accounts()})
    assert page.eval_on_selector_all("figure.chart-box", "fs => fs.map(f => f.dataset.ccy)") == ccys
    assert page.locator("svg.chart circle.point").count() == 30 * len(picture.series)

    # The exact totals, summed here from the generated balances.
    old, new = venue_sums(month.totals[PREVIOUS]), venue_sums(month.totals[LAST])
    assert cells(offline_page, "venue-totals") == [
        [v, c, money_text(old[v, c]), money_text(new[v, c]), money_text(new[v, c] - old[v, c])]
        for v, c in sorted(new)
    ]
    venue, ccy = sorted(new)[0]
    tip = f"{venue} {ccy} {LAST.isoformat()}: {money_text(new[venue, ccy])}"
    assert tip in page.eval_on_selector_all(
        "circle.point title", "ts => ts.map(t => t.textContent)"
    )

    # The top movement per account, and the restated row of the re-run.
    moved = sorted(
        month.totals[LAST], key=lambda a: -abs(month.totals[LAST][a] - month.totals[PREVIOUS][a])
    )
    top = moved[0]
    change = month.totals[LAST][top] - month.totals[PREVIOUS][top]
    movements = cells(offline_page, "top-movements")
    assert len(movements) == 10
    assert movements[0][5:] == [
        str(uuid.UUID(int=10_000 + top.n)),
        top.ccy,
        money_text(month.totals[PREVIOUS][top]),
        money_text(month.totals[LAST][top]),
        money_text(change),
    ]
    rerun = realistic_accounts()[2]
    assert cells(offline_page, "restated-rows") == [
        [
            "run-20261130-rerun",
            "changed",
            str(uuid.UUID(int=10_000 + rerun.n)),
            rerun.ccy,
            money_text(month.totals[LAST][rerun] - Decimal("0.5")),
            money_text(month.totals[LAST][rerun]),
            "0.5",
            "total",
        ]
    ]
    assert page.locator("script").count() == 0  # hostile user names stayed text
    if os.environ.get("DAY_PAGE_SCREENSHOT"):
        page.screenshot(path=os.environ["DAY_PAGE_SCREENSHOT"], full_page=True)


def test_a_partial_day_names_its_gap(offline_page: OfflinePage, month: Month) -> None:
    offline_page.open(month.pages[PARTIAL])
    page = offline_page.page

    offline_page.assert_quiet_and_offline()
    assert page.locator("#status").inner_text().lower() == "partial"
    assert cells(offline_page, "gaps") == [
        ["saxo_main", "acct-7", "Treasury <b>EU</b>", "HTTP 503 from /port/v1/balances"]
    ]
    assert page.locator("#gaps b").count() == 0
    saxo = next(r for r in cells(offline_page, "sources") if r[0] == "saxo_main")
    assert saxo == ["saxo_main", "saxo", "6", "5", "1", "", "5"]
    hollow = page.locator('svg.chart circle.point[fill="#fff"]').count()
    assert hollow == len(month.pictures[PARTIAL].series)  # the partial date, on every line


def test_the_harness_sees_a_network_request(offline_page: OfflinePage, tmp_path: Path) -> None:
    """Guards the guard: a page that does fetch is caught, so 'nothing requested' means it."""
    probe = tmp_path / "probe.html"
    probe.write_text('<img src="https://example.com/x.png">', encoding="utf-8")
    offline_page.open(probe)

    assert offline_page.blocked == ["https://example.com/x.png"]
