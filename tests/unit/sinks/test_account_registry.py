"""Account registry on DuckDB: a venue that lists fewer accounts than on recent published dates
names each missing one, backfills stay honest, retirement and relisting behave.

The database tests take a `conn` fixture (a connection whose transaction is open, like the
publish's); tests/integration/test_account_registry_postgres.py runs them on PostgreSQL too.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path

import duckdb
import pytest
import sqlalchemy as sa

from etl_project.sinks.account_registry import (
    REGISTRY_TABLE,
    ExpectedAccount,
    expected_accounts,
    gap_reason,
    read_registry,
    record_listed,
    reinstate_account,
    retire_account,
    vanished,
)
from etl_project.sinks.warehouse import Warehouse

D = date(2024, 4, 10)
KRAKEN = "kraken_main"
SAXO = "saxo_main"


def day(offset: int) -> date:
    return D + timedelta(days=offset)


def listing(
    *ids: str, source: str = KRAKEN, venue: str = "kraken_futures", names: bool = True
) -> list[tuple[str, str, str, str | None]]:
    """One source's listing; names `name-<id>` unless `names` is False."""
    return [(source, venue, i, f"name-{i}" if names else None) for i in ids]


def ids(accounts: list[ExpectedAccount]) -> list[str]:
    return [a.account_id for a in accounts]


@pytest.fixture()
def conn() -> Iterator[sa.Connection]:
    engine = sa.create_engine("duckdb:///:memory:")
    with engine.connect() as connection:  # autobegins a transaction, as the publish has one
        REGISTRY_TABLE.create(connection)
        yield connection
    engine.dispose()


# --- pure ----------------------------------------------------------------------------------


def test_gap_text_exactly() -> None:
    named = ExpectedAccount(KRAKEN, "kraken_futures", "acc-1", "okx-desk", date(2024, 4, 9))
    assert gap_reason(named) == "okx-desk (acc-1): listed on 2024-04-09, absent today"
    anonymous = ExpectedAccount(SAXO, "saxo", "K7|x", None, date(2024, 3, 31))
    assert gap_reason(anonymous) == "K7|x: listed on 2024-03-31, absent today"
    blank = ExpectedAccount(SAXO, "saxo", "K8", "", date(2024, 3, 31))
    assert gap_reason(blank) == "K8: listed on 2024-03-31, absent today"


def test_vanished_keeps_expected_order_and_ignores_new_accounts() -> None:
    expected = [ExpectedAccount(KRAKEN, "k", i, None, day(-1)) for i in ("a", "b", "c")]
    assert vanished(expected, ["b", "new"]) == [expected[0], expected[2]]
    assert vanished(expected, {"a", "b", "c"}) == []
    assert vanished(expected, []) == expected
    assert vanished([], ["a"]) == []


# --- on a database (also run on PostgreSQL) ------------------------------------------------


def test_first_listing_records_accounts_on_that_date(conn: sa.Connection) -> None:
    assert record_listed(conn, D, "run-1", listing("a", "b")) == 2
    rows = read_registry(conn)
    assert rows == [
        {
            "source": KRAKEN,
            "venue": "kraken_futures",
            "account_id": i,
            "account_name": f"name-{i}",
            "first_seen": D,
            "last_seen": D,
            "retired_on": None,
            "retired_reason": None,
            "last_run_id": "run-1",
        }
        for i in ("a", "b")
    ]
    assert record_listed(conn, D, "run-1", []) == 0
    # nothing is expected on the date an account first appears, nor before it
    assert expected_accounts(conn, KRAKEN, D, 7) == []
    assert expected_accounts(conn, KRAKEN, day(-1), 7) == []


def test_shrunken_listing_names_each_missing_account(conn: sa.Connection) -> None:
    record_listed(
        conn, day(-1), "run-1", [*listing("a", "b"), (KRAKEN, "kraken_futures", "c", None)]
    )
    expected = expected_accounts(conn, KRAKEN, D, 7)
    assert expected == [
        ExpectedAccount(KRAKEN, "kraken_futures", "a", "name-a", day(-1)),
        ExpectedAccount(KRAKEN, "kraken_futures", "b", "name-b", day(-1)),
        ExpectedAccount(KRAKEN, "kraken_futures", "c", None, day(-1)),
    ]
    gone = vanished(expected, [])  # Kraken answered `subaccounts: []`
    assert [f"{KRAKEN}/{gap_reason(a)}" for a in gone] == [
        "kraken_main/name-a (a): listed on 2024-04-09, absent today",
        "kraken_main/name-b (b): listed on 2024-04-09, absent today",
        "kraken_main/c: listed on 2024-04-09, absent today",
    ]
    assert ids(vanished(expected, ["a", "c"])) == ["b"]


