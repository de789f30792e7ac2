"""Settlement platform report (seed 000): settings, exact parsing of CSV/JSON, per-row rejects,
reading from a path, over HTTP from the simulator, and through the pipeline's first stages."""

from __future__ import annotations

import json
import re
import socket
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import requests

from etl_project import staging
from etl_project.config import Secret, SourceConfig, parse_config
from etl_project.errors import ConfigError, MalformedResponse, VenueAuthError, VenueUnavailable
from etl_project.http import HttpClient, RawResponse, RetryPolicy
from etl_project.raw import RawSnapshot, SnapshotRecorder
from etl_project.report.columns import AMOUNT_COLUMNS, BALANCES_SCHEMA, REPORT_COLUMNS
from etl_project.report.schema import BalancesModel
from etl_project.report.validate import split_valid
from etl_project.simulator import Simulator, SimulatorConfig
from etl_project.simulator import settlement_report as sim_report
from etl_project.sinks.object_store import LocalObjectStore
from etl_project.stages.balances import stage_balances
from etl_project.stages.snapshot import take_snapshot
from etl_project.venues import connector_for
from etl_project.venues.base import AccountStatus
from etl_project.venues.settlement_report.connector import (
    LocationRefused,
    ReportFormatError,
    SettlementReportConnector,
)
from etl_project.venues.settlement_report.json_rows import (
    CHECK_COLUMNS,
    CHECK_JSON_SIZE,
    CHECK_JSON_SYNTAX,
    CHECK_JSON_TYPE,
    MAX_ELEMENT_CHARS,
)
from etl_project.venues.settlement_report.lines import (
    CHECK_ENCODING,
    CHECK_LINE_LENGTH,
    CHECK_QUOTE,
    MAX_LINE_BYTES,
)
from etl_project.venues.settlement_report.parse import (
    CHECK_BOOLEAN,
    CHECK_EXACT_DECIMAL,
    parse_report,
)
from etl_project.venues.settlement_report.read import READ_METHOD, ReportNotFound
from etl_project.venues.settlement_report.settings import (
    SettlementReportSettings,
    format_of,
    resolve_location,
    shown_location,
)
from etl_project.venues.settlement_report.text import CHECK_FIELD_COUNT

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures"
CSV_FIXTURE = FIXTURES / "settlement_report_seed000.csv"
JSON_FIXTURE = FIXTURES / "settlement_report_seed000.json"
DAY = date(2026, 1, 2)
SOURCE = "settlement_test"

U1 = "29ffc2ce-9936-4f9b-9b56-c1e1d22906e1"  # the seed's userUUID (also its group UUID)
A1 = "0d0be8d3-f8f7-48c6-9c79-4b9493c821a1"  # the seed's accountUUID
U2 = "5b7e3c2a-8f41-4d6e-9a0b-1c2d3e4f5a6b"
A2 = "a1b2c3d4-e5f6-4a7b-8c9d-0e1f2a3b4c5d"
NEG = Decimal("-0.0009056832839642471")
DUST = Decimal("0.00000000346")


def expected_row(
    user: str,
    account: str,
    name: str,
    email: str | None,
    main_type: str,
    sub_main_type: str,
    ccy: str,
    system: bool,
    amounts: dict[str, str],
) -> dict[str, Any]:
    row: dict[str, Any] = {
        "userUUID": user,
        "accountUUID": account,
        "Account Group UUID": U1,
        "Account Group": "Default",
        "User": name,
        "Email": email,
        "mainType": main_type,
        "subMainType": sub_main_type,
        "Ccy": ccy,
        "Account in Ledger": True,
        "System Account": system,
    }
    for column in AMOUNT_COLUMNS:
        row[column] = Decimal(amounts.get(column, "0"))
    row.update(
        {"source": SOURCE, "venue": "settlement_report", "venue_account_id": account,
         "wallet": sub_main_type}
    )  # fmt: skip
    return row


#: Every column of every row of the fixtures, written out by hand.
EXPECTED = [
    expected_row(
        U1, A1, "alice@example.com", "alice@example.com", "Client", "Trading account", "BTC",
        False, {"Total": "5.77", "Total Prefunding": "5.77", "Available": "5.00",
                "Brokerage": "0.37"},
    ),
    expected_row(
        U2, A2, "Treasury Desk, Ops", None, "Corporate", "Custody account", "ETH", True,
        {"Total": "-0.0009056832839642471", "Total Prefunding": "-0.0009056832839642471",
         "Available": "-0.0009056832839642471", "Unconfirmed": "0.00000000346",
         "custody": "0.00000000346"},
    ),
    # accountUUID upper-case in the file: lower-cased (spec §2); an all-zero row is kept here
    expected_row(
        U1, A1, "alice@example.com", "alice@example.com", "Client", "Trading account", "USDT",
        False, {},
    ),
    # XBT in the file: normalised to BTC like every source's Ccy (spec §3)
    expected_row(
        U2, A2, "Treasury Desk, Ops", None, "Corporate", "Custody account", "BTC", False,
        {"Total": "1.5", "Total Prefunding": "1.5", "Available": "1.25", "Hold": "0.25"},
    ),
]  # fmt: skip


def csv_bytes() -> bytes:
    return CSV_FIXTURE.read_bytes()


def json_bytes() -> bytes:
    return JSON_FIXTURE.read_bytes()


def csv_lines() -> list[list[str]]:
    """The CSV fixture as lists of fields (no field in it holds a quote besides `User`)."""
    import csv
    import io

    return list(csv.reader(io.StringIO(csv_bytes().decode("utf-8"))))


def to_csv(lines: list[list[str]]) -> bytes:
    import csv
    import io

    out = io.StringIO()
    csv.writer(out, lineterminator="\r\n").writerows(lines)
    return out.getvalue().encode("utf-8")


def with_csv_value(row: int, column: str, value: str) -> bytes:
    lines = csv_lines()
    lines[row + 1][lines[0].index(column)] = value
    return to_csv(lines)


def json_with(row: int, column: str, value: Any) -> bytes:
    rows = json_rows()
    rows[row][column] = value
    return to_json(rows)


def json_rows() -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = json.loads(json_bytes(), parse_float=Decimal, parse_int=Decimal)
    return rows


def to_json(rows: list[Any]) -> bytes:
    """JSON with every Decimal written as its exact text (json.dumps cannot)."""
    return _dumps(rows).encode("utf-8")


