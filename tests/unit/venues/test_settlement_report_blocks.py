"""A CSV report parsed block by block, straight from its landed snapshot: the same balances,
rejects (with the file's line numbers) and accounts as parsing the whole file, for any block
size; a block never ends inside a quoted value."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path

import pyarrow as pa
import pytest

from etl_project import raw, staging
from etl_project.http import HttpClient
from etl_project.sinks.object_store import LocalObjectStore
from etl_project.stages.balances import stage_balances
from etl_project.stages.outcome import StageOutcome, manifest
from etl_project.venues.settlement_report import parse
from etl_project.venues.settlement_report import read as settlement_report_read
from etl_project.venues.settlement_report.connector import SettlementReportConnector
from tests.unit.venues.test_settlement_report import broken_csv, csv_raw_lines, make_source

DAY = date(2026, 1, 2)


def _big_broken_csv() -> bytes:
    """The broken fixture's lines, then its good rows again under new account ids."""
    body = broken_csv()
    _header, *rows = csv_raw_lines()
    more = [
        r.replace(r.split(",")[1], f"{r.split(',')[1][:-4]}{n:04d}", 1)
        for n in range(40)
        for r in rows
    ]
    return body + ("\r\n".join(more) + "\r\n").encode()


def _chunks(data: bytes, size: int = 333) -> list[bytes]:
    return [data[i : i + size] for i in range(0, len(data), size)]


@pytest.mark.parametrize("block_bytes", [1, 700, 5000, 1 << 30])
def test_blocks_parse_like_the_whole_file(
    block_bytes: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    body = _big_broken_csv()
    whole = parse.parse_report(body, "csv", "s")
    monkeypatch.setattr(parse, "BLOCK_BYTES", block_bytes)

    parts = list(parse.parse_csv_blocks(_chunks(body), "s"))

    assert (len(parts) > 3) == (block_bytes < 1 << 30)
    assert pa.concat_tables(p.balances for p in parts).equals(whole.balances)
    rejected = [r for p in parts for r in p.rejected]
    assert [(r.check, r.reason, r.record) for r in rejected] == [
        (r.check, r.reason, r.record) for r in whole.rejected
    ]
    assert [r.reason.split(":")[0] for r in rejected] == ["line 3", "line 4", "line 6", "line 7"]
    ids = list(dict.fromkeys(a.account_id for p in parts for a in p.accounts))
    assert ids == [a.account_id for a in whole.accounts]


def test_a_block_never_ends_where_a_quoted_line_break_may_continue(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A cut falls only where no quote opened within `MAX_LINE_BYTES` before it: a quoted line
    break is never split, and a stray quote holds the block open only that far."""
    monkeypatch.setattr(parse, "MAX_LINE_BYTES", 12)
    data = b'h\n1,"a\nb"\n2,x\n3,xxxxxxxxxxxxxxxx\n4,"stray\n5,' + b"y" * 20 + b"\n6,z\n"
    blocks = list(parse.csv_blocks([data], size=1))
    assert b"".join(blocks) == data
    assert blocks == [
        b"h\n",
        # not after `1,"a` (its quote closes on the next line), nor 12 bytes after `b"`
        b'1,"a\nb"\n2,x\n3,xxxxxxxxxxxxxxxx\n',
        b'4,"stray\n5,' + b"y" * 20 + b"\n",  # 12 bytes after the stray quote at the earliest
        b"6,z\n",
    ]


def test_the_balances_stage_streams_a_big_landed_report(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A report file over the on-disk threshold is landed from its file and staged block by
    block: the staged rows and rejects equal the whole-file parse."""
    monkeypatch.setattr(settlement_report_read, "ON_DISK_BYTES", 0)
    monkeypatch.setattr(parse, "BLOCK_BYTES", 2000)
    body = _big_broken_csv()
    report = tmp_path / "reports" / f"{DAY}.csv"
    report.parent.mkdir()
    report.write_bytes(body)
    source = make_source(str(tmp_path / "reports" / "{date}.csv"))
    store = LocalObjectStore(tmp_path / "store")

    snapshot = raw.RawSnapshot(source.name, source.kind, DAY, datetime(2026, 1, 2, 23, tzinfo=UTC))
    http = HttpClient(source.name, recorder=raw.SnapshotRecorder(snapshot))
    connector = SettlementReportConnector(source, http, report_date=DAY)
    connector.fetch()
    assert snapshot.responses[0].body_path == str(report)  # never read into memory
    key = raw.land(store, snapshot)
    details = {"snapshot_key": key, "snapshot_at": snapshot.snapshot_at.isoformat(),
               "responses": 1, "mode": "live"}  # fmt: skip
    staging.put_json(
        store,
        staging.snapshot_manifest_key(source.name, DAY),
        manifest(StageOutcome(source.name, "ok", None, details)),
    )

    outcome = stage_balances(source, store, DAY)

    whole = parse.parse_report(body, "csv", source.name)
    key = staging.balances_keys(source.name, DAY)[1]
    staged = staging.get_table(store, key, whole.balances.schema)
    assert outcome.ok and staged.equals(whole.balances)
    assert outcome.details["rows"] == whole.balances.num_rows == 164
    assert [r["reason"] for r in outcome.details["rejected"]] == [r.reason for r in whole.rejected]
    assert outcome.details["accounts_received"] == len(whole.accounts)
