"""Completeness of a source as Arrow tables: which accounts were expected, received, failed.

A settlement report lists hundreds of thousands of accounts, so the per-account status travels
between stages as Parquet (`accounts.parquet` beside the balances, `completeness.parquet`
beside the staged report), not as JSON lists in the manifests; only the gaps, which an
operator reads, are Python objects.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, cast

import polars as pl
import pyarrow as pa
import pyarrow.compute as pc

from etl_project.config import SourceConfig
from etl_project.model import AccountStatus
from etl_project.sinks.account_registry import ExpectedAccount

ACCOUNTS_SCHEMA = pa.schema(
    [
        ("account_id", pa.string()),
        ("status", pa.string()),  # received | failed
        ("reason", pa.string()),
        ("name", pa.string()),
    ]
)

COMPLETENESS_SCHEMA = pa.schema(
    [
        ("source", pa.string()),
        ("venue", pa.string()),
        ("account_id", pa.string()),
        ("account_name", pa.string()),
        ("expected", pa.bool_()),
        ("received", pa.bool_()),
        ("failed", pa.bool_()),
        ("listed", pa.bool_()),  # the venue listed it today (received or failed, not vanished)
        ("reason", pa.string()),
    ]
)


def accounts_table(accounts: Sequence[AccountStatus]) -> pa.Table:
    """A connector's account statuses, columnar."""
    return pa.table(
        {
            "account_id": [a.account_id for a in accounts],
            "status": [a.status for a in accounts],
            "reason": [a.reason for a in accounts],
            "name": [a.name for a in accounts],
        },
        schema=ACCOUNTS_SCHEMA,
    )


def unique_accounts(accounts: pa.Table) -> pa.Table:
    """One row per venue account, in first-seen order; a failure wins over a receipt."""
    if accounts.num_rows == 0:
        return ACCOUNTS_SCHEMA.empty_table()
    frame = cast(pl.DataFrame, pl.from_arrow(accounts)).with_row_index("_order")
    kept = (
        frame.sort(["account_id", pl.col("status") == "received", "_order"])
        .unique("account_id", keep="first")
        .sort("_order")
        .drop("_order")
    )
    return kept.to_arrow().cast(ACCOUNTS_SCHEMA)


def source_completeness(
    source: SourceConfig, accounts: pa.Table, expected: Sequence[ExpectedAccount]
) -> tuple[pa.Table, list[dict[str, str]]]:
    """The completeness rows of one delivered source and its gaps (failed accounts, then
    expected accounts the venue no longer lists)."""
    accounts = unique_accounts(accounts)
    received = pc.equal(accounts.column("status"), "received")
    n = accounts.num_rows
    listed = {
        "source": pa.repeat(pa.scalar(source.name), n),
        "venue": pa.repeat(pa.scalar(source.kind), n),
        "account_id": accounts.column("account_id"),
        "account_name": accounts.column("name"),
        "expected": pa.repeat(pa.scalar(True), n),
        "received": received,
        "failed": pc.invert(received),
        "listed": pa.repeat(pa.scalar(True), n),
        "reason": accounts.column("reason"),
    }
    table = pa.table(listed, schema=COMPLETENESS_SCHEMA)
    failed = accounts.filter(pc.invert(received)).to_pylist()
    gaps = [gap(source.name, a["account_id"], a["name"], a["reason"] or "failed") for a in failed]
    gone = _vanished(expected, accounts.column("account_id"))
    if gone:
        rows = []
        for acc in gone:
            reason = f"listed on {acc.last_seen.isoformat()}, absent today"
            gaps.append(gap(source.name, acc.account_id, acc.name, reason))
            rows.append(_row(source, acc.account_id, acc.name, reason, listed=False))
        table = pa.concat_tables([table, pa.Table.from_pylist(rows, schema=COMPLETENESS_SCHEMA)])
    return table, gaps


def failed_source(source: SourceConfig, reason: str) -> tuple[pa.Table, dict[str, str]]:
    """A source that delivered nothing: one row `*` and one gap."""
    row = _row(source, "*", None, reason, listed=False)
    return pa.Table.from_pylist([row], schema=COMPLETENESS_SCHEMA), gap(
        source.name, "*", None, reason
    )


def account_label(account_id: str, name: str | None) -> str:
    """How an operator knows an account: `<display name> (<id>)`, else the id."""
    return f"{name} ({account_id})" if name and name != account_id else account_id


def gap(source: str, account_id: str, name: str | None, reason: str) -> dict[str, str]:
    return {
        "source": source,
        "account_id": account_id,
        "account": account_label(account_id, name),
        "reason": reason,
    }


def _vanished(
    expected: Sequence[ExpectedAccount], listed: pa.ChunkedArray
) -> list[ExpectedAccount]:
    if not expected:
        return []
    ids = pa.array([e.account_id for e in expected], pa.string())
    present = pc.is_in(ids, value_set=listed.combine_chunks()).to_pylist()
    return [e for e, here in zip(expected, present, strict=True) if not here]


def _row(
    source: SourceConfig, account_id: str, name: str | None, reason: str, *, listed: bool
) -> dict[str, Any]:
    return {
        "source": source.name,
        "venue": source.kind,
        "account_id": account_id,
        "account_name": name,
        "expected": True,
        "received": False,
        "failed": True,
        "listed": listed,
        "reason": reason,
    }