def _dumps(value: Any) -> str:
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, list):
        return "[" + ", ".join(_dumps(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{json.dumps(k)}: {_dumps(v)}" for k, v in value.items()) + "}"
    return json.dumps(value)


def make_source(location: str = "/reports/{date}.csv", **settings: Any) -> SourceConfig:
    return SourceConfig(
        name=SOURCE,
        kind="settlement_report",
        settings=SettlementReportSettings(location=location, **settings),
    )


def make_snapshot(*responses: RawResponse, error: str | None = None) -> RawSnapshot:
    return RawSnapshot(
        SOURCE, "settlement_report", DAY, datetime(2026, 1, 2, 23, tzinfo=UTC),
        responses=list(responses), error=error,
    )  # fmt: skip


def read_response(body: bytes, url: str = "/reports/2026-01-02.csv") -> RawResponse:
    return RawResponse(READ_METHOD, url, 200, {}, body, "t")


def recorded_http(snapshot: RawSnapshot) -> HttpClient:
    return HttpClient(
        SOURCE,
        recorder=SnapshotRecorder(snapshot),
        retry=RetryPolicy(max_attempts=3),
        sleep=lambda _s: None,
    )


# --- exact parsing -------------------------------------------------------------------------------


def test_csv_fixture_gives_exact_balances_every_column() -> None:
    parsed = parse_report(csv_bytes(), "csv", SOURCE)
    assert parsed.balances.schema == BALANCES_SCHEMA
    assert parsed.balances.to_pylist() == EXPECTED
    assert parsed.rejected == []
    assert parsed.accounts == [AccountStatus(A1, "received"), AccountStatus(A2, "received")]
    # exact text survives: no float ever touched the amounts
    total = parsed.balances.column("Total").to_pylist()
    assert [format(v.normalize(), "f") for v in total[:2]] == ["5.77", "-0.0009056832839642471"]
    assert format(parsed.balances.column("custody")[1].as_py().normalize(), "f") == "0.00000000346"


def test_json_fixture_gives_the_identical_table() -> None:
    from_csv = parse_report(csv_bytes(), "csv", SOURCE)
    from_json = parse_report(json_bytes(), "json", SOURCE)
    assert from_json.balances.equals(from_csv.balances)
    assert from_json.balances.to_pylist() == EXPECTED
    assert from_json.rejected == []
    assert from_json.accounts == from_csv.accounts


def test_rows_are_taken_as_is_with_ccy_normalised() -> None:
    parsed = parse_report(csv_bytes(), "csv", SOURCE)
    assert parsed.balances.column("Ccy").to_pylist() == ["BTC", "ETH", "USDT", "BTC"]
    assert parsed.balances.column("mainType").to_pylist()[1] == "Corporate"
    valid, rejected = split_valid(parsed.balances, BalancesModel)
    assert valid.column("Ccy").to_pylist() == ["BTC", "ETH", "USDT", "BTC"]
    assert rejected == []


@pytest.mark.parametrize(
    ("given", "normalised"),
    [("xbt", "BTC"), ("XBT", "BTC"), ("xdg", "DOGE"), ("XDG", "DOGE"), ("usdt", "USDT"),
     ("eth", "ETH"), ("BTC", "BTC")],
)  # fmt: skip
def test_ccy_is_normalised_like_every_source(given: str, normalised: str) -> None:
    for fmt, body in (
        ("csv", with_csv_value(1, "Ccy", given)),
        ("json", json_with(1, "Ccy", given)),
    ):
        parsed = parse_report(body, fmt, SOURCE)
        assert parsed.balances.column("Ccy").to_pylist() == ["BTC", normalised, "USDT", "BTC"]
        assert parsed.rejected == []
        valid, rejected = split_valid(parsed.balances, BalancesModel)
        if normalised != "BTC":  # (A2 already holds BTC: the file's XBT row)
            assert rejected == [] and valid.num_rows == 4


def test_repeated_rows_are_passed_on_not_summed_or_dropped() -> None:
    lines = csv_lines()
    lines.insert(2, list(lines[1]))  # the seed's BTC row twice
    lines[5][lines[0].index("Ccy")] = "xbt"  # A2: "XBT" and "xbt" are one currency
    parsed = parse_report(to_csv(lines), "csv", SOURCE)
    assert parsed.rejected == []
    assert parsed.balances.to_pylist() == [
        EXPECTED[0], EXPECTED[0], EXPECTED[1], EXPECTED[2], {**EXPECTED[3], "Ccy": "BTC"}
    ]  # fmt: skip
    assert sum(parsed.balances.column("Total").to_pylist()[:2]) == Decimal("11.54")  # not summed
    assert parsed.accounts == [AccountStatus(A1, "received"), AccountStatus(A2, "received")]


def test_csv_variants_bom_lf_and_no_final_newline_parse_the_same() -> None:
    text = csv_bytes().replace(b"\r\n", b"\n")
    for body in (b"\xef\xbb\xbf" + csv_bytes(), text, text.rstrip(b"\n")):
        assert parse_report(body, "csv", SOURCE).balances.to_pylist() == EXPECTED


def test_header_only_csv_is_an_empty_report() -> None:
    parsed = parse_report(",".join(REPORT_COLUMNS).encode(), "csv", SOURCE)
    assert parsed.balances.num_rows == 0
    assert parsed.balances.schema == BALANCES_SCHEMA
    assert parsed.rejected == [] and parsed.accounts == []


def test_twenty_one_fractional_digits_that_are_exact_are_kept() -> None:
    body = with_csv_value(0, "Brokerage", "0.370000000000000000000")
    parsed = parse_report(body, "csv", SOURCE)
    assert parsed.rejected == []
    assert parsed.balances.column("Brokerage")[0].as_py() == Decimal("0.37")


# --- rejects: only the bad row, with the column named --------------------------------------------


@pytest.mark.parametrize(
    ("column", "value", "check", "reason"),
    [
        ("Total", "abc", CHECK_EXACT_DECIMAL, 'Total: "abc" is not a decimal number'),
        ("Brokerage", "0.000000000000000000001", CHECK_EXACT_DECIMAL,
         'Brokerage: "0.000000000000000000001" has more than 20 fractional digits'),
        ("Hold", "1234567890123456789", CHECK_EXACT_DECIMAL,
         'Hold: "1234567890123456789" has more than 18 integer digits'),
        ("custody", "", CHECK_EXACT_DECIMAL, 'custody: "" is not a decimal number'),
        ("Available", "1,5", CHECK_EXACT_DECIMAL, 'Available: "1,5" is not a decimal number'),
        ("Total", "NaN", CHECK_EXACT_DECIMAL, 'Total: "NaN" is not a decimal number'),
        ("System Account", "yes", CHECK_BOOLEAN, 'System Account: "yes" is not TRUE or FALSE'),
        ("Account in Ledger", "1", CHECK_BOOLEAN, 'Account in Ledger: "1" is not TRUE or FALSE'),
    ],
)  # fmt: skip
def test_csv_bad_value_rejects_only_that_row(
    column: str, value: str, check: str, reason: str
) -> None:
    parsed = parse_report(with_csv_value(1, column, value), "csv", SOURCE)
    assert parsed.balances.to_pylist() == [EXPECTED[0], EXPECTED[2], EXPECTED[3]]
    assert len(parsed.rejected) == 1
    rejected = parsed.rejected[0]
    assert (rejected.source, rejected.check, rejected.reason) == (SOURCE, check, reason)
    assert rejected.record["accountUUID"] == A2 and rejected.record["Ccy"] == "ETH"
    assert rejected.record[column] == value
    # the account was still received: its other rows are in the report
    assert [a.account_id for a in parsed.accounts] == [A1, A2]


def test_every_problem_of_a_row_is_named() -> None:
    lines = csv_lines()
    lines[1][lines[0].index("Total")] = "5.77.1"
    lines[1][lines[0].index("System Account")] = "no"
    parsed = parse_report(to_csv(lines), "csv", SOURCE)
    assert [r.check for r in parsed.rejected] == [f"{CHECK_EXACT_DECIMAL}, {CHECK_BOOLEAN}"]
    assert parsed.rejected[0].reason == (
        'Total: "5.77.1" is not a decimal number; System Account: "no" is not TRUE or FALSE'
    )
    assert parsed.balances.num_rows == 3


def test_bad_values_in_many_rows_are_all_found() -> None:
    header, row = csv_lines()[0], csv_lines()[1]
    lines = [header]
    for i in range(1500):  # more than one slice of the per-value fallback
        line = list(row)
        line[1] = f"00000000-0000-4000-8000-{i:012d}"
        if i in (3, 700, 1499):
            line[header.index("Total")] = "x"
        lines.append(line)
    parsed = parse_report(to_csv(lines), "csv", SOURCE)
    assert parsed.balances.num_rows == 1497
    assert [r.record["accountUUID"][-4:] for r in parsed.rejected] == ["0003", "0700", "1499"]


def test_csv_row_with_wrong_field_count_is_rejected_alone() -> None:
    lines = csv_lines()
    lines[2] = [*lines[2], "surplus"]
    parsed = parse_report(to_csv(lines), "csv", SOURCE)
    assert parsed.balances.to_pylist() == [EXPECTED[0], EXPECTED[2], EXPECTED[3]]
    (rejected,) = parsed.rejected
    assert rejected.check == CHECK_FIELD_COUNT
    assert rejected.reason == "line 3: row has 34 fields, expected 33"
    assert rejected.record["line"] == 3
    assert rejected.record["text"].endswith(",surplus")


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda h: h[:-1], "missing column(s) 'custody'"),
        (lambda h: [*h, "Extra"], "unexpected column(s) 'Extra'"),
        (lambda h: [c if c != "Total" else "total" for c in h],
         "missing column(s) 'Total'; unexpected column(s) 'total'"),
        (lambda h: [*h[:11], h[12], h[11], *h[13:]],
         "columns out of order: column 12 is 'Total Prefunding', expected 'Total'"),
    ],
)  # fmt: skip
def test_header_mismatch_is_malformed_naming_the_columns(mutate: Any, message: str) -> None:
    lines = csv_lines()
    header = mutate(list(lines[0]))
    body = to_csv([header, *[line[: len(header)] for line in lines[1:]]])
    with pytest.raises(MalformedResponse, match="header is not the report's 33 columns") as exc:
        parse_report(body, "csv", SOURCE)
    assert message in str(exc.value)
    assert str(exc.value).startswith(f"{SOURCE}: ")


