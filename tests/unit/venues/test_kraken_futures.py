"""Kraken Futures connector: signing, nonces, mapping (spec §3), typed errors, real HTTP."""

from __future__ import annotations

import base64
import copy
import csv
import gzip
import hashlib
import hmac
import itertools
import json
import threading
import time
import uuid
from collections.abc import Callable
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from etl_project.config import Secret, SourceConfig, parse_config
from etl_project.errors import (
    ConfigError,
    MalformedResponse,
    VenueAuthError,
    VenueError,
    VenueRateLimited,
    VenueUnavailable,
)
from etl_project.http import HttpClient, RawResponse
from etl_project.raw import RawSnapshot, SnapshotRecorder
from etl_project.report.columns import REPORT_COLUMNS
from etl_project.report.schema import BalancesModel
from etl_project.report.validate import split_valid
from etl_project.simulator import DEFAULT_KRAKEN_API_KEY, DEFAULT_KRAKEN_API_SECRET
from etl_project.simulator.data import dumps
from etl_project.venues.base import AccountStatus
from etl_project.venues.kraken_futures.auth import NonceSource, authent, endpoint_path
from etl_project.venues.kraken_futures.connector import (
    KrakenFuturesConnector,
    KrakenFuturesSettings,
    check_response,
)
from tests.report_text import fmt_amount, report_rows

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures"
SEED003 = FIXTURES / "kraken_futures_seed003.json"
SEED003_EXPECTED = FIXTURES / "kraken_futures_seed003_expected.csv"
SEED_UID = "7f5c528e-2285-45f0-95f5-83d53d4bfcd2"
SEED_MASTER = "ba598ca1-65c1-4f48-927d-0e2b647d627a"
NS = uuid.uuid5(uuid.NAMESPACE_URL, "urn:settlement-balance-report")
URL = "https://futures.kraken.com/derivatives/api/v3/subaccounts"
# A base64 secret in Kraken's documented format (64 random bytes), used only here.
VECTOR_SECRET = (
    "kQH5HW/8p1uGOVjbgWA7FunAmGO8lsSUXNsu3eow76sz84Q18fWxnyRzBHCd3pd5nE9qa99HAZtuZuj6F1huXg=="
)


# --- helpers -----------------------------------------------------------------------------------


def make_source(
    base_url: str = "https://futures.kraken.com/derivatives/api/v3",
    api_key: str = DEFAULT_KRAKEN_API_KEY,
    api_secret: str = DEFAULT_KRAKEN_API_SECRET,
    **common: Any,
) -> SourceConfig:
    settings = KrakenFuturesSettings(Secret(api_key), Secret(api_secret), base_url=base_url)
    return SourceConfig(name="kraken_test", kind="kraken_futures", settings=settings, **common)


def make_response(body: bytes | dict[str, Any], status: int = 200) -> RawResponse:
    data = json.dumps(body).encode() if isinstance(body, dict) else body
    return RawResponse("GET", URL, status, {"Content-Type": "application/json"}, data, "t")


def make_snapshot(*responses: RawResponse) -> RawSnapshot:
    return RawSnapshot(
        "kraken_test",
        "kraken_futures",
        date(2026, 1, 2),
        datetime(2026, 1, 3, 0, 5, tzinfo=UTC),
        responses=list(responses),
    )


def seed_bytes() -> bytes:
    return SEED003.read_bytes()


def seed_doc() -> dict[str, Any]:
    return json.loads(SEED003.read_bytes())


def expected_rows() -> list[dict[str, str]]:
    with SEED003_EXPECTED.open(encoding="utf-8", newline="") as f:
        reader = csv.DictReader(f)
        assert reader.fieldnames == list(REPORT_COLUMNS)
        return list(reader)


def parse_doc(doc: dict[str, Any], **common: Any) -> Any:
    return KrakenFuturesConnector.parse(make_snapshot(make_response(doc)), make_source(**common))


def test_fmt_amount_helper() -> None:
    assert fmt_amount(Decimal("100.00000000000000000000")) == "100"
    assert fmt_amount(Decimal("3.46E-9")) == "0.00000000346"
    assert fmt_amount(Decimal("0E-20")) == "0"
    assert fmt_amount(Decimal("-0.00090568328396424710")) == "-0.0009056832839642471"


# --- signing and nonces ------------------------------------------------------------------------


def test_authent_matches_hand_computed_vector() -> None:
    nonce = "1616492376594"
    path = "/api/v3/subaccounts"
    # Step by step, as seed 003 describes it:
    message = ("" + nonce + path).encode("utf-8")  # postData + nonce + endpointPath
    sha256 = hashlib.sha256(message).digest()
    key = base64.b64decode(VECTOR_SECRET)
    signature = hmac.new(key, sha256, hashlib.sha512).digest()
    expected = base64.b64encode(signature).decode("ascii")
    assert expected == (
        "kZaO6MvboAFM9uhnXd8Xy7L8gjUJRasiQgVfsoBOt/xnOAFm1sAflOLW2Bkk/FlPZ4sa9A8IxhfTtgGz3SW4og=="
    )
    assert authent(VECTOR_SECRET, path, nonce) == expected


