"""Test helper: a balances table as the report's CSV text (drop all-zero rows, sort)."""

from __future__ import annotations

from decimal import Context, Decimal

import pyarrow as pa

from etl_project.report.columns import AMOUNT_COLUMNS, BOOL_COLUMNS, REPORT_COLUMNS, SORT_KEY


def fmt_amount(value: Decimal) -> str:
    """Plain decimal text: no exponent, no padding zeros (normalize(100) is 1E+2: 'f' fixes it)."""
    normal = value.normalize(Context(prec=80))
    return "0" if normal == 0 else format(normal, "f")


def report_rows(table: pa.Table) -> list[dict[str, str]]:
    """The report's CSV text of a balances table: all-zero rows dropped, sorted (spec §1)."""
    rows = []
    for row in table.to_pylist():
        if all(row[name] == 0 for name in AMOUNT_COLUMNS):
            continue
        out = {}
        for name in REPORT_COLUMNS:
            value = row[name]
            if name in AMOUNT_COLUMNS:
                out[name] = fmt_amount(value)
            elif name in BOOL_COLUMNS:
                out[name] = "TRUE" if value else "FALSE"
            else:
                out[name] = "" if value is None else str(value)
        rows.append(out)
    return sorted(rows, key=lambda r: tuple(r[k] for k in SORT_KEY))