@pytest.mark.parametrize(
    ("body", "fmt", "message"),
    [
        (b"", "csv", "the report file is empty"),
        (b" \n", "json", "the report file is empty"),
        (b"\xff\xfe" + ",".join(REPORT_COLUMNS).encode(), "csv", "CSV header is not UTF-8"),
        (b"{not json", "json", "not a valid JSON report"),
        (b'{"rows": []}', "json", "JSON report must be an array of rows, got object"),
    ],
)
def test_unreadable_files_are_malformed(body: bytes, fmt: str, message: str) -> None:
    with pytest.raises(MalformedResponse, match=message):
        parse_report(body, fmt, SOURCE)


@pytest.mark.parametrize(
    ("column", "value", "check", "reason"),
    [
        ("Total", "abc", CHECK_EXACT_DECIMAL, 'Total: "abc" is not a decimal number'),
        ("Brokerage", Decimal("0.000000000000000000001"), CHECK_EXACT_DECIMAL,
         'Brokerage: "1E-21" has more than 20 fractional digits'),
        ("Hold", True, CHECK_JSON_TYPE, "Hold: expected a number, got true"),
        ("Hold", None, CHECK_JSON_TYPE, "Hold: expected a number, got null"),
        ("System Account", "maybe", CHECK_BOOLEAN, 'System Account: "maybe" is not TRUE or FALSE'),
        ("System Account", Decimal(1), CHECK_JSON_TYPE,
         "System Account: expected a boolean, got 1"),
        ("User", Decimal(5), CHECK_JSON_TYPE, "User: expected a string, got 5"),
    ],
)  # fmt: skip
def test_json_bad_value_rejects_only_that_row(
    column: str, value: Any, check: str, reason: str
) -> None:
    rows = json_rows()
    rows[1][column] = value
    parsed = parse_report(to_json(rows), "json", SOURCE)
    assert parsed.balances.to_pylist() == [EXPECTED[0], EXPECTED[2], EXPECTED[3]]
    (rejected,) = parsed.rejected
    assert (rejected.check, rejected.reason) == (check, reason)
    assert rejected.record["accountUUID"] == A2


def test_json_nan_literal_is_rejected_not_a_float() -> None:
    body = json_bytes().replace(b'"Total": 5.77', b'"Total": NaN', 1)
    parsed = parse_report(body, "json", SOURCE)
    assert [r.reason for r in parsed.rejected] == ['Total: "NaN" is not a decimal number']
    assert parsed.balances.num_rows == 3


def test_json_row_with_other_keys_is_rejected_alone() -> None:
    rows: list[Any] = json_rows()
    del rows[1]["custody"]
    rows[2]["note"] = "x"
    rows.append(5)
    parsed = parse_report(to_json(rows), "json", SOURCE)
    assert parsed.balances.to_pylist() == [EXPECTED[0], EXPECTED[3]]
    assert [(r.check, r.reason) for r in parsed.rejected] == [
        (CHECK_COLUMNS, "element 1: missing column(s) 'custody'"),
        (CHECK_COLUMNS, "element 2: unexpected column(s) 'note'"),
        (CHECK_COLUMNS, "element 4: a row must be an object, got number"),
    ]


def test_json_without_any_report_row_is_malformed() -> None:
    rows = json_rows()
    for row in rows:
        del row["custody"]
    with pytest.raises(MalformedResponse, match="missing column\\(s\\) 'custody'"):
        parse_report(to_json(rows), "json", SOURCE)
    assert parse_report(b"[]", "json", SOURCE).balances.num_rows == 0


# --- broken lines and elements: each rejected alone, with where it was ---------------------------


def broken_csv() -> bytes:
    """The fixture's 4 rows with every kind of broken line between them (line numbers below)."""
    header, first, second, third, fourth = csv_raw_lines()
    long_user = "x" * (MAX_LINE_BYTES + 10)
    overlong = first.replace("alice@example.com,alice", f"{long_user},alice", 1)
    lines = [
        header,  # 1
        first,  # 2
        first.replace(",Default,", ',"Default,', 1),  # 3: unclosed quote
        overlong,  # 4: longer than 64 KiB
        second,  # 5: "Treasury Desk, Ops" (quoted) - kept
        third + ",surplus",  # 6: 34 fields
        fourth.replace("Ops", "Op\xff"),  # 7: not UTF-8 (the \xff byte below)
        third,  # 8
        fourth,  # 9
    ]
    data = "\r\n".join(lines).encode("utf-8").replace("Op\xff".encode(), b"Op\xff")
    return data + b"\r\n"