def test_authent_puts_post_data_first() -> None:
    post = "ClientKey=abc&x=1"
    assert authent(VECTOR_SECRET, "/api/v3/subaccounts", "1616492376594", post) == (
        "o0g/nbxnng9cpMYvo9VE6Y8vQqM9Xi3cttfYIyaeuHArBuEkVqjrwPCiex4CGeILsrs0CyQln0fhUyy3kRjEaA=="
    )


@pytest.mark.parametrize(
    ("url", "path"),
    [
        ("https://futures.kraken.com/derivatives/api/v3/subaccounts", "/api/v3/subaccounts"),
        ("http://127.0.0.1:8080/derivatives/api/v3/subaccounts", "/api/v3/subaccounts"),
        ("https://proxy.example/kraken/derivatives/api/v3/subaccounts", "/api/v3/subaccounts"),
        ("https://proxy.example/api/v3/subaccounts", "/api/v3/subaccounts"),
        (
            "https://proxy.example/derivativesx/api/v3/subaccounts",
            "/derivativesx/api/v3/subaccounts",
        ),
    ],
)
def test_endpoint_path(url: str, path: str) -> None:
    assert endpoint_path(url) == path


def test_nonces_strictly_increase_across_threads() -> None:
    source = NonceSource()
    per_thread: list[list[int]] = [[] for _ in range(8)]
    start = threading.Barrier(8)

    def work(out: list[int]) -> None:
        start.wait()
        for _ in range(500):
            out.append(int(source.next()))

    threads = [threading.Thread(target=work, args=(out,)) for out in per_thread]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    everything = [n for out in per_thread for n in out]
    assert len(everything) == 4000
    assert len(set(everything)) == 4000
    for out in per_thread:
        assert all(a < b for a, b in itertools.pairwise(out))
    assert int(source.next()) > max(everything)


def test_nonce_is_millisecond_time_and_never_goes_back() -> None:
    now = [1_700_000_000.0]
    source = NonceSource(clock=lambda: now[0])
    assert source.next() == "1700000000000"
    assert source.next() == "1700000000001"  # same millisecond: bumped
    now[0] = 1_600_000_000.0  # clock stepped back
    assert source.next() == "1700000000002"
    now[0] = 1_800_000_000.5
    assert source.next() == "1800000000500"


# --- settings ---------------------------------------------------------------------------------


def test_settings_through_config_are_secrets() -> None:
    config = parse_config(
        {
            "sources": [
                {
                    "name": "kraken_main",
                    "kind": "kraken_futures",
                    "api_key": "the-key",
                    "api_secret": VECTOR_SECRET,
                }
            ]
        }
    )
    settings = config.sources[0].settings
    assert isinstance(settings, KrakenFuturesSettings)
    assert isinstance(settings.api_key, Secret) and isinstance(settings.api_secret, Secret)
    assert settings.api_secret.reveal() == VECTOR_SECRET
    assert VECTOR_SECRET not in repr(settings) and "the-key" not in repr(settings)
    assert settings.base_url == "https://futures.kraken.com/derivatives/api/v3"
    assert (settings.connect_timeout, settings.read_timeout) == (5.0, 30.0)


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("api_secret", "not base64 at all!", "cfg: api_secret is not valid base64"),
        ("api_secret", "", "cfg: api_secret is empty"),
        ("api_key", " ", "cfg: api_key is empty"),
        (
            "base_url",
            "ftp://futures.kraken.com",
            "cfg: base_url: 'ftp://futures.kraken.com' is not",
        ),
        ("base_url", "futures.kraken.com/derivatives", "cfg: base_url: 'futures.kraken.com/deriv"),
        ("read_timeout", 0, "cfg: read_timeout must be a positive number of seconds"),
    ],
)
def test_settings_validate(field: str, value: Any, message: str) -> None:
    values: dict[str, Any] = {"api_key": Secret("k"), "api_secret": Secret(VECTOR_SECRET)}
    values[field] = Secret(value) if field.startswith("api_") else value
    with pytest.raises(ConfigError) as info:
        KrakenFuturesSettings(**values).validate("cfg")
    text = str(info.value)
    assert text.startswith(message)
    assert "\n" not in text
    if field == "api_secret" and value:
        assert value not in text


# --- mapping: seed 003 ---------------------------------------------------------------------


def test_seed003_maps_to_the_expected_report_rows() -> None:
    parsed = KrakenFuturesConnector.parse(make_snapshot(make_response(seed_bytes())), make_source())
    assert parsed.rejected == []
    assert report_rows(parsed.balances) == expected_rows()


