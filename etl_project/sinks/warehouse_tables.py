"""Warehouse tables (spec §1): the report, the quarantine, a helper for further per-date tables,
and the database-free half of the sink (Arrow schema, row conforming, CSV codecs).

Every table here is keyed by `report_date` first and has a comment on itself and on every column;
`Warehouse.ensure_schema` creates them and keeps those comments in place on PostgreSQL and DuckDB.
Column names come from `report.columns` so the contract's spelling lives in one place.
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterator, Mapping, Sequence
from decimal import Decimal
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import sqlalchemy as sa

from etl_project.report.columns import AMOUNT_PRECISION, AMOUNT_SCALE, COLUMNS, Column

METADATA = sa.MetaData()

#: Comments of the lineage and trace columns, shared by every table that carries them.
LINEAGE_COMMENTS: dict[str, str] = {
    "report_date": "Report date D (UTC calendar day) the row belongs to",
    "source": "Configured source name the row came from (lineage)",
    "venue": "Venue kind of the source: kraken_futures, saxo, platform or settlement_report",
    "venue_account_id": "The venue's own account id, kept for traceability",
    "wallet": "The venue's own wallet or sub-account name, kept for traceability",
    "snapshot_at": "When the venue snapshot behind the row was taken (UTC)",
    "run_id": "Id of the pipeline run that wrote the row",
}


class ExactDecimal(sa.TypeDecorator[Decimal]):
    """NUMERIC(p,s) whose values travel as `Decimal` both ways on every driver.

    SQLAlchemy's plain `Numeric` converts through `float` on dialects without
    `supports_native_decimal` -- duckdb-engine among them -- which turns
    -0.0009056832839642471 into ...709. DuckDB binds and returns `Decimal` exactly itself.
    """

    impl = sa.Numeric
    cache_ok = True

    def bind_processor(self, dialect: sa.Dialect) -> Any:
        if dialect.name == "duckdb":
            return None
        return super().bind_processor(dialect)

    def result_processor(self, dialect: sa.Dialect, coltype: object) -> Any:
        if dialect.name == "duckdb":
            return _as_decimal
        return super().result_processor(dialect, coltype)


def _as_decimal(value: object) -> Decimal | None:
    if value is None or isinstance(value, Decimal):
        return value
    return Decimal(str(value))


#: The exact decimal type of every amount (spec §1: NUMERIC(38,20)).
AMOUNT = ExactDecimal(AMOUNT_PRECISION, AMOUNT_SCALE)
TIMESTAMPTZ = sa.DateTime(timezone=True)


def lineage_column(
    name: str, type_: sa.types.TypeEngine[Any] | None = None, *, nullable: bool = False
) -> sa.Column[Any]:
    """A lineage/trace column (`source`, `run_id`, `snapshot_at`, …) with its standard comment."""
    if type_ is None:
        type_ = TIMESTAMPTZ if name == "snapshot_at" else sa.Text()
    return sa.Column(name, type_, nullable=nullable, comment=LINEAGE_COMMENTS[name])


def dated_table(
    name: str,
    comment: str,
    *columns: sa.Column[Any],
    primary_key: Sequence[str] = (),
    metadata: sa.MetaData = METADATA,
) -> sa.Table:
    """A table whose first column is `report_date` (NOT NULL), registered on `metadata`.

    `primary_key` names the key columns after `report_date`; without one the table gets an
    index on `report_date` instead, since every write replaces one date. Every column must
    carry a comment (`ensure_schema` relies on it).
    """
    missing = [c.name for c in columns if not c.comment]
    if missing or not comment:
        raise ValueError(f"table {name}: comment required on the table and columns {missing}")
    args: list[sa.schema.SchemaItem] = [
        sa.Column(
            "report_date", sa.Date(), nullable=False, comment=LINEAGE_COMMENTS["report_date"]
        ),
        *columns,
    ]
    if primary_key:
        args.append(sa.PrimaryKeyConstraint("report_date", *primary_key, name=f"{name}_pkey"))
    else:
        args.append(sa.Index(f"ix_{name}_report_date", "report_date"))
    return sa.Table(name, metadata, *args, comment=comment)


def _report_column(column: Column) -> sa.Column[Any]:
    type_: sa.types.TypeEngine[Any]
    if column.kind == "amount":
        type_ = AMOUNT
    elif column.kind == "bool":
        type_ = sa.Boolean(create_constraint=False)
    else:
        type_ = sa.Text()
    comment = f"{column.name}: {column.description}"
    return sa.Column(column.sql, type_, nullable=column.kind == "email", comment=comment)


REPORT_TABLE = dated_table(
    "settlement_balance_report",
    "Daily settlement balance report (spec §1): one row per (account_uuid, ccy) and report date",
    *(_report_column(c) for c in COLUMNS),
    *(lineage_column(n) for n in ("source", "venue", "venue_account_id", "wallet")),
    lineage_column("snapshot_at"),
    lineage_column("run_id"),
    primary_key=("account_uuid", "ccy"),
)

QUARANTINE_TABLE = dated_table(
    "settlement_balance_quarantine",
    "Records rejected from the settlement balance report of a date, with the reason",
    lineage_column("source"),
    lineage_column("run_id"),
    sa.Column("check_name", sa.Text(), nullable=False, comment="Name of the check that failed"),
    sa.Column("reason", sa.Text(), nullable=False, comment="Why the record was rejected"),
    sa.Column(
        "record",
        sa.Text(),
        nullable=False,
        comment="The rejected record as JSON text, as the venue mapping saw it",
    ),
    sa.Column(
        "quarantined_at",
        TIMESTAMPTZ,
        nullable=False,
        comment="When the record was quarantined (UTC)",
    ),
)


def arrow_type(type_: sa.types.TypeEngine[Any]) -> pa.DataType:
    """The Arrow type a warehouse column is read into and loaded from."""
    if isinstance(type_, sa.TypeDecorator):
        type_ = type_.impl_instance
    if isinstance(type_, sa.Numeric) and not isinstance(type_, sa.Float):
        if type_.precision is None or type_.scale is None:
            raise TypeError("warehouse numerics need an explicit precision and scale")
        return pa.decimal128(type_.precision, type_.scale)
    if isinstance(type_, sa.Boolean):
        return pa.bool_()
    if isinstance(type_, sa.DateTime):
        return pa.timestamp("us", tz="UTC") if type_.timezone else pa.timestamp("us")
    if isinstance(type_, sa.Date):
        return pa.date32()
    if isinstance(type_, sa.Integer):
        return pa.int64()
    if isinstance(type_, sa.Float):
        return pa.float64()
    if isinstance(type_, sa.String):
        return pa.string()
    raise TypeError(f"no Arrow type for {type_!r}")


def arrow_schema(table: sa.Table) -> pa.Schema:
    """Arrow schema of `table`, columns in table order, nullability as declared."""
    return pa.schema(
        [pa.field(c.name, arrow_type(c.type), nullable=bool(c.nullable)) for c in table.columns]
    )


def conform(table: sa.Table, rows: pa.Table, fixed: Mapping[str, Any]) -> pa.Table:
    """`rows` ready to load into `table`: unknown columns refused, the `fixed` columns
    (report_date, scope) filled in when absent and checked when present, columns in table
    order, cast to the table's Arrow types (a safe cast: it refuses to round a decimal)."""
    schema = arrow_schema(table)
    unknown = [n for n in [*rows.column_names, *fixed] if n not in table.c]
    if unknown:
        raise ValueError(f"columns not in {table.name}: {unknown}")
    for name, value in fixed.items():
        if name not in rows.column_names:
            constant = pa.scalar(value, schema.field(name).type)
            rows = rows.append_column(name, pa.repeat(constant, rows.num_rows))
            continue
        same = pc.all(pc.equal(rows.column(name), value), min_count=0).as_py()
        if rows.column(name).null_count or not same:
            raise ValueError(f"rows for {table.name} have {name} other than {value!r}")
    names = [n for n in schema.names if n in rows.column_names]
    target = pa.schema([schema.field(n).with_nullable(True) for n in names])
    return rows.select(names).cast(target)