def csv_raw_lines() -> list[str]:
    return csv_bytes().decode("utf-8").rstrip("\r\n").split("\r\n")


def test_csv_broken_lines_are_rejected_alone_with_their_line_number() -> None:
    parsed = parse_report(broken_csv(), "csv", SOURCE)
    assert parsed.balances.to_pylist() == EXPECTED
    length = len(broken_csv().split(b"\r\n")[3])
    assert [(r.check, r.reason, r.record["line"]) for r in parsed.rejected] == [
        (CHECK_QUOTE, "line 3: unclosed quote (its quoted field does not end within the line)", 3),
        (CHECK_LINE_LENGTH, f"line 4: line is {length} bytes, longer than the 65536-byte limit", 4),
        (CHECK_FIELD_COUNT, "line 6: row has 34 fields, expected 33", 6),
        (CHECK_ENCODING, "line 7: not valid UTF-8", 7),
    ]
    texts = [r.record["text"] for r in parsed.rejected]
    assert texts[0].startswith("29ffc2ce-") and ',"Default,alice' in texts[0]
    assert len(texts[1]) == 1025 and texts[1].endswith("…")  # ~1 KiB of a long line, not 64
    assert "Treasury Desk, Op\\xff" in texts[3]  # the bad byte shown, not dropped
    assert parsed.accounts == [AccountStatus(A1, "received"), AccountStatus(A2, "received")]


def test_two_broken_lines_are_not_paired_into_one_row() -> None:
    # each line's stray quote would close the other's: together they make 33 fields, but the
    # closing quote is followed by text, so they are two broken lines, not one value
    body = csv_bytes().replace(b",Default,", b',"Default,', 2)
    parsed = parse_report(body, "csv", SOURCE)
    assert parsed.balances.to_pylist() == EXPECTED[2:]
    assert [(r.check, r.record["line"]) for r in parsed.rejected] == [
        (CHECK_QUOTE, 2),
        (CHECK_QUOTE, 3),
    ]


def test_csv_value_reject_names_its_line() -> None:
    lines = csv_raw_lines()
    lines.insert(2, "")  # an empty line is skipped (and still counted)
    lines[3] = lines[3].replace(",ETH,TRUE,TRUE,-0.0009056832839642471", ",ETH,TRUE,TRUE,abc", 1)
    parsed = parse_report(("\r\n".join(lines) + "\r\n").encode(), "csv", SOURCE)
    (rejected,) = parsed.rejected
    assert (rejected.check, rejected.reason) == (
        CHECK_EXACT_DECIMAL, 'Total: "abc" is not a decimal number')  # fmt: skip
    assert rejected.record["line"] == 4 and rejected.record["Ccy"] == "ETH"


def test_csv_quoted_line_break_is_a_value_not_a_broken_line() -> None:
    lines = csv_lines()
    lines[1][lines[0].index("User")] = "Desk\r\nTwo"  # lines 2-3
    lines[2][lines[0].index("User")] = '\r=HYPERLINK("http://x","y")'  # 4-5, kept as sent
    body = to_csv(lines).replace(b",USDT,TRUE", b',"USDT,TRUE', 1)  # line 6: unclosed quote
    parsed = parse_report(body, "csv", SOURCE)
    users = parsed.balances.column("User").to_pylist()
    assert users == ["Desk\r\nTwo", '\r=HYPERLINK("http://x","y")', "Treasury Desk, Ops"]
    assert [(r.check, r.record["line"]) for r in parsed.rejected] == [(CHECK_QUOTE, 6)]


def test_csv_unclosed_quote_on_the_last_line_and_a_bare_cr_line_end() -> None:
    lines = csv_raw_lines()
    body = "\r\n".join(lines[:3]) + "\r" + lines[3] + "\n" + lines[4].replace(",XBT,", ',"XBT,')
    parsed = parse_report(body.encode(), "csv", SOURCE)
    assert parsed.balances.to_pylist() == EXPECTED[:3]
    assert [(r.check, r.reason) for r in parsed.rejected] == [
        (CHECK_QUOTE, "line 5: unclosed quote (its quoted field does not end within the line)")
    ]


def test_json_broken_elements_are_rejected_alone() -> None:
    objects = [to_json([row]).decode()[1:-1] for row in json_rows()]
    oversize = objects[0].replace("alice@example.com", "a" * MAX_ELEMENT_CHARS, 1)
    body = "[\n" + ",\n".join([
        objects[0],
        objects[1].replace('"User": "Treasury Desk, Ops"', '"User": "Treasury Desk, Ops', 1),
        objects[2].replace('"Ccy": "USDT",', '"Ccy": "USDT" "x": 1,', 1),
        objects[3][:-1],  # no closing brace
        oversize,
        objects[3],
    ]) + "\n]\n"  # fmt: skip
    parsed = parse_report(body.encode(), "json", SOURCE)
    assert parsed.balances.to_pylist() == [EXPECTED[0], EXPECTED[3]]
    assert [(r.check, r.reason) for r in parsed.rejected] == [
        (CHECK_JSON_SYNTAX, "element 1 (line 3): not valid JSON (Expecting ',' delimiter at"
         " character 648 of the element)"),
        (CHECK_JSON_SYNTAX, "element 2 (line 4): not valid JSON (Expecting ',' delimiter at"
         " character 327 of the element)"),
        (CHECK_JSON_SYNTAX, "element 3 (line 5): not valid JSON (Expecting property name enclosed"
         " in double quotes at character 772 of the element)"),
        (CHECK_JSON_SIZE, f"element 4 (line 6): element is {len(oversize)} characters, longer"
         " than the 65536-character limit"),
    ]  # fmt: skip
    assert [r.record["element"] for r in parsed.rejected] == [1, 2, 3, 4]
    # each record holds its own element's text, not its neighbours'
    assert [r.record["text"] for r in parsed.rejected[:3]] == [
        objects[1].replace('"User": "Treasury Desk, Ops"', '"User": "Treasury Desk, Ops', 1),
        objects[2].replace('"Ccy": "USDT",', '"Ccy": "USDT" "x": 1,', 1),
        objects[3][:-1],
    ]