def test_seed003_all_rows_trace_and_completeness() -> None:
    parsed = KrakenFuturesConnector.parse(make_snapshot(make_response(seed_bytes())), make_source())
    table = parsed.balances
    # 9 holding + 6 flex + 6 futures rows before the report drops all-zero rows.
    assert table.num_rows == 21
    wallets = table.column("wallet").to_pylist()
    assert wallets.count("holding") == 9 and wallets.count("flex") == 6
    assert sorted(w for w in wallets if w.startswith("futures:")) == [
        "futures:f-bch:usd",
        "futures:f-eth:usd",
        "futures:f-ltc:usd",
        "futures:f-xbt:usd",
        "futures:f-xrp:usd",
        "futures:f-xrp:xbt",
    ]
    assert set(table.column("venue_account_id").to_pylist()) == {SEED_UID}
    assert set(table.column("venue").to_pylist()) == {"kraken_futures"}
    assert set(table.column("source").to_pylist()) == {"kraken_test"}
    assert set(table.column("Account Group UUID").to_pylist()) == {SEED_MASTER}
    assert [(a.account_id, a.status) for a in parsed.accounts] == [(SEED_UID, "received")]
    # Exactly as sent, at full scale: no float on the way.
    margins = {
        w: t
        for w, t in zip(wallets, table.column("Total").to_pylist(), strict=True)
        if w == "futures:f-xbt:usd"
    }
    assert margins == {"futures:f-xbt:usd": Decimal("-0.0009056832839642471")}


def test_account_group_label_and_main_type_come_from_the_source() -> None:
    holding = "5ed26ca2-07fa-5377-bef8-ef588389c141"
    parsed = parse_doc(
        seed_doc(), account_group="Desk A", main_types={holding: "House"},
        system_accounts=frozenset({SEED_UID}),
    )  # fmt: skip
    rows = parsed.balances.to_pylist()
    assert {r["Account Group"] for r in rows} == {"Desk A"}
    assert {r["mainType"] for r in rows if r["accountUUID"] == holding} == {"House"}
    assert {r["mainType"] for r in rows if r["accountUUID"] != holding} == {"Client"}
    assert {r["System Account"] for r in rows} == {True}


def test_user_email_and_uuid_rules() -> None:
    doc = seed_doc()
    sub = doc["subaccounts"][0]
    sub["accountUid"] = SEED_UID.upper()
    doc["masterAccountUid"] = SEED_MASTER.upper()
    sub["name"] = "Trading desk 1"
    sub["email"] = "Ops.Desk@Example.COM"
    second = copy.deepcopy(sub)
    second["accountUid"] = "11111111-2222-4333-8444-555555555555"
    del second["name"]
    second["fullName"] = ""
    second["email"] = None
    third = copy.deepcopy(second)
    third["accountUid"] = "21111111-2222-4333-8444-555555555555"
    third["fullName"] = "Full Name"
    third["email"] = "not-an-address@"
    doc["subaccounts"] += [second, third]
    rows = parse_doc(doc).balances.to_pylist()
    people = {(r["userUUID"], r["User"], r["Email"], r["Account Group UUID"]) for r in rows}
    assert people == {
        (SEED_UID, "Trading desk 1", "Ops.Desk@Example.COM", SEED_MASTER),
        (second["accountUid"], second["accountUid"], None, SEED_MASTER),
        (third["accountUid"], "Full Name", None, SEED_MASTER),
    }


def test_duplicate_account_currency_is_emitted_twice_not_summed() -> None:
    doc = seed_doc()
    holdings = doc["subaccounts"][0]["holdingAccounts"]
    holdings.append({"currency": "XRP", "amount": 1.5})
    parsed = parse_doc(doc)
    rows = [r for r in parsed.balances.to_pylist() if r["wallet"] == "holding"]
    xrp = sorted(r["Total"] for r in rows if r["Ccy"] == "XRP")
    assert xrp == [Decimal("1.5"), Decimal("13662.85078")]
    # Both holdings go to quarantine in the balances stage; the other rows stay.
    valid, rejected = split_valid(parsed.balances, BalancesModel)
    assert [(r.check, r.reason, r.record["Ccy"], r.record["Total"]) for r in rejected] == [
        ("unique_account_ccy", "duplicate (accountUUID, Ccy): listed 2 times by the venue",
         "XRP", "13662.85078"),
        ("unique_account_ccy", "duplicate (accountUUID, Ccy): listed 2 times by the venue",
         "XRP", "1.5"),
    ]  # fmt: skip
    assert valid.num_rows == 21 - 1


@pytest.mark.parametrize(
    ("extra", "check", "reason"),
    [
        ({"currency": "XRP", "amount": "abc"}, "decimal",
         'subaccounts[0].holdingAccounts[9].amount must be a number, got string "abc"'),
        ({"currency": "xrp", "amount": Decimal("0.123456789012345678901")}, "exact_decimal",
         "Total: 0.123456789012345678901 has more than 20 fractional digits; Total Prefunding: "
         "0.123456789012345678901 has more than 20 fractional digits; Available: "
         "0.123456789012345678901 has more than 20 fractional digits"),
    ],
)  # fmt: skip
def test_a_rejected_copy_of_a_currency_takes_the_other_copy_to_quarantine(
    extra: dict[str, Any], check: str, reason: str
) -> None:
    """Never "first wins": a currency listed twice, one copy bad, reports neither copy."""
    doc = json.loads(seed_bytes(), parse_float=Decimal, parse_int=Decimal)
    doc["subaccounts"][0]["holdingAccounts"].append(extra)
    text = dumps(doc).encode()
    parsed = KrakenFuturesConnector.parse(make_snapshot(make_response(text)), make_source())
    holding = u5(f"kraken_futures:{SEED_UID}:holding")
    assert [(r.check, r.reason, r.record["accountUUID"], r.record["Ccy"])
            for r in parsed.rejected] == [
        (check, reason, holding, "XRP"),
        ("unique_account_ccy", "duplicate (accountUUID, Ccy): listed 2 times by the venue",
         holding, "XRP"),
    ]  # fmt: skip
    assert parsed.rejected[1].record["Total"] == "13662.85078"
    assert parsed.rejected[1].record["source"] == "kraken_test"
    assert parsed.balances.num_rows == 20
    assert report_rows(parsed.balances) == [
        r for r in expected_rows() if (r["accountUUID"], r["Ccy"]) != (holding, "XRP")
    ]


