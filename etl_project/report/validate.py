"""Validation with quarantine: split an Arrow table into the rows a model accepts and the rest.

`split_valid` runs a pandera.polars model lazily (every failure at once, vectorised), then:
- frame-level failures (a missing, extra or misplaced column, a wrong dtype, a broken frame
  rule such as one report date per frame) raise `SchemaViolation`: no row can be trusted;
- row-level failures remove exactly the failing rows, each returned as a `Rejected` naming
  every check it failed. All rows sharing a duplicated (accountUUID, Ccy) are rejected —
  there is no way to tell which one is right, so none is kept, and none is summed. Their
  reason is `duplicate_reason`'s, the same text in the balances and the report stage.

Only failing rows are visited in Python; valid rows stay in Arrow, and the duplicate counts
are one polars group-by over the failing rows.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Sequence
from datetime import date, datetime
from typing import Any, cast

import numpy as np
import pandera.polars as pa_pl
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc
from pandera.config import ValidationDepth, config_context
from pandera.errors import SchemaErrors

from etl_project.errors import EtlError
from etl_project.model import Rejected
from etl_project.report.schema import CHECK_UNIQUE_KEY, KEY_COLUMNS
from etl_project.report.serialise import amount_text

#: pandera's names of the structural (frame-level) checks.
_MISSING = "column_in_dataframe"
_EXTRA = "column_in_schema"
_ORDER = "column_ordered"


def duplicate_reason(count: int, sources: Sequence[str]) -> str:
    """Why every row of a repeated (accountUUID, Ccy) is quarantined: how often it was listed,
    and by which sources when more than one source listed it (the report stage)."""
    listed = f"duplicate ({', '.join(KEY_COLUMNS)}): listed {count} times"
    distinct = sorted(set(sources))
    if len(distinct) <= 1:
        return f"{listed} by the venue"
    return f"{listed}, by sources {', '.join(distinct)}"


def quarantine_shadowed(
    table: pa.Table, rejected: Sequence[Rejected]
) -> tuple[pa.Table, list[Rejected]]:
    """Rows of one source's balances whose (accountUUID, Ccy) the venue also listed in a row
    rejected for a bad value: they go to quarantine as duplicates, never "first wins".

    `rejected` are the connector's own rejects; those whose record names an accountUUID and a
    Ccy count as listings of that key. Returns the kept rows (input order) and the new rejects.
    """
    listed: dict[tuple[str, str], int] = defaultdict(int)
    for r in rejected:
        account, ccy = r.record.get(KEY_COLUMNS[0]), r.record.get(KEY_COLUMNS[1])
        if isinstance(account, str) and isinstance(ccy, str):
            listed[(account, ccy)] += 1
    if not listed or not table.num_rows:
        return table, []
    keys = pc.binary_join_element_wise(
        table.column(KEY_COLUMNS[0]), table.column(KEY_COLUMNS[1]), _SEP
    )
    shadowed = pc.is_in(keys, value_set=pa.array([_SEP.join(k) for k in listed], pa.string()))
    mask = pc.fill_null(shadowed, False).combine_chunks().to_numpy(zero_copy_only=False)
    if not mask.any():
        return table, []
    moved = table.filter(pa.array(mask))
    records = _records(moved)
    for record in records:
        listed[(record[KEY_COLUMNS[0]], record[KEY_COLUMNS[1]])] += 1
    out = [
        Rejected(
            source=str(record.get("source") or "unknown"),
            check=CHECK_UNIQUE_KEY,
            reason=duplicate_reason(listed[(record[KEY_COLUMNS[0]], record[KEY_COLUMNS[1]])], []),
            record=record,
        )
        for record in records
    ]
    return table.filter(pa.array(~mask)), out


_SEP = "\x1f"  # cannot occur in a UUID or a currency code


class SchemaViolation(EtlError):
    """The frame itself does not fit the model (columns, their order or dtypes, frame rules).

    The message is one line naming each column and what is wrong; `problems` lists them.
    """

    def __init__(self, model: str, problems: list[str]) -> None:
        self.model = model
        self.problems = problems
        super().__init__(f"{model}: " + "; ".join(problems))


def split_valid(
    table: pa.Table, model: type[pa_pl.DataFrameModel]
) -> tuple[pa.Table, list[Rejected]]:
    """Rows of `table` that pass `model`, and a `Rejected` for every row that does not.

    The valid table keeps the input's schema and row order. Raises `SchemaViolation` for
    frame-level failures.
    """
    valid, rejected, _ = split_valid_at(table, model)
    return valid, rejected


def split_valid_at(
    table: pa.Table, model: type[pa_pl.DataFrameModel]
) -> tuple[pa.Table, list[Rejected], np.ndarray]:
    """`split_valid`, plus the row index of each `Rejected` (ascending, one per row)."""
    cases = _failure_cases(table, model)
    if cases is None:
        return table, [], np.zeros(0, np.int64)
    frame_level = cases.filter(pl.col("index").is_null())
    if frame_level.height:
        raise SchemaViolation(_model_name(model), _frame_problems(frame_level, model))

    row_cases = cases.filter(pl.col("index").is_not_null())
    bad = np.unique(row_cases["index"].to_numpy())
    keep = np.ones(table.num_rows, dtype=bool)
    keep[bad] = False
    valid = table.filter(pa.array(keep))
    rejected = _rejections(table.take(pa.array(bad)), bad, row_cases)

    leftover = _failure_cases(valid, model)
    if leftover is not None:  # cannot happen: row checks are per row, frame checks passed
        raise AssertionError(
            f"rows left after quarantine still fail {_model_name(model)}: {leftover.head(5).rows()}"
        )
    return valid, rejected, bad


def _model_name(model: type[pa_pl.DataFrameModel]) -> str:
    return str(model.to_schema().name or model.__name__)


def _failure_cases(table: pa.Table, model: type[pa_pl.DataFrameModel]) -> pl.DataFrame | None:
    """pandera's failure cases for `table` (None when it validates clean)."""
    frame = cast(pl.DataFrame, pl.from_arrow(table))
    # Validation cannot be switched off or thinned out by PANDERA_* environment variables.
    with config_context(validation_enabled=True, validation_depth=ValidationDepth.SCHEMA_AND_DATA):
        try:
            model.validate(frame, lazy=True)
        except SchemaErrors as exc:
            return cast(pl.DataFrame, exc.failure_cases)
    return None