def test_json_element_checks_on_a_valid_document() -> None:
    rows: list[Any] = json_rows()
    rows[1]["User"] = "\ud800"  # a lone surrogate escape: not text
    rows[2]["User"] = "u" * (MAX_ELEMENT_CHARS + 1)
    parsed = parse_report(to_json(rows).replace(b"\\ud800", b"\\\\ud800").replace(
        b'"\\\\ud800"', b'"\\ud800"'), "json", SOURCE)  # fmt: skip
    assert parsed.balances.to_pylist() == [EXPECTED[0], EXPECTED[3]]
    assert [(r.check, r.reason) for r in parsed.rejected] == [
        (CHECK_JSON_SIZE, "element 2: its text is 65698 characters, longer than the"
         " 65536-character limit"),
        (CHECK_JSON_TYPE, "User: not valid Unicode (a lone surrogate escape)"),
    ]  # fmt: skip
    assert parsed.rejected[1].record["User"] == '"\\ud800"'
    assert parsed.rejected[1].record["element"] == 1


def test_json_invalid_utf8_rejects_only_its_element() -> None:
    body = json_bytes().replace(b"Treasury Desk, Ops", b"Treasury Desk, Op\xff", 1)
    parsed = parse_report(body, "json", SOURCE)
    assert parsed.balances.to_pylist() == [EXPECTED[0], EXPECTED[2], EXPECTED[3]]
    assert [(r.check, r.reason) for r in parsed.rejected] == [
        (CHECK_JSON_SYNTAX, "element 1 (line 3): not valid UTF-8")
    ]
    assert "Op\\xff" in parsed.rejected[0].record["text"]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b'[{"userUUID": "x"},\n{"userUUID": ', "truncated (no closing ] after its last element)"),
        (b'[{"a": 1}] [', "has text after its closing ]"),
        (b"{not json", "not a valid JSON report"),
    ],
)
def test_json_file_level_failures(body: bytes, message: str) -> None:
    with pytest.raises(MalformedResponse, match=re.escape(message)):
        parse_report(body, "json", SOURCE)


# --- settings ------------------------------------------------------------------------------------


def config_with(**fields: Any) -> Any:
    source = {"name": "settlement_platform", "kind": "settlement_report", **fields}
    return parse_config({"sources": [source]}, "cfg.yaml")


def test_config_locations_and_defaults() -> None:
    cfg = config_with(location="s3://reports-bucket/client-balance/{date}.csv")
    settings = cfg.sources[0].settings
    assert isinstance(settings, SettlementReportSettings)
    assert (settings.format, settings.api_token, settings.read_timeout) == (None, None, 30.0)
    assert settings.resolve(DAY) == "s3://reports-bucket/client-balance/2026-01-02.csv"
    assert settings.report_format() == "csv"
    https = config_with(location="https://p.example.com/r?day={date}", format="json",
                        api_token="tok-s3cr3t").sources[0].settings  # fmt: skip
    assert isinstance(https.api_token, Secret) and "s3cr3t" not in repr(https)
    assert https.report_format() == "json"
    assert config_with(location="./reports/{date}.JSON").sources[0].settings.report_format() == (
        "json"
    )
    assert connector_for("settlement_report") is SettlementReportConnector


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"location": "ftp://host/{date}.csv"}, "scheme 'ftp' is not supported"),
        ({"location": "/r/{date}.csv", "format": "xlsx"}, "format 'xlsx' is not supported"),
        ({"location": "https://h.example.com/report?d={date}"}, "cannot tell the report format"),
        ({"location": "/r/{day}.csv"}, "unknown placeholder(s) {day}"),
        ({"location": "s3://bucket/{date}.csv", "api_token": "t"}, "only sent to http(s)"),
        ({"location": "s3://bucket-only"}, "must be s3://bucket/key"),
        ({"location": "https://u:pw@h.example.com/{date}.csv"}, "must not carry credentials"),
        ({"location": "https:///{date}.csv"}, "has no host"),
        ({"location": ""}, "location must be a non-empty"),
        ({"location": "/r/{date}.csv", "read_timeout": 0}, "read_timeout must be a positive"),
        ({"location": "/r/{date}.csv", "bucket": "x"}, "unknown field(s)"),
        ({}, "missing required field 'location'"),
    ],
)
def test_config_errors(fields: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError) as exc:
        config_with(**fields)
    assert message in str(exc.value)
    assert "pw" not in str(exc.value)
    assert str(exc.value).startswith("cfg.yaml: sources[0] (settlement_platform)")


@pytest.mark.parametrize(
    ("location", "problem"),
    [
        ("http://reports.example.com/{date}.csv", "plain http:// is only allowed to a loopback"
         " host (127.0.0.0/8, ::1, localhost), not reports.example.com"),
        ("http://10.1.2.3/{date}.csv", "plain http:// is only allowed to a loopback host"
         " (127.0.0.0/8, ::1, localhost), not 10.1.2.3"),
        ("https://169.254.169.254/latest/{date}.csv",
         "169.254.169.254 is a cloud metadata address"),
        ("http://169.254.169.254/{date}.csv", "169.254.169.254 is a cloud metadata address"),
        ("https://169.254.10.1/{date}.csv",
         "169.254.10.1 is link-local (169.254.0.0/16, fe80::/10)"),
        ("https://[fe80::1]/{date}.csv", "fe80::1 is link-local (169.254.0.0/16, fe80::/10)"),
        ("https://[fd00:ec2::254]/{date}.csv", "fd00:ec2::254 is a cloud metadata address"),
        ("https://metadata.google.internal/{date}.csv",
         "metadata.google.internal is a cloud metadata host"),
        ("https://METADATA.google.internal./{date}.csv",
         "metadata.google.internal is a cloud metadata host"),
        ("https://2852039166/{date}.csv", "169.254.169.254 is a cloud metadata address"),
        ("https://0xa9.0xfe.0xa9.0xfe/{date}.csv", "169.254.169.254 is a cloud metadata address"),
        ("https://[::ffff:169.254.169.254]/{date}.csv",
         "::ffff:a9fe:a9fe (169.254.169.254) is a cloud metadata address"),
        ("https://0.0.0.0/{date}.csv", "0.0.0.0 is not a unicast host address"),
    ],
)  # fmt: skip
def test_config_refuses_metadata_link_local_and_remote_plain_http(
    location: str, problem: str
) -> None:
    with pytest.raises(ConfigError) as exc:
        config_with(location=location)
    shown = shown_location(location)
    assert str(exc.value) == (
        f"cfg.yaml: sources[0] (settlement_platform): location {shown!r} is refused: {problem}"
    )


@pytest.mark.parametrize(
    "location",
    [
        "http://127.0.0.1:8765/reports/{date}.csv",
        "http://127.9.9.9/{date}.csv",
        "http://localhost:8080/{date}.csv",
        "http://[::1]:8080/{date}.csv",
        "https://reports.example.com/{date}.csv",
        "https://10.1.2.3/{date}.csv",
        "s3://reports/{date}.csv",
        "/srv/reports/{date}.csv",
        "file:///srv/reports/{date}.csv",
        "file://localhost/srv/reports/{date}.csv",
    ],
)
def test_config_accepts_paths_s3_https_and_loopback_http(location: str) -> None:
    assert config_with(location=location).sources[0].settings.location == location