def test_21_fractional_digits_are_rejected_not_rounded() -> None:
    text = seed_bytes().replace(b"13662.85078", b"0.123456789012345678901")
    parsed = KrakenFuturesConnector.parse(make_snapshot(make_response(text)), make_source())
    assert [(r.check, r.record["Ccy"], r.record["wallet"]) for r in parsed.rejected] == [
        ("exact_decimal", "XRP", "holding")
    ]
    assert "0.123456789012345678901 has more than 20 fractional digits" in (
        parsed.rejected[0].reason
    )
    holding = [r["Ccy"] for r in parsed.balances.to_pylist() if r["wallet"] == "holding"]
    assert "XRP" not in holding and len(holding) == 8


def test_nan_amount_is_rejected() -> None:
    text = seed_bytes().replace(b'"quantity": 0.5', b'"quantity": NaN')
    parsed = KrakenFuturesConnector.parse(make_snapshot(make_response(text)), make_source())
    assert len(parsed.rejected) == 1
    assert parsed.rejected[0].record["Ccy"] == "ETH"
    assert "not a finite number" in parsed.rejected[0].reason


def test_empty_subaccounts_give_an_empty_table() -> None:
    doc = seed_doc()
    doc["subaccounts"] = []
    parsed = parse_doc(doc)
    assert parsed.balances.num_rows == 0 and parsed.accounts == []
    assert parsed.balances.column_names[: len(REPORT_COLUMNS)] == list(REPORT_COLUMNS)


# --- malformed payloads ----------------------------------------------------------------------


def _mutate(change: Callable[[dict[str, Any]], None]) -> dict[str, Any]:
    doc = seed_doc()
    change(doc)
    return doc


def _sub(doc: dict[str, Any]) -> dict[str, Any]:
    sub: dict[str, Any] = doc["subaccounts"][0]
    return sub


def u5(name: str) -> str:
    return str(uuid.uuid5(NS, name))


OTHER_UID = "11111111-2222-4333-8444-555555555555"
SEED_NAME = "fullname redacted"  # seed 003's sub-account has a fullName and no name


def with_second_subaccount(doc: dict[str, Any]) -> dict[str, Any]:
    """Seed 003 plus an untouched copy of its sub-account under another uid."""
    other = copy.deepcopy(doc["subaccounts"][0])
    other["accountUid"] = OTHER_UID
    doc["subaccounts"].append(other)
    return doc


#: (change, check, reason, wallet of the rejected row, its Ccy, report key of the row it was).
ROW_PROBLEMS: list[tuple[Callable[[dict[str, Any]], None], str, str, str, str | None, str]] = [
    (
        lambda d: _sub(d)["holdingAccounts"][2].update(amount="abc"),
        "decimal", 'subaccounts[0].holdingAccounts[2].amount must be a number, got string "abc"',
        "holding", "XRP", "holding",
    ),
    (
        lambda d: _sub(d)["holdingAccounts"][2].update(amount=None),
        "decimal", "subaccounts[0].holdingAccounts[2].amount must be a number, got null",
        "holding", "XRP", "holding",
    ),
    (
        lambda d: _sub(d)["holdingAccounts"][2].pop("amount"),
        "decimal", "subaccounts[0].holdingAccounts[2].amount is missing",
        "holding", "XRP", "holding",
    ),
    (
        lambda d: _sub(d)["holdingAccounts"][2].pop("currency"),
        "venue_value", "subaccounts[0].holdingAccounts[2].currency is missing",
        "holding", None, "holding",
    ),
    (
        lambda d: _sub(d)["holdingAccounts"][2].update(currency=5),
        "venue_value",
        "subaccounts[0].holdingAccounts[2].currency must be a non-empty string, got number 5",
        "holding", None, "holding",
    ),
    (
        lambda d: _sub(d)["holdingAccounts"].__setitem__(2, "xrp"),
        "venue_value", 'subaccounts[0].holdingAccounts[2] must be an object, got string "xrp"',
        "holding", None, "holding",
    ),
    (
        lambda d: _sub(d)["flexAccount"]["currencies"][0].update(available=None),
        "decimal", "subaccounts[0].flexAccount.currencies[0].available must be a number, got null",
        "flex", "ETH", "flex",
    ),
    (
        lambda d: _sub(d)["futuresAccounts"][1].update(name="fi_ethusd"),
        "venue_value",
        "subaccounts[0].futuresAccounts[1].name 'fi_ethusd' has no quote currency after ':'",
        "futures:fi_ethusd", None, "futures:f-eth:usd",
    ),
    (
        lambda d: _sub(d)["futuresAccounts"][3].update(availableMargin=True),
        "decimal",
        "subaccounts[0].futuresAccounts[3].availableMargin must be a number, got boolean true",
        "futures:f-ltc:usd", "USD", "futures:f-ltc:usd",
    ),
]  # fmt: skip