def test_look_back_window_edges(conn: sa.Connection) -> None:
    record_listed(conn, day(-30), "run-0", listing("edge", "old", "yesterday"))
    record_listed(conn, day(-7), "run-1", listing("edge"))
    record_listed(conn, day(-8), "run-2", listing("old"))
    record_listed(conn, day(-1), "run-3", listing("yesterday"))
    assert ids(expected_accounts(conn, KRAKEN, D, 7)) == ["edge", "yesterday"]
    assert ids(expected_accounts(conn, KRAKEN, D, 8)) == ["edge", "old", "yesterday"]
    assert ids(expected_accounts(conn, KRAKEN, D, 1)) == ["yesterday"]
    assert expected_accounts(conn, KRAKEN, D, 0) == []  # look-back off
    with pytest.raises(ValueError, match="lookback_days"):
        expected_accounts(conn, KRAKEN, D, -1)


def test_other_sources_are_not_expected(conn: sa.Connection) -> None:
    record_listed(conn, day(-1), "run-1", listing("a"))
    record_listed(conn, day(-1), "run-1", listing("K1", source=SAXO, venue="saxo", names=False))
    assert ids(expected_accounts(conn, SAXO, D, 7)) == ["K1"]
    assert [r["account_id"] for r in read_registry(conn, SAXO)] == ["K1"]
    assert [r["source"] for r in read_registry(conn)] == [KRAKEN, SAXO]


def test_relisting_widens_the_dates_and_the_newest_name_wins(conn: sa.Connection) -> None:
    record_listed(conn, D, "run-1", [(KRAKEN, "kraken_futures", "a", "desk")])
    record_listed(conn, day(2), "run-2", [(KRAKEN, "kraken_futures", "a", "desk-2")])
    record_listed(conn, day(3), "run-3", [(KRAKEN, "kraken_futures", "a", None)])  # no name given
    record_listed(conn, day(-5), "run-4", [(KRAKEN, "kraken_futures", "a", "desk-old")])  # backfill
    (row,) = read_registry(conn)
    assert (row["first_seen"], row["last_seen"]) == (day(-5), day(3))
    assert row["account_name"] == "desk-2"
    assert row["last_run_id"] == "run-4"


def test_a_name_arrives_late(conn: sa.Connection) -> None:
    record_listed(conn, D, "run-1", [(KRAKEN, "kraken_futures", "a", None)])
    record_listed(conn, day(-1), "run-2", [(KRAKEN, "kraken_futures", "a", "desk")])  # backfill
    assert read_registry(conn)[0]["account_name"] == "desk"


def test_duplicates_in_one_listing_are_one_account(conn: sa.Connection) -> None:
    rows = [(KRAKEN, "kraken_futures", "a", "desk"), (KRAKEN, "kraken_futures", "a", None)]
    assert record_listed(conn, D, "run-1", rows) == 1
    assert [(r["account_id"], r["account_name"]) for r in read_registry(conn)] == [("a", "desk")]


def test_backfill_of_an_older_date_does_not_expect_newer_accounts(conn: sa.Connection) -> None:
    record_listed(conn, day(-3), "run-1", listing("a"))
    record_listed(conn, day(-2), "run-2", listing("a", "b"))
    record_listed(conn, day(-1), "run-3", listing("a", "b", "c"))
    assert ids(expected_accounts(conn, KRAKEN, day(-2), 7)) == ["a"]  # b first seen on -2
    assert ids(expected_accounts(conn, KRAKEN, day(-1), 7)) == ["a", "b"]
    assert ids(expected_accounts(conn, KRAKEN, day(-3), 7)) == []


def test_rerun_of_an_old_date_expects_accounts_seen_before_and_after_it(
    conn: sa.Connection,
) -> None:
    record_listed(conn, day(-20), "run-1", listing("a", "b"))
    record_listed(conn, day(-10), "run-2", listing("a"))
    record_listed(conn, D, "run-3", listing("a", "b"))
    expected = expected_accounts(conn, KRAKEN, day(-10), 7)
    assert [(a.account_id, a.last_seen) for a in expected] == [("a", D), ("b", D)]
    assert ids(vanished(expected, ["a"])) == ["b"]


