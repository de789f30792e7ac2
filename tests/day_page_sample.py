"""Day-page test data, published through the product's real publish path.

`publish_day` stages a report (report Parquet, completeness Parquet, manifest) exactly as
`stage_report` leaves it, then calls `publish_report`: the warehouse then holds what a real
run writes (status, completeness, versions, history, restatements, registry).
`realistic_warehouse` publishes ~30 days of several venues for the browser test and the
screenshot in docs/images/day-page.png (`python -m tests.day_page_sample docs/images/day-page.png`).
"""

from __future__ import annotations

import random
import sys
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pyarrow as pa

from etl_project import staging
from etl_project.report.columns import REPORT_SCHEMA
from etl_project.sinks.object_store import LocalObjectStore
from etl_project.sinks.warehouse import Warehouse
from etl_project.stages.completeness import COMPLETENESS_SCHEMA
from etl_project.stages.outcome import StageOutcome, manifest
from etl_project.stages.publish import Published, publish_report
from etl_project.stages.publish_warehouse import set_warehouse_state
from tests.report_rows import row


@dataclass(frozen=True)
class Account:
    """One (account, ccy) row of the sample: `n` fixes its accountUUID across dates."""

    n: int
    source: str
    venue: str
    ccy: str
    user: str = ""

    def row(self, day: date, total: Decimal, run_id: str) -> dict[str, Any]:
        return row(
            self.n,
            **{"accountUUID": str(uuid.UUID(int=10_000 + self.n)), "Ccy": self.ccy},
            Total=total,
            User=self.user or f"user{self.n}",
            source=self.source,
            venue=self.venue,
            venue_account_id=f"acct-{self.n}",
            report_date=day,
            run_id=run_id,
        )


def completeness_row(
    source: str,
    venue: str,
    account_id: str,
    *,
    name: str | None = None,
    failed: bool = False,
    reason: str | None = None,
) -> dict[str, Any]:
    return {
        "source": source,
        "venue": venue,
        "account_id": account_id,
        "account_name": name,
        "expected": True,
        "received": not failed,
        "failed": failed,
        "listed": True,
        "reason": reason,
    }


def publish_day(
    store: LocalObjectStore,
    warehouse: Warehouse,
    day: date,
    run_id: str,
    rows: Sequence[tuple[Account, Decimal]],
    failed: Sequence[dict[str, Any]] = (),
) -> Published:
    """Stage D's report as `stage_report` would and publish it with `publish_report`.
    Every account of `rows` is a received completeness row; `failed` rows are gaps."""
    report = pa.Table.from_pylist([a.row(day, t, run_id) for a, t in rows], schema=REPORT_SCHEMA)
    listed = {(a.source, a.venue, f"acct-{a.n}") for a, _ in rows}
    completeness = [completeness_row(s, v, acc) for s, v, acc in sorted(listed)]
    completeness += list(failed)
    gaps = [
        {"source": g["source"], "account_id": g["account_id"], "reason": g["reason"]}
        for g in failed
    ]
    staging.put_table(store, staging.report_keys(day)[1], report)
    staging.put_table(
        store,
        staging.completeness_key(day),
        pa.Table.from_pylist(completeness, schema=COMPLETENESS_SCHEMA),
    )
    details = {
        "run_id": run_id,
        "rows": report.num_rows,
        "completeness": "partial" if gaps else "complete",
        "gaps": gaps,
        "sources": {},
        "rejected": [],
        "extra_tables": {},
    }
    outcome = StageOutcome("report", "ok", None, details)
    staging.put_json(store, staging.report_keys(day)[0], manifest(outcome))
    return publish_report(store, warehouse, day)


# --- a realistic month -----------------------------------------------------------------------

VENUES = (
    ("kraken_main", "kraken_futures", ("BTC", "ETH", "USD")),
    ("saxo_main", "saxo", ("EUR", "USD", "CHF")),
    ("platform_eu", "platform", ("BTC", "ETH", "USDT", "EUR")),
    ("settlement_file", "settlement_report", ("USD", "EUR", "USDT")),
)
SCALE = {"BTC": 3, "ETH": 40, "USD": 250_000, "EUR": 180_000, "USDT": 90_000, "CHF": 60_000}


def realistic_accounts(per_venue: int = 6) -> list[Account]:
    accounts = []
    n = 0
    for source, venue, ccys in VENUES:
        for i in range(per_venue):
            n += 1
            user = f"Desk {venue[:3].upper()}-{i}" if i else '<script>alert("x")</script>'
            accounts.append(Account(n, source, venue, ccys[i % len(ccys)], user))
    return accounts