@pytest.mark.parametrize(("change", "check", "reason", "wallet", "ccy", "was"), ROW_PROBLEMS)
def test_a_bad_value_rejects_only_its_row(
    change: Callable[[dict[str, Any]], None],
    check: str,
    reason: str,
    wallet: str,
    ccy: str | None,
    was: str,
) -> None:
    parsed = parse_doc(_mutate(change))
    assert [(r.source, r.check, r.reason) for r in parsed.rejected] == [
        ("kraken_test", check, reason)
    ]
    record = parsed.rejected[0].record
    assert (record["userUUID"], record["venue_account_id"]) == (SEED_UID, SEED_UID)
    assert (record["wallet"], record["Ccy"]) == (wallet, ccy)
    if wallet != "futures":
        assert record["accountUUID"] == u5(f"kraken_futures:{SEED_UID}:{wallet}")
    json.dumps(record)  # quarantine records are JSON text
    # Every other row of the venue is there; the account still counts as received.
    assert parsed.balances.num_rows == 20
    gone = u5(f"kraken_futures:{SEED_UID}:{was}")
    original = {"holding": "XRP", "flex": "ETH"}.get(was, "USD")
    assert report_rows(parsed.balances) == [
        r for r in expected_rows() if (r["accountUUID"], r["Ccy"]) != (gone, original)
    ]
    assert parsed.accounts == [AccountStatus(SEED_UID, "received", None, SEED_NAME)]


def test_bad_amount_in_a_holding_record_keeps_the_venue_values() -> None:
    parsed = parse_doc(_mutate(lambda d: _sub(d)["holdingAccounts"][2].update(amount="abc")))
    assert parsed.rejected[0].record == {
        "userUUID": SEED_UID,
        "accountUUID": u5(f"kraken_futures:{SEED_UID}:holding"),
        "Ccy": "XRP",
        "venue_account_id": SEED_UID,
        "wallet": "holding",
        "currency": "xrp",
        "amount": "abc",
    }


#: (change to the first sub-account, its account_id, the reason it failed).
ACCOUNT_PROBLEMS: list[tuple[Callable[[dict[str, Any]], None], str, str]] = [
    (
        lambda d: d["subaccounts"].__setitem__(0, "oops"),
        "subaccounts[0]", "subaccounts[0] must be an object, got string",
    ),
    (
        lambda d: _sub(d).pop("accountUid"),
        "subaccounts[0]", "subaccounts[0].accountUid is missing",
    ),
    (
        lambda d: _sub(d).update(accountUid="desk-7"),
        "desk-7", "subaccounts[0].accountUid is not a UUID",
    ),
    (
        lambda d: _sub(d).update(holdingAccounts={}),
        SEED_UID, "subaccounts[0].holdingAccounts must be an array, got object",
    ),
    (lambda d: _sub(d).pop("flexAccount"), SEED_UID, "subaccounts[0].flexAccount is missing"),
    (
        lambda d: _sub(d)["flexAccount"].update(currencies={}),
        SEED_UID, "subaccounts[0].flexAccount.currencies must be an array, got object",
    ),
    (
        lambda d: _sub(d).pop("futuresAccounts"),
        SEED_UID, "subaccounts[0].futuresAccounts is missing",
    ),
    (
        lambda d: _sub(d).update(email=5),
        SEED_UID, "subaccounts[0].email must be a string, got number 5",
    ),
]  # fmt: skip


@pytest.mark.parametrize(("change", "account_id", "reason"), ACCOUNT_PROBLEMS)
def test_a_structurally_broken_subaccount_fails_only_that_account(
    change: Callable[[dict[str, Any]], None], account_id: str, reason: str
) -> None:
    doc = with_second_subaccount(seed_doc())
    change(doc)
    parsed = parse_doc(doc)
    name = None if account_id == "subaccounts[0]" and reason.endswith("string") else SEED_NAME
    assert parsed.accounts == [
        AccountStatus(account_id, "failed", reason, name),
        AccountStatus(OTHER_UID, "received", None, SEED_NAME),
    ]
    assert parsed.rejected == []  # a failed account's rows are neither reported nor quarantined
    assert set(parsed.balances.column("venue_account_id").to_pylist()) == {OTHER_UID}
    assert parsed.balances.num_rows == 21


