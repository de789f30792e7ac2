"""The three report files: exact CSV and JSON bytes, Parquet types, exact decimals everywhere."""

from __future__ import annotations

import io
import json
import uuid
from datetime import UTC, datetime
from decimal import Decimal, localcontext
from typing import Any

import pyarrow as pa
import pytest

from etl_project.report import text_rules
from etl_project.report.columns import AMOUNT_COLUMNS, AMOUNT_TYPE, REPORT_COLUMNS, REPORT_SCHEMA
from etl_project.report.serialise import (
    amount_text,
    defuse_formulas,
    read_csv_rows,
    read_json_rows,
    read_parquet,
    to_csv,
    to_json,
    to_parquet,
    write_report,
)
from tests.report_rows import report, row

HEADER = ",".join(REPORT_COLUMNS)
ZEROS = ",".join(["0"] * 16)


def two_rows() -> pa.Table:
    first = row(
        1,
        User='Smith, "Jr"',
        Total=Decimal("5.77"),
        Available=Decimal("3.46e-9"),
        Hold=Decimal("-0.0009056832839642471"),
    )
    second = row(
        2,
        Email="b@example.com",
        Ccy="ETH",
        Total=Decimal(100),
        custody=Decimal(-5),
        **{"Account Group": "Desk\nTwo", "System Account": True},
    )
    return report(first, second)


U1, A1, G = (str(uuid.UUID(int=n)) for n in (1, 101, 999))
U2, A2 = (str(uuid.UUID(int=n)) for n in (2, 102))


# ----------------------------------------------------------------------------- amount text


@pytest.mark.parametrize(
    ("value", "text"),
    [
        ("5.77", "5.77"),
        ("0", "0"),
        ("0E-20", "0"),
        ("3.46e-9", "0.00000000346"),
        ("0.00000000346", "0.00000000346"),
        ("-0.0009056832839642471", "-0.0009056832839642471"),
        ("100", "100"),
        ("100.000", "100"),
        ("-5", "-5"),
        ("-0.5", "-0.5"),
        ("10.01", "10.01"),
        ("16187.33210488726", "16187.33210488726"),
        ("0.00000000000000000001", "0.00000000000000000001"),
        ("-999999999999999999.99999999999999999999", "-999999999999999999.99999999999999999999"),
    ],
)
def test_amount_text(value: str, text: str) -> None:
    assert amount_text(pa.array([Decimal(value)], AMOUNT_TYPE)).to_pylist() == [text]


def test_amount_text_keeps_nulls_and_takes_chunked_arrays() -> None:
    chunked = pa.chunked_array(
        [pa.array([Decimal("1.5"), None], AMOUNT_TYPE), pa.array([Decimal(2)], AMOUNT_TYPE)]
    )
    result = amount_text(chunked)
    assert result.type == pa.string()
    assert result.to_pylist() == ["1.5", None, "2"]


def test_amount_text_refuses_floats() -> None:
    with pytest.raises(TypeError, match="expects decimal values, got double"):
        amount_text(pa.array([1.5]))


# ------------------------------------------------------------------------------------- CSV


def test_csv_bytes_exactly() -> None:
    expected = (
        f"{HEADER}\n"
        f'{U1},{A1},{G},Default,"Smith, ""Jr""",,Client,Holding account,BTC,TRUE,FALSE,'
        f"5.77,0,0.00000000346,0,-0.0009056832839642471,{ZEROS},0\n"
        f'{U2},{A2},{G},"Desk\nTwo",user2,b@example.com,Client,Holding account,ETH,TRUE,TRUE,'
        f"100,0,0,0,0,{ZEROS},-5\n"
    )
    assert to_csv(two_rows()) == expected.encode("utf-8")


def test_csv_reads_back_with_the_standard_reader() -> None:
    rows = read_csv_rows(to_csv(two_rows()))
    assert list(rows[0]) == list(REPORT_COLUMNS)
    assert rows[0]["User"] == 'Smith, "Jr"'
    assert rows[0]["Email"] == ""
    assert rows[1]["Account Group"] == "Desk\nTwo"
    assert rows[0]["Hold"] == "-0.0009056832839642471"
    assert rows[1]["System Account"] == "TRUE"


def test_csv_of_an_empty_report_is_the_header() -> None:
    assert to_csv(REPORT_SCHEMA.empty_table()) == f"{HEADER}\n".encode()


def test_csv_is_utf8() -> None:
    data = to_csv(report(row(1, User="Zoë 株式")))
    assert "Zoë 株式".encode() in data


