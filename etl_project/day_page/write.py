"""Render the day page of a report date and put it beside the date's report files."""

from __future__ import annotations

from datetime import date

import sqlalchemy as sa

from etl_project.day_page.data import load_day_picture
from etl_project.day_page.render import render_day_page
from etl_project.sinks.files import REPORT_PREFIX
from etl_project.sinks.object_store import ObjectStore

CONTENT_TYPE = "text/html; charset=utf-8"


def day_page_key(report_date: date) -> str:
    """`reports/settlement_balance/date=<D>/day_<D>.html`: next to the CSV finance opens."""
    d = report_date.isoformat()
    return f"{REPORT_PREFIX}/date={d}/day_{d}.html"


def write_day_page(engine: sa.Engine, store: ObjectStore, date: date, days: int = 30) -> str:
    """Read D's picture from the warehouse, render it and put it (atomically) in the store.

    Call it after D's publication finished (status complete/partial committed), so the page
    shows the published state. Returns the object key."""
    html = render_day_page(load_day_picture(engine, date, days))
    key = day_page_key(date)
    store.put(key, html.encode("utf-8"), content_type=CONTENT_TYPE)
    return key