SOURCE_PROBLEMS: list[tuple[Callable[[dict[str, Any]], None], str]] = [
    (lambda d: d.update(masterAccountUid="ba598ca1"), "masterAccountUid is not a UUID"),
    (lambda d: d.pop("masterAccountUid"), "masterAccountUid is missing"),
    (lambda d: d.pop("subaccounts"), "subaccounts is missing"),
    (lambda d: d.update(subaccounts={}), "subaccounts must be an array, got object"),
]


@pytest.mark.parametrize(("change", "message"), SOURCE_PROBLEMS)
def test_a_broken_top_level_fails_the_source(
    change: Callable[[dict[str, Any]], None], message: str
) -> None:
    with pytest.raises(MalformedResponse) as info:
        parse_doc(_mutate(change))
    assert str(info.value) == f"kraken_test: /subaccounts: {message}"
    assert info.value.source == "kraken_test"


def test_an_unreadable_body_fails_the_source() -> None:
    with pytest.raises(MalformedResponse, match="HTTP 200 body is not valid JSON"):
        KrakenFuturesConnector.parse(make_snapshot(make_response(b"<html>")), make_source())


def test_a_subaccount_listed_twice_is_one_account_and_both_copies_are_quarantined() -> None:
    doc = with_second_subaccount(seed_doc())
    twin = copy.deepcopy(doc["subaccounts"][0])
    twin["accountUid"] = SEED_UID.upper()  # the same account, however the venue spells it
    doc["subaccounts"].append(twin)
    parsed = parse_doc(doc)
    assert parsed.accounts == [
        AccountStatus(SEED_UID, "received", None, SEED_NAME),
        AccountStatus(OTHER_UID, "received", None, SEED_NAME),
    ]
    assert parsed.rejected == []
    assert parsed.balances.num_rows == 3 * 21  # never summed, never dropped by the connector

    # The balances stage quarantines every row of a repeated key, with one reason.
    valid, rejected = split_valid(parsed.balances, BalancesModel)
    assert set(valid.column("venue_account_id").to_pylist()) == {OTHER_UID}
    assert valid.num_rows == 21
    assert len(rejected) == 2 * 21
    assert {(r.source, r.check, r.reason) for r in rejected} == {
        ("kraken_test", "unique_account_ccy",
         "duplicate (accountUUID, Ccy): listed 2 times by the venue"),
    }  # fmt: skip
    xrp = [r.record for r in rejected if r.record["wallet"] == "holding"
           and r.record["Ccy"] == "XRP"]  # fmt: skip
    assert [(r["venue_account_id"], r["Total"]) for r in xrp] == [
        (SEED_UID, "13662.85078"), (SEED_UID, "13662.85078"),
    ]  # fmt: skip


def test_a_broken_copy_of_a_repeated_subaccount_fails_that_account() -> None:
    doc = with_second_subaccount(seed_doc())
    twin = copy.deepcopy(doc["subaccounts"][0])
    twin["holdingAccounts"] = None
    doc["subaccounts"].append(twin)
    parsed = parse_doc(doc)
    assert parsed.accounts == [
        AccountStatus(SEED_UID, "failed",
                      "subaccounts[2].holdingAccounts must be an array, got null", SEED_NAME),
        AccountStatus(OTHER_UID, "received", None, SEED_NAME),
    ]  # fmt: skip
    assert set(parsed.balances.column("venue_account_id").to_pylist()) == {OTHER_UID}


def test_account_status_carries_the_venue_display_name() -> None:
    doc = with_second_subaccount(seed_doc())
    third = copy.deepcopy(doc["subaccounts"][0])
    third.update(accountUid="21111111-2222-4333-8444-555555555555", fullName="  ")
    doc["subaccounts"].append(third)
    _sub(doc)["name"] = "Trading desk 1"
    names = [(a.account_id, a.name) for a in parse_doc(doc).accounts]
    assert names == [
        (SEED_UID, "Trading desk 1"),  # name wins over fullName
        (OTHER_UID, SEED_NAME),  # fullName when there is no name
        ("21111111-2222-4333-8444-555555555555", None),  # the venue gives none
    ]


# --- venue errors ---------------------------------------------------------------------------

DOCUMENTED_ERRORS: dict[str, type[VenueError]] = {
    "accountInactive": VenueError,
    "apiLimitExceeded": VenueRateLimited,
    "authenticationError": VenueAuthError,
    "insufficientFunds": VenueError,
    "invalidAccount": VenueError,
    "invalidAmount": VenueError,
    "invalidArgument": VenueError,
    "invalidUnit": VenueError,
    "Json Parse Error": VenueError,
    "marketUnavailable": VenueError,
    "nonceBelowThreshold": VenueAuthError,
    "nonceDuplicate": VenueAuthError,
    "notFound": VenueError,
    "requiredArgumentMissing": VenueError,
    "Server Error": VenueUnavailable,
    "Unavailable": VenueUnavailable,
    "unknownError": VenueError,
}