# ------------------------------------------------------------------------ formula injection

HOSTILE = {
    "User": '=HYPERLINK("http://x","y")',
    "Account Group": "+cmd|' /C calc'!A0",
    "subMainType": "@SUM(1+1)*cmd|' /C calc'!A0",
    "mainType": "-2+3+cmd|' /C calc'!A0",
    "Email": "\t=1+1@example.com",
}


def hostile_rows() -> pa.Table:
    return report(
        row(1, Total=Decimal("-0.5"), Hold=Decimal("-0.0009056832839642471"), **HOSTILE),
        row(2, User="\r=1+1", **{"Account Group": "Desk = Ops", "subMainType": "a-b+c@d"}),
    )


@pytest.mark.parametrize(
    ("value", "written"),
    [
        ('=HYPERLINK("http://x","y")', '\'=HYPERLINK("http://x","y")'),
        ("+cmd|' /C calc'!A0", "'+cmd|' /C calc'!A0"),
        ("@SUM(A1)", "'@SUM(A1)"),
        ("-1+2", "'-1+2"),
        ("\tx", "'\tx"),
        ("\rx", "'\rx"),
        ("\nx", "'\nx"),
        ("\uff1dSUM(A1)", "'\uff1dSUM(A1)"),
        ("'=already quoted", "'=already quoted"),
        ("a=b", "a=b"),
        (" =x", " =x"),
        ("", ""),
        (None, None),
    ],
)
def test_defuse_formulas_guards_only_formula_leading_text(
    value: str | None, written: str | None
) -> None:
    assert defuse_formulas(pa.array([value], pa.string())).to_pylist() == [written]


def test_defuse_formulas_is_columnar_and_refuses_non_text() -> None:
    chunked = pa.chunked_array([pa.array(["=1", "ok"]), pa.array([None, "@x"], pa.string())])
    assert defuse_formulas(chunked).to_pylist() == ["'=1", "ok", None, "'@x"]
    with pytest.raises(TypeError, match="expects text values, got decimal128"):
        defuse_formulas(pa.array([Decimal(1)], AMOUNT_TYPE))


def test_csv_neutralises_formula_cells_in_every_text_column_but_not_amounts() -> None:
    zeros = ",".join(["0"] * 15)
    expected = (
        f"{HEADER}\n"
        f'{U1},{A1},{G},\'+cmd|\' /C calc\'!A0,"\'=HYPERLINK(""http://x"",""y"")",'
        f"'\t=1+1@example.com,'-2+3+cmd|' /C calc'!A0,'@SUM(1+1)*cmd|' /C calc'!A0,"
        f"BTC,TRUE,FALSE,-0.5,0,0,0,-0.0009056832839642471,{zeros},0,0\n"
        f'{U2},{A2},{G},Desk = Ops,"\'\r=1+1",,Client,a-b+c@d,BTC,TRUE,FALSE,'
        f"0,0,0,0,0,{zeros},0,0\n"
    )
    data = to_csv(hostile_rows())
    assert data.decode("utf-8") == expected
    rows = read_csv_rows(data)
    assert rows[0]["User"] == "'" + HOSTILE["User"]
    assert rows[0]["Total"] == "-0.5"  # a negative amount is a number, never guarded
    assert rows[1]["User"] == "'\r=1+1"


def test_json_and_parquet_keep_hostile_text_as_sent() -> None:
    table = hostile_rows()
    rows = read_json_rows(to_json(table))
    assert {name: rows[0][name] for name in HOSTILE} == HOSTILE
    assert rows[1]["User"] == "\r=1+1"
    assert rows[0]["Total"] == Decimal("-0.5")
    back = read_parquet(to_parquet(table))
    assert back.equals(table.select(back.column_names))
    assert back.column("User").to_pylist() == [HOSTILE["User"], "\r=1+1"]


# ------------------------------------------------------------------------------------ JSON


def _json_object(head: dict[str, Any], amounts: dict[str, str]) -> str:
    text = json.dumps(head, ensure_ascii=False, separators=(",", ":"))[:-1]
    for name in AMOUNT_COLUMNS:
        text += f' ,"{name}": {amounts.get(name, "0")}'
    return text + " }"