def record_json(record: Mapping[str, Any]) -> str:
    """A quarantined record as JSON text; Decimals in plain exact notation, dates ISO."""

    def default(value: Any) -> Any:
        if isinstance(value, Mapping):
            return dict(value)
        if isinstance(value, set | frozenset | tuple):
            return list(value)
        if isinstance(value, Decimal):
            return format(value, "f")  # 0.00000000346, not 3.46E-9
        return str(value)

    return json.dumps(dict(record), default=default, ensure_ascii=False, sort_keys=True)


def comment_queries(dialect: str) -> tuple[str, str] | None:
    """SQL reading the current column comments (name, comment) and the table comment of
    table `:t` on PostgreSQL or DuckDB; None where we rely on CREATE TABLE alone."""
    if dialect == "postgresql":  # :t is the table as regclass text (quoted, search_path)
        return (
            "SELECT a.attname, col_description(a.attrelid, a.attnum) FROM pg_attribute a "
            "WHERE a.attrelid = to_regclass(:t) AND a.attnum > 0 AND NOT a.attisdropped",
            "SELECT obj_description(to_regclass(:t), 'pg_class')",
        )
    if dialect == "duckdb":
        here = (
            "table_name = :t AND schema_name = current_schema() "
            "AND database_name = current_database()"
        )
        return (
            f"SELECT column_name, comment FROM duckdb_columns() WHERE {here}",
            f"SELECT comment FROM duckdb_tables() WHERE {here}",
        )
    return None


def csv_chunks(data: pa.Table, rows_per_chunk: int = 50_000) -> Iterator[memoryview]:
    """`data` as headerless CSV for PostgreSQL's `COPY … FROM STDIN (FORMAT csv)`, in chunks.

    pyarrow quotes every string and writes a null as an unquoted empty field: exactly
    FORMAT csv's NULL default, so "" stays an empty string. Decimals come out as exact text
    (sometimes with an exponent, 3.46000000000E-9, which NUMERIC parses exactly)."""
    options = pacsv.WriteOptions(include_header=False, quoting_style="needed")
    for batch in data.to_batches(max_chunksize=rows_per_chunk):
        buffer = io.BytesIO()
        pacsv.write_csv(batch, buffer, options)
        yield buffer.getbuffer()


def read_pg_csv(data: bytes, schema: pa.Schema) -> pa.Table:
    """Parse `COPY … TO STDOUT (FORMAT csv)` output (TimeZone UTC, DateStyle ISO) exactly."""
    convert = pacsv.ConvertOptions(
        column_types={f.name: f.type for f in schema},
        null_values=[""],
        strings_can_be_null=True,
        quoted_strings_can_be_null=False,  # "" is an empty string, not NULL
        true_values=["t"],
        false_values=["f"],
    )
    if not data:
        return schema.empty_table()
    read = pacsv.ReadOptions(column_names=schema.names, block_size=16 << 20)
    parse = pacsv.ParseOptions(newlines_in_values=True)  # quoted text may hold line breaks
    table = pacsv.read_csv(
        io.BytesIO(data), read_options=read, parse_options=parse, convert_options=convert
    )
    return table.cast(schema)