@pytest.mark.parametrize("status", [200, 400])
@pytest.mark.parametrize(("code", "kind"), sorted(DOCUMENTED_ERRORS.items()))
def test_documented_error_codes_are_typed(code: str, kind: type[VenueError], status: int) -> None:
    body = {"result": "error", "serverTime": "2022-03-31T20:38:53.677Z", "error": code}
    response = make_response(body, status)
    with pytest.raises(VenueError) as info:
        check_response(response, "kraken_test")
    assert type(info.value) is kind
    assert info.value.code == code
    assert info.value.status == status
    assert str(info.value) == (
        f"kraken_test: GET /derivatives/api/v3/subaccounts: venue error {code} (HTTP {status})"
    )
    # A backfill of that day fails with the same reason.
    with pytest.raises(kind) as replay:
        KrakenFuturesConnector.parse(make_snapshot(response), make_source())
    assert replay.value.code == code


@pytest.mark.parametrize(
    ("status", "body", "kind", "message"),
    [
        (200, b"<html>oops</html>", MalformedResponse, "HTTP 200 body is not valid JSON"),
        (502, b"<html>bad gateway</html>", VenueUnavailable, "answered HTTP 502 with a non-JSON"),
        (404, b'{"message": "no route"}', VenueUnavailable, "HTTP 404 without a venue error"),
        (200, b'{"result": "pending"}', MalformedResponse, "result is 'pending', not 'success'"),
        (200, b"[1, 2]", MalformedResponse, "result is missing, not 'success'"),
        (200, b'{"result": "error"}', VenueError, "venue error (no code) (HTTP 200)"),
    ],
)
def test_non_venue_shaped_answers(
    status: int, body: bytes, kind: type[VenueError], message: str
) -> None:
    with pytest.raises(VenueError) as info:
        check_response(make_response(body, status), "kraken_test")
    assert type(info.value) is kind
    assert message in str(info.value)
    assert "\n" not in str(info.value)


def test_parse_takes_the_last_successful_response() -> None:
    failed = make_response({"result": "error", "error": "Unavailable"}, 503)
    older = seed_doc()
    older["subaccounts"][0]["holdingAccounts"][2]["amount"] = 1
    snapshot = make_snapshot(failed, make_response(older), failed, make_response(seed_bytes()))
    rows = report_rows(KrakenFuturesConnector.parse(snapshot, make_source()).balances)
    assert rows == expected_rows()
    # A later failure after a success does not hide the success.
    snapshot = make_snapshot(make_response(seed_bytes()), failed)
    assert report_rows(KrakenFuturesConnector.parse(snapshot, make_source()).balances) == (
        expected_rows()
    )


def test_parse_of_an_empty_snapshot_reports_the_fetch_error() -> None:
    snapshot = make_snapshot()
    snapshot.error = "kraken_test: GET /subaccounts failed after 4 attempts: ConnectionError"
    with pytest.raises(VenueUnavailable, match="ConnectionError"):
        KrakenFuturesConnector.parse(snapshot, make_source())
    with pytest.raises(MalformedResponse, match="snapshot holds no response"):
        KrakenFuturesConnector.parse(make_snapshot(), make_source())


# --- over real HTTP against the simulator -------------------------------------------------


class RecordingNonces(NonceSource):
    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        super().__init__(clock)
        self.issued: list[str] = []

    def next(self) -> str:
        nonce = super().next()
        self.issued.append(nonce)
        return nonce


def fetch_from(
    sim: Any,
    *,
    secret: str = DEFAULT_KRAKEN_API_SECRET,
    key: str = DEFAULT_KRAKEN_API_KEY,
    sleeps: list[float] | None = None,
    nonces: NonceSource | None = None,
) -> tuple[SourceConfig, RawSnapshot]:
    source = make_source(base_url=sim.kraken_base_url, api_key=key, api_secret=secret)
    snapshot = make_snapshot()
    record = sleeps.append if sleeps is not None else (lambda s: None)
    http = HttpClient(source.name, recorder=SnapshotRecorder(snapshot), sleep=record)
    try:
        KrakenFuturesConnector(source, http, nonces=nonces).fetch()
    finally:
        http.session.close()
    return source, snapshot


def test_fetch_and_parse_over_http(simulator: Any) -> None:
    source, snapshot = fetch_from(simulator)
    assert [r.status for r in snapshot.responses] == [200]
    assert snapshot.responses[0].url == f"{simulator.kraken_base_url}/subaccounts"
    doc = json.loads(snapshot.responses[0].body)
    parsed = KrakenFuturesConnector.parse(snapshot, source)
    assert parsed.rejected == []
    subs = doc["subaccounts"]
    assert len(subs) == 3
    expected_count = sum(
        len(s["holdingAccounts"]) + len(s["futuresAccounts"]) + len(s["flexAccount"]["currencies"])
        for s in subs
    )
    assert parsed.balances.num_rows == expected_count == 63
    assert [a.account_id for a in parsed.accounts] == [s["accountUid"] for s in subs]
    assert set(parsed.balances.column("Account Group UUID").to_pylist()) == {
        doc["masterAccountUid"]
    }
    # The exponent-form dust amount of the first sub-account arrives exactly.
    xbt_text = snapshot.responses[0].body.split(b'"currency": "xbt", "amount": ')[1]
    xbt = Decimal(xbt_text.split(b"}")[0].decode())
    rows = parsed.balances.to_pylist()
    first_btc = [
        r["Total"]
        for r in rows
        if r["userUUID"] == subs[0]["accountUid"] and r["wallet"] == "holding" and r["Ccy"] == "BTC"
    ]
    assert first_btc == [xbt] and xbt < Decimal("0.000001")
    assert simulator.request_count("kraken_futures") == 1