def test_json_text_exactly() -> None:
    common = {"mainType": "Client", "subMainType": "Holding account"}
    first = _json_object(
        {
            "userUUID": U1,
            "accountUUID": A1,
            "Account Group UUID": G,
            "Account Group": "Default",
            "User": 'Smith, "Jr"',
            "Email": None,
            **common,
            "Ccy": "BTC",
            "Account in Ledger": True,
            "System Account": False,
        },
        {"Total": "5.77", "Available": "0.00000000346", "Hold": "-0.0009056832839642471"},
    )
    second = _json_object(
        {
            "userUUID": U2,
            "accountUUID": A2,
            "Account Group UUID": G,
            "Account Group": "Desk\nTwo",
            "User": "user2",
            "Email": "b@example.com",
            **common,
            "Ccy": "ETH",
            "Account in Ledger": True,
            "System Account": True,
        },
        {"Total": "100", "custody": "-5"},
    )
    assert '"User":"Smith, \\"Jr\\"","Email":null' in first
    assert to_json(two_rows()).decode("utf-8") == f"[\n{first},\n{second}\n]\n"


def test_json_round_trips_to_exact_decimals() -> None:
    rows = json.loads(to_json(two_rows()), parse_float=Decimal)
    assert [list(r) for r in rows] == [list(REPORT_COLUMNS)] * 2
    assert rows[0]["Total"] == Decimal("5.77")
    assert rows[0]["Available"] == Decimal("0.00000000346")
    assert rows[0]["Hold"] == Decimal("-0.0009056832839642471")
    assert rows[0]["Email"] is None
    assert rows[1]["System Account"] is True
    assert rows[1]["custody"] == -5
    assert read_json_rows(to_json(two_rows()))[1]["Total"] == Decimal(100)


def test_json_escapes_text() -> None:
    nasty = 'back\\slash "quote"\ttab\x01ctl é 株 \u2028'
    rows = read_json_rows(to_json(report(row(1, User=nasty))))
    assert rows[0]["User"] == nasty


def reference_json(table: pa.Table) -> bytes:
    """The JSON file the slow, obvious way: Python's json for the 11 leading fields and
    Decimal's own plain notation for the amounts."""
    lines = []
    for record in table.select(list(REPORT_COLUMNS)).to_pylist():
        head = {k: v for k, v in record.items() if k not in AMOUNT_COLUMNS}
        with localcontext(prec=100):
            amounts = {
                k: "null" if record[k] is None else format(record[k].normalize(), "f")
                for k in AMOUNT_COLUMNS
            }
        lines.append(_json_object(head, amounts))
    return ("[\n" + ",\n".join(lines) + "\n]\n").encode() if lines else b"[]\n"


def with_amounts(table: pa.Table, **columns: list[Decimal | None]) -> pa.Table:
    for name, values in columns.items():
        index = table.schema.get_field_index(name)
        table = table.set_column(index, name, pa.array(values, AMOUNT_TYPE))
    return table


@pytest.mark.parametrize(
    "constant",
    [
        ["Total", "custody"],  # first and last amount
        ["Order", "Leverage", "Margin", "Margin Long", "Margin Short", "Margin Interest"],
        list(AMOUNT_COLUMNS),  # no decimal left for the writer
        [],
    ],
    ids=["ends", "retired", "all", "none"],
)
def test_json_folds_one_value_columns_into_the_text_exactly(constant: list[str]) -> None:
    values = [Decimal("-0.0009056832839642471"), Decimal("12345678901234567.1234567890123456789")]
    varied = {name: values for name in AMOUNT_COLUMNS if name not in constant}
    fixed = {name: [Decimal("-0.0009056832839642471")] * 2 for name in constant[:1]}
    fixed |= {name: [Decimal(0)] * 2 for name in constant[1:]}
    table = with_amounts(two_rows(), **varied, **fixed)
    assert to_json(table) == reference_json(table)
    chunked = pa.concat_tables([table.slice(0, 1), table.slice(1, 0), table.slice(1)])
    assert to_json(chunked) == reference_json(table)


def test_json_amount_columns_with_nulls_are_written_as_null() -> None:
    table = two_rows()
    index = table.schema.get_field_index("Total")
    field = pa.field("Total", AMOUNT_TYPE, nullable=True)
    table = table.set_column(index, field, pa.array([None, None], AMOUNT_TYPE))
    table = table.set_column(
        table.schema.get_field_index("Hold"),
        pa.field("Hold", AMOUNT_TYPE, nullable=True),
        pa.array([Decimal(0), None], AMOUNT_TYPE),
    )
    assert to_json(table) == reference_json(table)
    assert b'"Total": null ,"Total Prefunding": 0' in to_json(table)