def test_config_refuses_a_file_url_with_a_host() -> None:
    with pytest.raises(ConfigError) as exc:
        config_with(location="file://fileserver/reports/{date}.csv")
    assert str(exc.value) == (
        "cfg.yaml: sources[0] (settlement_platform): location"
        " 'file://fileserver/reports/{date}.csv' names host 'fileserver';"
        " a file:// location must be local (file:///path)"
    )


def fake_dns(monkeypatch: pytest.MonkeyPatch, answers: dict[str, list[str]]) -> list[str]:
    """`socket.getaddrinfo` answering `answers[host]` in turn (the last one repeats); other
    hosts resolve for real. Returns the names asked, in order."""
    real = socket.getaddrinfo
    asked: list[str] = []

    def getaddrinfo(host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
        if host not in answers:
            return real(host, port, *args, **kwargs)
        asked.append(host)
        queue = answers[host]
        ip = queue.pop(0) if len(queue) > 1 else queue[0]
        family = socket.AF_INET6 if ":" in ip else socket.AF_INET
        return [(family, socket.SOCK_STREAM, socket.IPPROTO_TCP, "", (ip, port))]

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    return asked


def test_fetch_refuses_a_name_that_resolves_to_metadata(monkeypatch: pytest.MonkeyPatch) -> None:
    fake_dns(monkeypatch, {"reports.example.com": ["169.254.169.254"]})
    snapshot = make_snapshot()
    source = make_source("https://reports.example.com/{date}.csv")
    connector = SettlementReportConnector(source, recorded_http(snapshot), report_date=DAY)
    with pytest.raises(LocationRefused) as exc:
        connector.fetch()
    assert str(exc.value) == (
        f"{SOURCE}: location host reports.example.com resolves to 169.254.169.254:"
        " 169.254.169.254 is a cloud metadata address"
    )
    assert snapshot.responses == []


def test_fetch_refuses_plain_http_to_a_name_that_is_not_loopback(
    simulator: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake_dns(monkeypatch, {"localhost": ["10.0.0.7"]})
    port = simulator.url.rsplit(":", 1)[1]
    source = make_source(f"http://localhost:{port}/reports/client-balance/{{date}}.csv")
    with pytest.raises(LocationRefused) as exc:
        fetch_from(source)
    assert str(exc.value) == (
        f"{SOURCE}: location host localhost resolves to 10.0.0.7: plain http:// is only allowed"
        " to a loopback host (127.0.0.0/8, ::1, localhost), not 10.0.0.7"
    )
    assert simulator.request_count("settlement_report") == 0


def test_connections_are_pinned_to_the_checked_address(
    simulator: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    port = simulator.url.rsplit(":", 1)[1]
    source = make_source(f"http://report.test:{port}/reports/client-balance/{{date}}.csv",
                         api_token=Secret(TOKEN))  # fmt: skip
    asked = fake_dns(monkeypatch, {"report.test": ["127.0.0.1"]})
    snapshot = fetch_from(source)
    assert [r.status for r in snapshot.responses] == [200]
    # once before the request, once by the connection, never again by urllib3 itself
    assert asked == ["report.test", "report.test"]

    # DNS that answers loopback to the check and metadata to the connection: refused
    asked = fake_dns(monkeypatch, {"report.test": ["127.0.0.1", "169.254.169.254"]})
    snapshot = make_snapshot()
    connector = SettlementReportConnector(source, recorded_http(snapshot), report_date=DAY)
    with pytest.raises(LocationRefused) as exc:
        connector.fetch()
    assert str(exc.value).endswith("resolves to 169.254.169.254: 169.254.169.254 is a cloud"
                                   " metadata address")  # fmt: skip
    assert snapshot.responses == [] and simulator.request_count("settlement_report") == 1


# --- fetch: a file that is not a report is a permanent error, recorded once ----------------------


def test_wrong_header_fails_the_fetch_permanently(simulator: Any) -> None:
    body = csv_bytes().replace(b",custody", b"", 1)
    simulator.serve_payload("settlement_report", body)
    snapshot = make_snapshot()
    source = sim_source(simulator, "csv")
    connector = SettlementReportConnector(source, recorded_http(snapshot), report_date=DAY)
    with pytest.raises(ReportFormatError) as exc:
        connector.fetch()
    assert isinstance(exc.value, MalformedResponse)
    assert str(exc.value) == (
        f"{SOURCE}: {simulator.url}/reports/client-balance/2026-01-02.csv: header is not the"
        " report's 33 columns: missing column(s) 'custody'"
    )
    assert [r.body for r in snapshot.responses] == [body]
    assert simulator.request_count("settlement_report") == 1


@pytest.mark.parametrize(
    ("body", "fmt", "permanent", "message"),
    [
        (b'{"rows": []}', "json", True, "JSON report must be an array of rows, got object"),
        (b'[{"a": 1}]', "json", True, "no element of the JSON report has the 33 keys"),
        (b'[{"a": 1},', "json", False, "the JSON report is truncated (no closing ])"),
        (b"\n", "csv", False, "the report file is empty"),
    ],
)
def test_file_level_problems_at_fetch(
    tmp_path: Path, body: bytes, fmt: str, permanent: bool, message: str
) -> None:
    (tmp_path / f"2026-01-02.{fmt}").write_bytes(body)
    connector = SettlementReportConnector(
        make_source(str(tmp_path / f"{{date}}.{fmt}")), recorded_http(make_snapshot()),
        report_date=DAY,
    )  # fmt: skip
    with pytest.raises(MalformedResponse) as exc:
        connector.fetch()
    assert str(exc.value) == f"{SOURCE}: {tmp_path / f'2026-01-02.{fmt}'}: {message}"
    assert isinstance(exc.value, ReportFormatError) is permanent


def test_wrong_header_is_landed_once_not_once_per_retry(tmp_path: Path) -> None:
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "2026-01-02.csv").write_bytes(csv_bytes().replace(b",custody", b"", 1))
    config = parse_config(
        {"sources": [{"name": "settlement_platform", "kind": "settlement_report",
                      "location": str(tmp_path / "in" / "{date}.csv")}]},
    )  # fmt: skip
    store = LocalObjectStore(tmp_path / "lake")
    for attempt in range(3):  # what Dagster's retry policy does: retry while the step raises
        try:
            take_snapshot(
                config.sources[0], store, DAY, now=datetime(2026, 1, 2, 23, 30 + attempt,
                tzinfo=UTC), cutoff_hours=6, final_attempt=attempt == 2,
            )  # fmt: skip
            break
        except MalformedResponse:
            continue
    landed = store.list("raw/venue=settlement_report/source=settlement_platform/date=2026-01-02/")
    assert len(landed) == 1


def test_location_helpers() -> None:
    assert resolve_location("s3://b/{date}/{date}.csv", DAY) == "s3://b/2026-01-02/2026-01-02.csv"
    assert format_of("https://h/x/report.json?token=abc.csv") == "json"
    assert format_of("file:///tmp/r.csv") == "csv"
    assert format_of("/tmp/report") is None


# --- fetch: local path ---------------------------------------------------------------------------


def test_fetch_from_local_path_records_the_file_verbatim(tmp_path: Path) -> None:
    (tmp_path / "2026-01-02.csv").write_bytes(csv_bytes())
    (tmp_path / "2026-01-03.csv").write_bytes(b"not this one")
    source = make_source(str(tmp_path / "{date}.csv"))
    snapshot = make_snapshot()
    connector = SettlementReportConnector(source, recorded_http(snapshot), report_date=DAY)
    connector.fetch()
    (raw,) = snapshot.responses
    assert (raw.method, raw.url, raw.status) == ("READ", str(tmp_path / "2026-01-02.csv"), 200)
    assert raw.body == csv_bytes()
    assert raw.headers["Content-Type"] == "text/csv"
    # the landed envelope round-trips the bytes
    assert RawSnapshot.from_bytes(snapshot.to_bytes()).responses[0].body == csv_bytes()
    parsed = SettlementReportConnector.parse(snapshot, source)
    assert parsed.balances.to_pylist() == EXPECTED


def test_report_date_is_the_attribute_the_pipeline_sets(tmp_path: Path) -> None:
    source = make_source(str(tmp_path / "{date}.json"))
    connector = connector_for("settlement_report")(source, recorded_http(make_snapshot()))
    assert connector.report_date == datetime.now(UTC).date()  # default: today in UTC
    connector.report_date = DAY
    assert isinstance(connector, SettlementReportConnector)
    assert connector.location == str(tmp_path / "2026-01-02.json")


def test_missing_local_file_is_report_not_found(tmp_path: Path) -> None:
    source = make_source(str(tmp_path / "{date}.csv"))
    snapshot = make_snapshot()
    connector = SettlementReportConnector(source, recorded_http(snapshot), report_date=DAY)
    with pytest.raises(ReportNotFound) as exc:
        connector.fetch()
    assert isinstance(exc.value, VenueUnavailable)
    assert str(exc.value) == f"{SOURCE}: report not found: {tmp_path / '2026-01-02.csv'}"
    assert snapshot.responses == []


def test_malformed_file_fails_the_fetch_but_is_still_recorded(tmp_path: Path) -> None:
    body = csv_bytes().replace(b",custody", b"", 1)
    (tmp_path / "2026-01-02.csv").write_bytes(body)
    snapshot = make_snapshot()
    connector = SettlementReportConnector(
        make_source(str(tmp_path / "{date}.csv")), recorded_http(snapshot), report_date=DAY
    )
    with pytest.raises(MalformedResponse, match="missing column\\(s\\) 'custody'"):
        connector.fetch()
    assert [r.body for r in snapshot.responses] == [body]


def test_parse_of_a_snapshot_without_a_report() -> None:
    source = make_source("https://h.example.com/{date}.csv")
    missing = RawResponse("GET", "https://h.example.com/2026-01-02.csv?sig=s3cr3t", 404, {},
                          b"{}", "t")  # fmt: skip
    with pytest.raises(ReportNotFound) as exc:
        SettlementReportConnector.parse(make_snapshot(missing), source)
    assert "s3cr3t" not in str(exc.value)
    assert "GET https://h.example.com/2026-01-02.csv answered HTTP 404" in str(exc.value)
    with pytest.raises(VenueUnavailable, match="snapshot holds no report \\(boom\\)"):
        SettlementReportConnector.parse(make_snapshot(error="boom"), source)
    with pytest.raises(MalformedResponse, match="snapshot holds no report"):
        SettlementReportConnector.parse(make_snapshot(), source)
    # the last successful read wins
    snap = make_snapshot(read_response(b"old"), read_response(csv_bytes()))
    assert SettlementReportConnector.parse(snap, source).balances.to_pylist() == EXPECTED


# --- fetch: HTTP from the simulator --------------------------------------------------------------


TOKEN = sim_report.DEFAULT_API_TOKEN


def sim_source(sim: Any, fmt: str, token: str | None = TOKEN) -> SourceConfig:
    return make_source(
        sim_report.report_url(sim, fmt), api_token=None if token is None else Secret(token)
    )


def fetch_from(source: SourceConfig, report_date: date = DAY) -> RawSnapshot:
    snapshot = make_snapshot()
    SettlementReportConnector(source, recorded_http(snapshot), report_date=report_date).fetch()
    return snapshot


@pytest.mark.parametrize("fmt", ["csv", "json"])
def test_http_fetch_from_the_simulator(simulator: Any, fmt: str) -> None:
    snapshot = fetch_from(sim_source(simulator, fmt))
    (raw,) = snapshot.responses
    assert raw.method == "GET" and raw.status == 200
    assert raw.url == f"{simulator.url}/reports/client-balance/2026-01-02.{fmt}"
    served = requests.get(
        raw.url,
        headers={"Authorization": f"Bearer {sim_report.DEFAULT_API_TOKEN}"},
        timeout=5,
    )
    assert raw.body == served.content  # landed verbatim
    parsed = SettlementReportConnector.parse(snapshot, sim_source(simulator, fmt))
    assert parsed.rejected == []
    rows = sim_report.report_rows(7, DAY)
    assert parsed.balances.num_rows == len(rows) == 10
    assert parsed.balances.column("accountUUID").to_pylist() == [r["accountUUID"] for r in rows]
    first = parsed.balances.slice(0, 1).to_pylist()[0]
    assert (first["Ccy"], first["Total"], first["Available"], first["Brokerage"]) == (
        "BTC", Decimal("5.77"), Decimal("5.00"), Decimal("0.37"))  # fmt: skip


def test_simulator_csv_and_json_reports_are_the_same_table(simulator: Any) -> None:
    tables = [
        SettlementReportConnector.parse(fetch_from(sim_source(simulator, fmt)),
                                        sim_source(simulator, fmt)).balances
        for fmt in ("csv", "json")
    ]  # fmt: skip
    assert tables[0].equals(tables[1])
    valid, rejected = split_valid(tables[0], BalancesModel)
    assert rejected == [] and valid.num_rows == 10
    amounts = {format(v.normalize(), "f") for c in AMOUNT_COLUMNS for v in tables[0][c].to_pylist()}
    assert any(a.startswith("-0.000") and len(a) == 22 for a in amounts)  # 19 fractional digits
    assert any(0 < Decimal(a) < Decimal("1e-6") for a in amounts)  # dust (3.46e-9 in JSON)
    zero = [r for r in tables[0].to_pylist() if all(r[c] == 0 for c in AMOUNT_COLUMNS)]
    assert len(zero) == 1


def test_simulator_report_is_deterministic_per_date() -> None:
    a = sim_report.render_csv(sim_report.report_rows(7, DAY))
    assert a == sim_report.render_csv(sim_report.report_rows(7, DAY))
    other_day = sim_report.report_rows(7, date(2026, 1, 3))
    assert a != sim_report.render_csv(other_day)
    # same accounts every day
    assert [r["accountUUID"] for r in sim_report.report_rows(7, DAY)] == [
        r["accountUUID"] for r in other_day
    ]
    assert b"3.46e-9" not in a and b"e-" in sim_report.render_json(sim_report.report_rows(7, DAY))


def test_http_wrong_or_missing_token_is_an_auth_error(simulator: Any) -> None:
    for token in (None, "wrong"):
        snapshot = make_snapshot()
        connector = SettlementReportConnector(
            sim_source(simulator, "csv", token), recorded_http(snapshot), report_date=DAY
        )
        with pytest.raises(VenueAuthError, match="HTTP 401") as exc:
            connector.fetch()
        assert "wrong" not in str(exc.value)
        assert [r.status for r in snapshot.responses] == [401]


@pytest.mark.parametrize("day", [date(2019, 12, 31), date(2999, 1, 1)])
def test_http_date_without_a_report_is_not_found(simulator: Any, day: date) -> None:
    snapshot = make_snapshot()
    connector = SettlementReportConnector(
        sim_source(simulator, "json"), recorded_http(snapshot), report_date=day
    )
    with pytest.raises(ReportNotFound, match=f"{day.isoformat()}.json answered HTTP 404"):
        connector.fetch()
    assert [r.status for r in snapshot.responses] == [404]


def test_http_fault_is_retried_then_served(simulator: Any) -> None:
    simulator.set_fault("settlement_report", status=503, times=1)
    snapshot = fetch_from(sim_source(simulator, "csv"))
    assert [r.status for r in snapshot.responses] == [503, 200]
    parsed = SettlementReportConnector.parse(snapshot, sim_source(simulator, "csv"))
    assert parsed.balances.num_rows == 10


def test_http_fixed_payload_override(simulator: Any) -> None:
    simulator.serve_payload("settlement_report", json_bytes())
    source = sim_source(simulator, "json")
    snapshot = fetch_from(source, date(2021, 6, 1))
    assert snapshot.responses[0].body == json_bytes()
    assert SettlementReportConnector.parse(snapshot, source).balances.to_pylist() == EXPECTED


def test_simulator_knobs_from_its_config() -> None:
    config = SimulatorConfig(seed=3)
    object.__setattr__(config, "settlement_report_api_token", "")
    object.__setattr__(config, "settlement_report_first_date", "2026-01-02")
    with Simulator(config) as sim:
        url = f"{sim.url}/reports/client-balance"
        assert requests.get(f"{url}/2026-01-02.csv", timeout=5).status_code == 200
        assert requests.get(f"{url}/2026-01-01.csv", timeout=5).status_code == 404
        assert requests.get(f"{url}/20260102.csv", timeout=5).status_code == 404
        assert requests.get(f"{url}/2026-01-02.xml", timeout=5).status_code == 404


# --- history: a dated file is that date's report -------------------------------------------------


def test_reads_history_when_the_location_is_dated() -> None:
    connector = connector_for("settlement_report")
    assert connector.reads_history(SettlementReportSettings("s3://b/{date}.csv")) is True
    assert connector.reads_history(SettlementReportSettings("https://h.example.com/r.csv?d={date}"))
    assert connector.reads_history(SettlementReportSettings("s3://b/latest.csv")) is False


def test_simulator_serves_dated_files_for_past_dates(simulator: Any) -> None:
    old = date(2021, 6, 1)
    sim_report.serve_report(simulator, old, csv_bytes())
    source = sim_source(simulator, "csv")
    assert fetch_from(source, old).responses[0].body == csv_bytes()
    generated = fetch_from(source, date(2021, 6, 2)).responses[0].body
    assert generated == sim_report.render_csv(sim_report.report_rows(7, date(2021, 6, 2)))
    json_old = fetch_from(sim_source(simulator, "json"), old).responses[0].body  # csv only
    assert json_old == sim_report.render_json(sim_report.report_rows(7, old))
    sim_report.serve_report(simulator, old, None)
    assert fetch_from(source, old).responses[0].body == sim_report.render_csv(
        sim_report.report_rows(7, old)
    )
    with pytest.raises(ValueError, match="unknown report format 'xml'"):
        sim_report.serve_report(simulator, old, b"", "xml")


def test_pipeline_fetches_a_past_dated_file(tmp_path: Path) -> None:
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "2026-01-02.csv").write_bytes(csv_bytes())
    config = parse_config(
        {"sources": [{"name": "settlement_platform", "kind": "settlement_report",
                      "location": str(tmp_path / "in" / "{date}.csv")}]},
    )  # fmt: skip
    store = LocalObjectStore(tmp_path / "lake")
    later = datetime(2026, 11, 20, 9, tzinfo=UTC)  # D's live window closed long ago
    outcome = take_snapshot(config.sources[0], store, DAY, now=later, cutoff_hours=6)
    assert outcome.ok, outcome.reason
    assert outcome.details["mode"] == "live"
    landed = RawSnapshot.from_bytes(store.get(outcome.details["snapshot_key"]))
    assert [r.body for r in landed.responses] == [csv_bytes()]


# --- through the pipeline's first stages ---------------------------------------------------------


def test_pipeline_snapshot_and_balances_from_a_dated_file(tmp_path: Path) -> None:
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "2026-01-02.json").write_bytes(json_bytes())
    config = parse_config(
        {"storage": str(tmp_path / "lake"),
         "sources": [{"name": "settlement_platform", "kind": "settlement_report",
                      "location": str(tmp_path / "in" / "{date}.json")}]},
    )  # fmt: skip
    source = config.sources[0]
    store = LocalObjectStore(tmp_path / "lake")
    now = datetime(2026, 1, 2, 23, 30, tzinfo=UTC)
    outcome = take_snapshot(source, store, DAY, now=now, cutoff_hours=6)
    assert outcome.ok, outcome.reason
    landed = RawSnapshot.from_bytes(store.get(outcome.details["snapshot_key"]))
    assert outcome.details["snapshot_key"].startswith(
        "raw/venue=settlement_report/source=settlement_platform/date=2026-01-02/"
    )
    assert [r.body for r in landed.responses] == [json_bytes()]
    balances = stage_balances(source, store, DAY)
    assert balances.ok, balances.reason
    assert balances.details["rows"] == 4
    assert balances.details["rejected"] == []
    accounts = staging.read_parquet(store, staging.accounts_key(source.name, DAY))
    assert accounts.column("account_id").to_pylist() == [A1, A2]
    assert balances.details["accounts_received"] == 2


def test_pipeline_records_a_missing_report_as_a_failed_snapshot(tmp_path: Path) -> None:
    config = parse_config(
        {"sources": [{"name": "settlement_platform", "kind": "settlement_report",
                      "location": str(tmp_path / "{date}.csv")}]},
    )  # fmt: skip
    store = LocalObjectStore(tmp_path / "lake")
    now = datetime(2026, 1, 2, 23, 30, tzinfo=UTC)
    outcome = take_snapshot(config.sources[0], store, DAY, now=now, cutoff_hours=6)
    assert not outcome.ok
    assert outcome.reason == f"settlement_platform: report not found: {tmp_path / '2026-01-02.csv'}"