def test_wrong_secret_is_an_auth_error_without_the_secret(simulator: Any) -> None:
    wrong = base64.b64encode(b"this is not the simulator's secret, 64 bytes long........").decode()
    with pytest.raises(VenueAuthError) as info:
        fetch_from(simulator, secret=wrong)
    assert info.value.code == "authenticationError"
    assert info.value.status == 401
    assert wrong not in str(info.value) and wrong not in repr(info.value)
    assert DEFAULT_KRAKEN_API_KEY not in str(info.value)


def test_wrong_key_is_an_auth_error(simulator: Any) -> None:
    with pytest.raises(VenueAuthError) as info:
        fetch_from(simulator, key="someone-else")
    assert info.value.code == "authenticationError"


def test_stale_nonce_is_an_auth_error(simulator: Any) -> None:
    fetch_from(simulator, nonces=NonceSource(clock=lambda: 2_000_000_000.0))
    with pytest.raises(VenueAuthError) as info:
        fetch_from(simulator, nonces=NonceSource(clock=lambda: 1_900_000_000.0))
    assert (info.value.code, info.value.status) == ("nonceBelowThreshold", 400)


def test_two_503_then_success(simulator: Any) -> None:
    simulator.set_fault("kraken_futures", status=503, times=2)
    nonces = RecordingNonces()
    source, snapshot = fetch_from(simulator, nonces=nonces)
    assert [r.status for r in snapshot.responses] == [503, 503, 200]
    assert simulator.request_count("kraken_futures") == 3
    assert simulator.request_count() == 3
    assert len(nonces.issued) == 3 and len(set(nonces.issued)) == 3  # fresh per attempt
    assert KrakenFuturesConnector.parse(snapshot, source).balances.num_rows == 63


def test_429_honours_retry_after(simulator: Any) -> None:
    simulator.set_fault("kraken_futures", status=429, times=1, retry_after=7)
    sleeps: list[float] = []
    _, snapshot = fetch_from(simulator, sleeps=sleeps)
    assert sleeps == [7.0]
    assert [r.status for r in snapshot.responses] == [429, 200]
    assert json.loads(snapshot.responses[0].body)["error"] == "apiLimitExceeded"
    assert snapshot.responses[0].headers.get("Retry-After") == "7"


def test_error_body_with_http_200_is_typed(simulator: Any) -> None:
    body = b'{"result":"error","serverTime":"2022-03-31T20:38:53.677Z","error":"apiLimitExceeded"}'
    simulator.set_fault("kraken_futures", status=200, times=1, body=body)
    with pytest.raises(VenueRateLimited) as info:
        fetch_from(simulator)
    assert (info.value.code, info.value.status) == ("apiLimitExceeded", 200)


def test_seed003_served_over_http(simulator: Any) -> None:
    simulator.serve_payload("kraken_futures", seed_bytes())
    source, snapshot = fetch_from(simulator)
    assert snapshot.responses[0].body == seed_bytes()
    parsed = KrakenFuturesConnector.parse(snapshot, source)
    assert report_rows(parsed.balances) == expected_rows()


def test_secrets_never_reach_the_raw_snapshot(simulator: Any) -> None:
    simulator.set_fault("kraken_futures", status=503, times=1)
    nonces = RecordingNonces()
    _, snapshot = fetch_from(simulator, nonces=nonces)
    stored = gzip.decompress(snapshot.to_bytes()).decode("utf-8")
    assert len(snapshot.responses) == 2
    assert DEFAULT_KRAKEN_API_SECRET not in stored
    assert DEFAULT_KRAKEN_API_KEY not in stored
    signatures = [
        authent(DEFAULT_KRAKEN_API_SECRET, "/api/v3/subaccounts", n) for n in nonces.issued
    ]
    assert len(signatures) == 2
    for signature in signatures:
        assert signature not in stored
    for response in snapshot.responses:
        assert {k.lower() for k in response.headers} <= {"content-type", "date", "retry-after"}
    # ...and a replay of the envelope parses the same.
    replay = RawSnapshot.from_bytes(snapshot.to_bytes())
    assert [r.body for r in replay.responses] == [r.body for r in snapshot.responses]


def test_parse_is_pure_and_repeatable() -> None:
    snapshot = make_snapshot(make_response(seed_bytes()))
    first = KrakenFuturesConnector.parse(snapshot, make_source())
    second = KrakenFuturesConnector.parse(
        RawSnapshot.from_bytes(snapshot.to_bytes()), make_source()
    )
    assert first.balances.equals(second.balances)
    assert snapshot.responses[0].body == seed_bytes()  # parse did not touch the stored bytes
