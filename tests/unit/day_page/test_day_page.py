"""The day page, on a real DuckDB warehouse (and PostgreSQL) filled by the real publish path.

Three dates: D1 complete; D2 published twice (the second run changes, adds and removes a row;
one saxo account failed with a hostile name and reason); D3 committed then marked failed.
Every number asserted is written out by hand, as finance would read it.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest

from etl_project.day_page.data import load_day_picture
from etl_project.day_page.model import money_text
from etl_project.day_page.render import render_day_page
from etl_project.day_page.write import day_page_key, write_day_page
from etl_project.sinks.object_store import LocalObjectStore
from etl_project.sinks.warehouse import Warehouse
from tests.day_page_sample import Account, completeness_row, fail_date, html_tables, publish_day

D1, D2, D3 = date(2024, 5, 1), date(2024, 5, 2), date(2024, 5, 3)
SCRIPT_USER = "<script>alert(1)</script>"
FORMULA_USER = '=HYPERLINK("http://x","y")'
HOSTILE_NAME = "<img src=x onerror=alert(1)>"

K = "kraken_main", "kraken_futures"
S = "saxo_main", "saxo"
A0, A1, A2 = Account(0, *K, "BTC"), Account(1, *K, "BTC"), Account(2, *K, "USD")
A3, A4 = Account(3, *S, "EUR"), Account(4, *S, "USD")
A5, A6 = Account(5, *S, "USD", SCRIPT_USER), Account(6, *K, "BTC", FORMULA_USER)
GAP = completeness_row(
    *S, "acct-9", name=HOSTILE_NAME, failed=True, reason="HTTP 500 <b>boom</b> & more"
)


def uuid_of(n: int) -> str:
    """accountUUID of sample account `n` (see `Account.row`)."""
    return str(uuid.UUID(int=10_000 + n))


def money(text: str) -> Decimal:
    return Decimal(text)


@pytest.fixture(params=["duckdb", pytest.param("postgresql", marks=pytest.mark.postgres)])
def published(
    request: pytest.FixtureRequest, tmp_path: Path
) -> Iterator[tuple[Warehouse, LocalObjectStore]]:
    """The three dates, published on DuckDB or PostgreSQL."""
    if request.param == "duckdb":
        url = f"duckdb:///{tmp_path / 'warehouse.duckdb'}"
    else:
        url = request.getfixturevalue("pg_schema")
    store, warehouse = LocalObjectStore(tmp_path / "lake"), Warehouse(url)
    publish_day(store, warehouse, D1, "r1", [
        (A0, money("1.5")), (A1, money("0.25")), (A2, money("1000.10")),
        (A3, money("250000.00000000000000000001")), (A4, money("500")),
    ])  # fmt: skip
    publish_day(store, warehouse, D2, "r2a", [
        (A0, money("2.5")), (A1, money("0.25")), (A2, money("900.10")),
        (A3, money("240000")), (A4, money("500")), (A5, money("7")),
    ], [GAP])  # fmt: skip
    publish_day(store, warehouse, D2, "r2b", [
        (A0, money("2.75")), (A2, money("900.10")), (A3, money("240000")),
        (A4, money("500")), (A5, money("7")), (A6, money("0.125")),
    ], [GAP])  # fmt: skip
    publish_day(store, warehouse, D3, "r3", [(A0, money("3"))])
    fail_date(warehouse, D3, "object store: connection reset")
    try:
        yield warehouse, store
    finally:
        warehouse.dispose()


def test_picture_of_a_restated_partial_day(published: tuple[Warehouse, LocalObjectStore]) -> None:
    warehouse, _ = published
    picture = load_day_picture(warehouse.engine, D2)

    assert picture.status is not None
    assert (picture.status.completeness, picture.status.run_id) == ("partial", "r2b")
    assert picture.status.published_at.tzinfo is not None
    assert [d.report_date for d in picture.dates] == [D1, D2]
    assert picture.previous_date is not None and picture.previous_date.report_date == D1
    series = {
        (s.venue, s.ccy): [(p.report_date, money_text(p.total)) for p in s.points]
        for s in picture.series
    }
    assert series == {
        ("kraken_futures", "BTC"): [(D1, "1.75"), (D2, "2.875")],
        ("kraken_futures", "USD"): [(D1, "1,000.1"), (D2, "900.1")],
        ("saxo", "EUR"): [(D1, "250,000.00000000000000000001"), (D2, "240,000")],
        ("saxo", "USD"): [(D1, "500"), (D2, "507")],
    }
    assert all(isinstance(p.total, Decimal) for s in picture.series for p in s.points)
    top = picture.movements[0]
    assert (top.account_uuid, top.ccy, top.change) == (
        uuid_of(3), "EUR", Decimal("-10000.00000000000000000001"),
    )  # fmt: skip
    assert [(m.ccy, money_text(m.change)) for m in picture.movements] == [
        ("EUR", "-10,000.00000000000000000001"),
        ("USD", "-100"),
        ("USD", "7"),
        ("BTC", "1.25"),
        ("BTC", "-0.25"),
        ("BTC", "0.125"),
    ]  # A4 did not move: not listed
    restated = {(r.account_uuid, r.change, r.old_total, r.new_total) for r in picture.restatements}
    assert restated == {
        (uuid_of(0), "changed", Decimal("2.5"), Decimal("2.75")),
        (uuid_of(1), "removed", Decimal("0.25"), None),
        (uuid_of(6), "added", None, Decimal("0.125")),
    }
    assert [(v.run_id, v.state, v.added, v.removed, v.changed) for v in picture.versions] == [
        ("r2b", "current", 1, 1, 1),
        ("r2a", "superseded", 0, 0, 0),
    ]
    sources = [(s.source, s.expected, s.received, s.failed, s.report_rows) for s in picture.sources]
    assert sources == [("kraken_main", 3, 3, 0, 3), ("saxo_main", 4, 3, 1, 3)]
    assert [(g.account_id, g.account_name) for g in picture.gaps] == [("acct-9", HOSTILE_NAME)]


def test_page_shows_exact_values_and_escapes_venue_text(
    published: tuple[Warehouse, LocalObjectStore],
) -> None:
    warehouse, _ = published
    html = render_day_page(load_day_picture(warehouse.engine, D2))
    tables = html_tables(html)

    assert '<span id="status" class="badge partial">partial</span>' in html
    assert '<code id="run-id">r2b</code>' in html
    assert tables["venue-totals"] == [
        ["kraken_futures", "BTC", "1.75", "2.875", "1.125"],
        ["kraken_futures", "USD", "1,000.1", "900.1", "-100"],
        ["saxo", "EUR", "250,000.00000000000000000001", "240,000", "-10,000.00000000000000000001"],
        ["saxo", "USD", "500", "507", "7"],
    ]
    assert tables["top-movements"][0] == [
        "saxo", "saxo_main", "user3", "acct-3", "holding", uuid_of(3), "EUR",
        "250,000.00000000000000000001", "240,000", "-10,000.00000000000000000001",
    ]  # fmt: skip
    assert tables["top-movements"][2][2] == SCRIPT_USER  # shown as text, exactly as sent
    assert tables["sources"] == [
        ["kraken_main", "kraken_futures", "3", "3", "0", "", "3"],
        ["saxo_main", "saxo", "4", "3", "1", "", "3"],
    ]
    assert tables["gaps"] == [["saxo_main", "acct-9", HOSTILE_NAME, "HTTP 500 <b>boom</b> & more"]]
    assert sorted(tables["restated-rows"]) == sorted(
        [
            ["r2b", "changed", uuid_of(0), "BTC", "2.5", "2.75", "0.25", "total"],
            ["r2b", "removed", uuid_of(1), "BTC", "0.25", "—", "-0.25", "—"],
            ["r2b", "added", uuid_of(6), "BTC", "—", "0.125", "0.125", "—"],
        ]
    )
    # Hostile text is inert: no tag from a venue survives, formulas are plain text.
    assert "<script" not in html and "<img" not in html and "<b>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "&lt;img src=x onerror=alert(1)&gt;" in html
    assert "=HYPERLINK(&quot;http://x&quot;,&quot;y&quot;)" in html
    # Self-contained: nothing to fetch, nothing to run.
    assert 'http-equiv="Content-Security-Policy" content="default-src \'none\';' in html
    for needle in ('src="http', 'href="http', "@import", "url(", '<link rel="stylesheet'):
        assert needle not in html
    ids = re.findall(r' id="([^"]+)"', html)
    assert len(ids) == len(set(ids)), ids
    # One chart per currency, one line per (venue, ccy), each with both dates.
    assert html.count('<figure class="chart-box"') == 3
    assert html.count('<path class="series"') == 4
    assert 'd="M' in html and "saxo EUR 2024-05-01: 250,000.00000000000000000001" in html


def test_a_failed_date_is_not_published(published: tuple[Warehouse, LocalObjectStore]) -> None:
    warehouse, _ = published
    picture = load_day_picture(warehouse.engine, D3)

    assert picture.status is not None and picture.status.completeness == "failed"
    assert not picture.published and picture.movements == ()
    assert [d.report_date for d in picture.dates] == [D1, D2]  # D3 not in the chart
    html = render_day_page(picture)
    assert '<span id="status" class="badge failed">failed</span>' in html
    assert "2024-05-03 is not published (failed: object store: connection reset)" in html


def test_a_date_never_published(published: tuple[Warehouse, LocalObjectStore]) -> None:
    warehouse, _ = published
    picture = load_day_picture(warehouse.engine, date(2024, 4, 1))

    assert picture.status is None and picture.dates == () and picture.series == ()
    assert "badge not-published" in render_day_page(picture)


def test_window_counts_published_dates(published: tuple[Warehouse, LocalObjectStore]) -> None:
    warehouse, _ = published
    picture = load_day_picture(warehouse.engine, D2, days=1)

    assert [d.report_date for d in picture.dates] == [D2]
    assert picture.previous_date is None and picture.movements == ()


def test_write_day_page_puts_the_page_beside_the_report(
    published: tuple[Warehouse, LocalObjectStore],
) -> None:
    warehouse, store = published
    key = write_day_page(warehouse.engine, store, D2)

    assert key == "reports/settlement_balance/date=2024-05-02/day_2024-05-02.html"
    assert key == day_page_key(D2)
    page = store.get(key).decode("utf-8")
    assert page == render_day_page(load_day_picture(warehouse.engine, D2))
    assert key in store.list("reports/settlement_balance/date=2024-05-02/")


def test_money_text_is_exact() -> None:
    assert money_text(Decimal("-999999999999999999.99999999999999999999")) == (
        "-999,999,999,999,999,999.99999999999999999999"
    )
    assert money_text(Decimal("0E-20")) == money_text(Decimal("-0.000")) == "0"
    assert money_text(Decimal("1E+3")) == "1,000"
    assert money_text(Decimal("0.00000000346")) == "0.00000000346"
    assert money_text(None) == "—"
