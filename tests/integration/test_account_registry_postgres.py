"""Account registry on a real PostgreSQL: the DuckDB behaviour tests run again here (same
bodies, a PostgreSQL `conn`), plus comments and two dates publishing at once."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import date

import pytest
import sqlalchemy as sa

from etl_project.sinks.account_registry import (
    REGISTRY_TABLE,
    expected_accounts,
    read_registry,
    record_listed,
)
from etl_project.sinks.warehouse import Warehouse
from tests.unit.sinks.test_account_registry import (
    KRAKEN,
    listing,
    test_a_name_arrives_late,
    test_backfill_of_an_older_date_does_not_expect_newer_accounts,
    test_duplicates_in_one_listing_are_one_account,
    test_first_listing_records_accounts_on_that_date,
    test_look_back_window_edges,
    test_other_sources_are_not_expected,
    test_record_listed_rolls_back_with_the_publish_transaction,
    test_reinstate_by_hand,
    test_relisting_after_retirement_reinstates_but_a_backfill_does_not,
    test_relisting_widens_the_dates_and_the_newest_name_wins,
    test_rerun_of_an_old_date_expects_accounts_seen_before_and_after_it,
    test_retirement_stops_the_expectation_from_its_date,
    test_shrunken_listing_names_each_missing_account,
)

pytestmark = pytest.mark.postgres

SHARED = [
    test_a_name_arrives_late,
    test_backfill_of_an_older_date_does_not_expect_newer_accounts,
    test_duplicates_in_one_listing_are_one_account,
    test_first_listing_records_accounts_on_that_date,
    test_look_back_window_edges,
    test_other_sources_are_not_expected,
    test_record_listed_rolls_back_with_the_publish_transaction,
    test_reinstate_by_hand,
    test_relisting_after_retirement_reinstates_but_a_backfill_does_not,
    test_relisting_widens_the_dates_and_the_newest_name_wins,
    test_rerun_of_an_old_date_expects_accounts_seen_before_and_after_it,
    test_retirement_stops_the_expectation_from_its_date,
    test_shrunken_listing_names_each_missing_account,
]  # collected here too; they take the PostgreSQL `conn` below


@pytest.fixture()
def engine(pg_schema: str) -> Iterator[sa.Engine]:
    """An engine on a throw-away schema holding only the registry."""
    eng = sa.create_engine(pg_schema)
    with eng.begin() as connection:
        REGISTRY_TABLE.create(connection)
    yield eng
    eng.dispose()


@pytest.fixture()
def conn(engine: sa.Engine) -> Iterator[sa.Connection]:
    with engine.connect() as connection:  # autobegins a transaction, as the publish has one
        yield connection


def test_ensure_schema_creates_the_registry_with_comments(pg_schema: str) -> None:
    wh = Warehouse(pg_schema)
    wh.ensure_schema()
    sql = sa.text(
        "SELECT a.attname, col_description(a.attrelid, a.attnum) FROM pg_attribute a "
        "WHERE a.attrelid = to_regclass(:t) AND a.attnum > 0 AND NOT a.attisdropped"
    )
    with wh.engine.connect() as connection:
        columns = dict(connection.execute(sql, {"t": REGISTRY_TABLE.name}).tuples().all())
        table = connection.execute(
            sa.text("SELECT obj_description(to_regclass(:t), 'pg_class')"),
            {"t": REGISTRY_TABLE.name},
        ).scalar()
        pk = connection.execute(
            sa.text(
                "SELECT a.attname FROM pg_index i JOIN pg_attribute a "
                "ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey) "
                "WHERE i.indrelid = to_regclass(:t) AND i.indisprimary ORDER BY a.attnum"
            ),
            {"t": REGISTRY_TABLE.name},
        ).scalars()
        assert list(pk) == ["source", "account_id"]
    wh.dispose()
    assert table == REGISTRY_TABLE.comment
    assert columns == {c.name: c.comment for c in REGISTRY_TABLE.columns}


def test_two_dates_publishing_at_once_merge_without_deadlock(engine: sa.Engine) -> None:
    """Two publish transactions (different dates, so no shared date lock) upsert overlapping
    accounts listed in opposite orders: the second waits for the first, none fails."""
    accounts = [f"acc-{i:04d}" for i in range(3000)]  # unsorted, these deadlock
    dates = [date(2024, 4, 9), date(2024, 4, 11)]
    barrier = threading.Barrier(2)
    errors: list[BaseException] = []

    def publish(day: date, order: list[str]) -> None:
        try:
            with engine.begin() as connection:
                barrier.wait()
                record_listed(connection, day, f"run-{day}", listing(*order))
        except BaseException as exc:
            errors.append(exc)

    threads = [
        threading.Thread(target=publish, args=(dates[0], accounts)),
        threading.Thread(target=publish, args=(dates[1], accounts[::-1])),
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert errors == []
    with engine.connect() as connection:
        rows = read_registry(connection, KRAKEN)
        assert {(r["first_seen"], r["last_seen"]) for r in rows} == {tuple(dates)}
        assert len(expected_accounts(connection, KRAKEN, date(2024, 4, 10), 7)) == 3000