def test_retirement_stops_the_expectation_from_its_date(conn: sa.Connection) -> None:
    record_listed(conn, day(-2), "run-1", listing("a", "b"))
    assert retire_account(conn, KRAKEN, "b", D, "closed by the desk") is True
    assert retire_account(conn, KRAKEN, "nope", D, "typo") is False
    assert retire_account(conn, SAXO, "b", D, "wrong source") is False
    with pytest.raises(ValueError, match="reason"):
        retire_account(conn, KRAKEN, "a", D, " ")
    assert ids(expected_accounts(conn, KRAKEN, D, 7)) == ["a"]
    assert ids(expected_accounts(conn, KRAKEN, day(1), 7)) == ["a"]
    assert ids(expected_accounts(conn, KRAKEN, day(-1), 7)) == ["a", "b"]  # before retirement
    row = read_registry(conn)[1]
    assert (row["retired_on"], row["retired_reason"]) == (D, "closed by the desk")


def test_reinstate_by_hand(conn: sa.Connection) -> None:
    record_listed(conn, day(-1), "run-1", listing("a"))
    retire_account(conn, KRAKEN, "a", D, "mistake")
    assert reinstate_account(conn, KRAKEN, "a") is True
    assert reinstate_account(conn, KRAKEN, "nope") is False
    assert ids(expected_accounts(conn, KRAKEN, D, 7)) == ["a"]
    assert read_registry(conn)[0]["retired_reason"] is None


def test_relisting_after_retirement_reinstates_but_a_backfill_does_not(
    conn: sa.Connection,
) -> None:
    record_listed(conn, day(-5), "run-1", listing("a"))
    retire_account(conn, KRAKEN, "a", day(-2), "gone")
    record_listed(conn, day(-3), "run-2", listing("a"))  # backfill before the retirement
    assert read_registry(conn)[0]["retired_on"] == day(-2)
    assert expected_accounts(conn, KRAKEN, D, 7) == []
    record_listed(conn, D, "run-3", listing("a"))  # the venue lists it again
    row = read_registry(conn)[0]
    assert (row["retired_on"], row["retired_reason"], row["last_seen"]) == (None, None, D)
    assert ids(expected_accounts(conn, KRAKEN, day(1), 7)) == ["a"]


def test_record_listed_rolls_back_with_the_publish_transaction(conn: sa.Connection) -> None:
    record_listed(conn, day(-1), "run-1", listing("a"))
    conn.commit()
    record_listed(conn, D, "run-2", listing("a", "b"))
    conn.rollback()  # e.g. the report load failed
    (row,) = read_registry(conn)
    assert (row["account_id"], row["last_seen"], row["last_run_id"]) == ("a", day(-1), "run-1")


# --- DuckDB file through the Warehouse -----------------------------------------------------


def test_ensure_schema_creates_the_registry_with_comments(tmp_path: Path) -> None:
    path = tmp_path / "wh.duckdb"
    wh = Warehouse(f"duckdb:///{path}")
    wh.ensure_schema()
    with wh.engine.begin() as connection:
        record_listed(connection, D, "run-1", listing("a"))
    with wh.engine.connect() as connection:
        assert ids(expected_accounts(connection, KRAKEN, day(1), 7)) == ["a"]
    assert [r["account_id"] for r in wh.read_table(REGISTRY_TABLE.name)] == ["a"]
    wh.dispose()
    with duckdb.connect(str(path)) as con:
        table = con.execute(
            "select comment from duckdb_tables() where table_name = ?", [REGISTRY_TABLE.name]
        ).fetchone()
        columns = dict(
            con.execute(
                "select column_name, comment from duckdb_columns() where table_name = ?",
                [REGISTRY_TABLE.name],
            ).fetchall()
        )
        pk = con.execute(
            "select constraint_column_names from duckdb_constraints() "
            "where table_name = ? and constraint_type = 'PRIMARY KEY'",
            [REGISTRY_TABLE.name],
        ).fetchone()
    assert table is not None and table[0] == REGISTRY_TABLE.comment
    assert columns == {c.name: c.comment for c in REGISTRY_TABLE.columns}
    assert all(columns.values())
    assert pk is not None and list(pk[0]) == ["source", "account_id"]