def _frame_problems(cases: pl.DataFrame, model: type[pa_pl.DataFrameModel]) -> list[str]:
    """One short phrase per frame-level failure, structural ones first (the rest follow)."""
    schema = model.to_schema()
    columns = schema.columns
    missing, extra, order, dtypes, other = [], [], [], [], []
    for case in cases.iter_rows(named=True):
        check = str(case["check"])
        value = _one_line(case["failure_case"])
        if check == _MISSING:
            missing.append(f"{value}: column missing")
        elif check == _EXTRA:
            extra.append(f"{value}: column not in the schema")
        elif check == _ORDER:
            order.append(f"{value}: column out of order")
        elif check.startswith("dtype("):
            name = str(case["column"])
            expected = columns[name].dtype if name in columns else "?"
            dtypes.append(f"{name}: wrong dtype {value}, expected {expected}")
        else:  # a frame rule, or a check that could not run
            where = "" if case["column"] == schema.name else f"{case['column']}: "
            detail = "" if value in ("False", "None") else f" ({value})"
            other.append(f"{where}{check} failed{detail}")
    # A missing or extra column shifts every later one; their order errors are noise.
    structural = missing + extra + (order if not (missing or extra) else []) + dtypes
    return structural or other


def _one_line(value: object, limit: int = 200) -> str:
    text = " ".join(str(value).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _rejections(rows: pa.Table, indices: np.ndarray, cases: pl.DataFrame) -> list[Rejected]:
    """A `Rejected` per failing row (`rows` = those rows in input order, at `indices`)."""
    records = _records(rows)
    position = {int(index): n for n, index in enumerate(indices)}
    amounts = {f.name for f in rows.schema if pa.types.is_decimal(f.type)}

    failures: dict[int, list[tuple[str, str]]] = defaultdict(list)
    for column, check, index in cases.select("column", "check", "index").iter_rows():
        failures[position[int(index)]].append((str(column), str(check)))

    duplicates = _duplicate_reasons(rows)
    rejected = []
    for n, record in enumerate(records):
        checks: list[str] = []
        reasons: list[str] = []
        for column, check in failures[n]:
            if check not in checks:
                checks.append(check)
            if check == CHECK_UNIQUE_KEY:
                reasons.append(duplicates[n])
            else:
                value = _shown(record.get(column), column in amounts)
                reasons.append(f"{column}: {check} failed for {value}")
        source = record.get("source")
        rejected.append(
            Rejected(
                source=source if isinstance(source, str) and source else "unknown",
                check=", ".join(checks),
                reason="; ".join(reasons),
                record=record,
            )
        )
    return rejected


def _duplicate_reasons(rows: pa.Table) -> list[str]:
    """Per failing row, the duplicate reason of its key (how many rows, which sources).

    Every row of a duplicated key fails, so counting among the failing rows counts them all.
    Rows whose key is not duplicated get a reason too; it is only read for duplicates.
    """
    columns = [c for c in (*KEY_COLUMNS, "source") if c in rows.column_names]
    frame = cast(pl.DataFrame, pl.from_arrow(rows.select(columns)))
    if "source" not in frame.columns:
        frame = frame.with_columns(pl.lit(None, pl.String).alias("source"))
    source = pl.col("source").fill_null("unknown")
    counted = frame.select(
        pl.len().over(KEY_COLUMNS).alias("count"),
        source.unique().over(KEY_COLUMNS, mapping_strategy="join").alias("sources"),
    )
    return [duplicate_reason(count, sources) for count, sources in counted.iter_rows()]


def _shown(value: object, amount: bool) -> str:
    """A value in a reason: amounts bare, text in JSON quotes (whitespace visible), null."""
    if amount and isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False)


def _records(rows: pa.Table) -> list[dict[str, Any]]:
    """Rows as JSON-friendly dicts: amounts as exact plain decimal text, dates ISO."""
    columns: dict[str, list[Any]] = {}
    for field in rows.schema:
        column = rows.column(field.name)
        if pa.types.is_decimal(field.type):
            columns[field.name] = amount_text(column).to_pylist()
        elif pa.types.is_timestamp(field.type) or pa.types.is_date(field.type):
            columns[field.name] = [_iso(v) for v in column.to_pylist()]
        else:
            columns[field.name] = column.to_pylist()
    names = list(columns)
    return [dict(zip(names, values, strict=True)) for values in zip(*columns.values(), strict=True)]


def _iso(value: date | datetime | None) -> str | None:
    return None if value is None else value.isoformat()