def test_json_of_many_rows_matches_the_reference() -> None:
    rows = [row(i, Total=Decimal(i).scaleb(-(i % 21)), Hold=Decimal(-i)) for i in range(1, 3000)]
    table = report(*rows)
    assert to_json(table) == reference_json(table)


def test_json_of_an_empty_report() -> None:
    assert to_json(REPORT_SCHEMA.empty_table()) == b"[]\n"
    assert read_json_rows(b"[]\n") == []


def test_fallback_writer_gives_the_same_bytes(monkeypatch: pytest.MonkeyPatch) -> None:
    fast_csv, fast_json = to_csv(two_rows()), to_json(two_rows())
    fast_hostile = to_csv(hostile_rows())
    monkeypatch.setattr(text_rules, "_writer_trims_decimals", lambda: False)
    assert to_csv(two_rows()) == fast_csv
    assert to_json(two_rows()) == fast_json
    assert to_csv(hostile_rows()) == fast_hostile


def test_writers_refuse_float_amounts() -> None:
    table = two_rows()
    index = table.schema.get_field_index("Total")
    floats = table.set_column(index, pa.field("Total", pa.float64()), pa.array([1.0, 2.0]))
    for write in (to_csv, to_json, to_parquet):
        with pytest.raises(TypeError, match="Total: expected decimal128"):
            write(floats)


# --------------------------------------------------------------------------------- Parquet


def test_parquet_types_and_values_round_trip() -> None:
    source = two_rows()
    back = read_parquet(to_parquet(source))

    assert back.column_names == [*REPORT_COLUMNS, "report_date", "source", "snapshot_at", "run_id"]
    types = {f.name: f.type for f in back.schema}
    assert all(types[name] == pa.decimal128(38, 20) for name in AMOUNT_COLUMNS)
    assert types["Account in Ledger"] == pa.bool_() and types["System Account"] == pa.bool_()
    assert types["report_date"] == pa.date32()
    assert types["snapshot_at"] == pa.timestamp("us", tz="UTC")
    assert types["userUUID"] == pa.string()
    assert back.equals(source.select(back.column_names))
    assert back.column("Hold").to_pylist()[0] == Decimal("-0.0009056832839642471")
    assert back.column("snapshot_at").to_pylist()[0] == datetime(
        2024, 5, 1, 23, 59, 1, 250000, tzinfo=UTC
    )
    assert back.column("Email").to_pylist() == [None, "b@example.com"]


def test_parquet_of_an_empty_report() -> None:
    back = read_parquet(to_parquet(REPORT_SCHEMA.empty_table()))
    assert back.num_rows == 0
    assert back.schema.field("Total").type == AMOUNT_TYPE


# ------------------------------------------------------------------------ batch by batch


@pytest.mark.parametrize("batch_rows", [1, 2, 7])
def test_writers_give_the_same_bytes_for_any_batches(batch_rows: int) -> None:
    """The files are written batch by batch (`write_report`): header once, the JSON array's
    brackets and commas across batches, every rule per row."""
    rows = [row(i, Total=Decimal(i).scaleb(-(i % 21)), Hold=Decimal(-i)) for i in range(1, 12)]
    table = pa.concat_tables([report(*rows), hostile_rows(), two_rows()])
    sinks = {fmt: io.BytesIO() for fmt in ("csv", "json", "parquet")}
    written = write_report(table.to_batches(max_chunksize=batch_rows), table.schema, sinks)
    assert written == table.num_rows
    assert sinks["csv"].getvalue() == to_csv(table)
    assert sinks["json"].getvalue() == to_json(table) == reference_json(table)
    back = read_parquet(sinks["parquet"].getvalue())
    assert back.equals(table.select(back.column_names))


def test_writers_skip_empty_batches_and_write_empty_files() -> None:
    table = two_rows()
    empty = table.slice(0, 0).to_batches() or [pa.RecordBatch.from_pylist([], table.schema)]
    batches = [*empty, *table.to_batches(max_chunksize=1), *empty]
    sinks = {fmt: io.BytesIO() for fmt in ("csv", "json")}
    write_report(batches, table.schema, sinks)
    assert sinks["csv"].getvalue() == to_csv(table)
    assert sinks["json"].getvalue() == to_json(table)
    nothing = {fmt: io.BytesIO() for fmt in ("csv", "json")}
    write_report(iter(()), REPORT_SCHEMA, nothing)
    assert nothing["csv"].getvalue() == f"{HEADER}\n".encode()
    assert nothing["json"].getvalue() == b"[]\n"