def realistic_warehouse(
    root: Path, last: date, days: int = 30, seed: int = 11
) -> tuple[LocalObjectStore, Warehouse, dict[date, dict[Account, Decimal]]]:
    """`days` published dates ending at `last` (one skipped, one partial, the last one
    re-published with changes) of 4 venues; returns the store, warehouse and every total."""
    rng = random.Random(seed)
    store = LocalObjectStore(root / "lake")
    warehouse = Warehouse(f"duckdb:///{root / 'warehouse.duckdb'}")
    accounts = realistic_accounts()
    level = {a: Decimal(rng.randint(20, 100)) * SCALE[a.ccy] / 100 for a in accounts}
    published: dict[date, dict[Account, Decimal]] = {}
    first = last - timedelta(days=days)
    for k in range(days + 1):
        day = first + timedelta(days=k)
        for a in accounts:
            step = Decimal(rng.randint(-600, 640)) / 10_000
            level[a] = (level[a] * (1 + step)).quantize(Decimal("0.00000001"))
        if k == days // 3:
            continue  # a date that was never published
        failed: list[dict[str, Any]] = []
        totals = dict(level)
        if k == days // 2:  # a partial date: saxo could not read one account
            gone = next(a for a in accounts if a.source == "saxo_main")
            totals.pop(gone)
            failed.append(
                completeness_row(
                    "saxo_main",
                    "saxo",
                    f"acct-{gone.n}",
                    name="Treasury <b>EU</b>",
                    failed=True,
                    reason="HTTP 503 from /port/v1/balances",
                )
            )
        publish_day(store, warehouse, day, f"run-{day:%Y%m%d}", list(totals.items()), failed)
        published[day] = totals
    restated = dict(published[last])
    changed = accounts[2]
    restated[changed] = restated[changed] + Decimal("0.5")
    publish_day(store, warehouse, last, f"run-{last:%Y%m%d}-rerun", list(restated.items()))
    published[last] = restated
    return store, warehouse, published


def fail_date(warehouse: Warehouse, day: date, cause: str) -> None:
    """Mark D failed as a fault after the commit point does."""
    set_warehouse_state(warehouse, day, "failed", cause)


# --- reading the page back -------------------------------------------------------------------


class _Tables(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tables: dict[str, list[list[str]]] = {}
        self._table: str | None = None
        self._cell: list[str] | None = None
        self._in_body = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "table":
            self._table = dict(attrs).get("id") or ""
            self.tables[self._table] = []
        elif tag == "tbody":
            self._in_body = True
        elif tag == "tr" and self._table is not None and self._in_body:
            self.tables[self._table].append([])
        elif tag == "td" and self._table is not None:
            self._cell = []

    def handle_endtag(self, tag: str) -> None:
        if tag == "td" and self._cell is not None and self._table is not None:
            self.tables[self._table][-1].append("".join(self._cell))
            self._cell = None
        elif tag == "tbody":
            self._in_body = False
        elif tag == "table":
            self._table = None

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell.append(data)


def html_tables(html: str) -> dict[str, list[list[str]]]:
    """Table id -> body rows of cell texts (entities decoded, as a reader sees them)."""
    parser = _Tables()
    parser.feed(html)
    return parser.tables


def screenshot(html_path: Path, png: Path, chromium: str = "/usr/bin/chromium") -> None:
    """A full-page PNG of the page, offline (every non-file request aborted)."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium)
        page = browser.new_page(viewport={"width": 1400, "height": 900})
        page.route(
            "**/*", lambda r: r.continue_() if r.request.url.startswith("file:") else r.abort()
        )
        page.goto(html_path.as_uri())
        page.screenshot(path=str(png), full_page=True)
        browser.close()


def main(argv: Sequence[str]) -> None:
    """Publish the realistic month into a temp folder, render its last day, screenshot it."""
    import tempfile

    from etl_project.day_page.write import write_day_page

    png = Path(argv[0] if argv else "docs/images/day-page.png").resolve()
    with tempfile.TemporaryDirectory() as tmp:
        last = date(2026, 11, 30)
        store, warehouse, _ = realistic_warehouse(Path(tmp), last)
        key = write_day_page(warehouse.engine, store, last)
        png.parent.mkdir(parents=True, exist_ok=True)
        screenshot(Path(store.uri(key)), png)
        warehouse.dispose()
    print(png)


if __name__ == "__main__":
    main(sys.argv[1:])
