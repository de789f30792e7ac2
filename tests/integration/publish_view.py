"""What a reader of one report date sees in every place the product publishes it.

The publish protocol promises: the previous complete version everywhere, the new complete
version everywhere, or the date marked publishing/failed — never `complete` with the files and
the warehouse disagreeing. `ReaderView` collects every place once so a test can say which.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import date
from typing import Any

import sqlalchemy as sa

from etl_project.report.serialise import read_csv_rows, read_json_rows, read_parquet
from etl_project.sinks.files import quarantine_key, report_keys
from etl_project.sinks.object_store import open_store
from etl_project.stages.publish import status_key

PUBLISHED = ("complete", "partial")


@dataclass(frozen=True)
class ReaderView:
    status: dict[str, Any] | None
    csv_rows: int | None
    json_rows: int | None
    parquet_run_ids: frozenset[str]
    quarantine_run_ids: frozenset[str]
    warehouse_run_ids: frozenset[str]
    warehouse_status: dict[str, Any] | None
    versions: list[dict[str, Any]]

    @property
    def file_state(self) -> str | None:
        return None if self.status is None else self.status["completeness"]

    def assert_one_version(self, run_id: str) -> None:
        """Everything says `run_id`, and both the files and the warehouse say published."""
        assert self.status is not None and self.status["run_id"] == run_id
        assert self.file_state in PUBLISHED, self.status
        assert self.parquet_run_ids == {run_id}
        assert self.quarantine_run_ids <= {run_id}
        assert self.warehouse_run_ids == {run_id}
        assert self.warehouse_status is not None
        assert self.warehouse_status["run_id"] == run_id
        assert self.warehouse_status["completeness"] == self.file_state
        assert self.csv_rows == self.json_rows == self.warehouse_status["report_rows"]
        current = [v["run_id"] for v in self.versions if v["state"] == "current"]
        assert current == [run_id]

    def assert_never_complete_and_disagreeing(self) -> None:
        """The invariant that must hold after ANY fault, before any rerun."""
        mixed = len(self.parquet_run_ids | self.warehouse_run_ids) > 1
        if self.file_state in PUBLISHED and self.status is not None:
            run_id = self.status["run_id"]
            assert not mixed and self.parquet_run_ids == {run_id}, self
            assert self.warehouse_run_ids == {run_id}, self
        if self.warehouse_status and self.warehouse_status["completeness"] in PUBLISHED:
            assert self.file_state in (*PUBLISHED, "publishing", "failed"), self
            if self.file_state in PUBLISHED:
                assert self.status is not None
                assert self.status["run_id"] == self.warehouse_status["run_id"], self


def read_view(storage: str, warehouse_url: str, day: date) -> ReaderView:
    store = open_store(storage)
    keys = report_keys(day)

    def get(key: str) -> bytes | None:
        try:
            return store.get(key)
        except FileNotFoundError:
            return None

    status = get(status_key(day))
    csv_bytes, json_bytes, parquet_bytes = (get(keys[f]) for f in ("csv", "json", "parquet"))
    quarantine = get(quarantine_key(day))
    engine = sa.create_engine(warehouse_url, poolclass=sa.NullPool)
    try:
        with engine.connect() as conn:
            tables = set(sa.inspect(conn).get_table_names())
            wh_runs: set[str] = set()
            wh_status = None
            versions: list[dict[str, Any]] = []
            if "settlement_balance_report" in tables:
                wh_runs = {
                    r[0]
                    for r in conn.execute(
                        sa.text(
                            "select distinct run_id from settlement_balance_report "
                            "where report_date = :d"
                        ),
                        {"d": day},
                    )
                }
                row = (
                    conn.execute(
                        sa.text("select * from settlement_report_status where report_date = :d"),
                        {"d": day},
                    )
                    .mappings()
                    .first()
                )
                wh_status = None if row is None else dict(row)
                versions = [
                    dict(r)
                    for r in conn.execute(
                        sa.text(
                            "select * from settlement_report_versions where report_date = :d "
                            "order by published_at"
                        ),
                        {"d": day},
                    ).mappings()
                ]
    finally:
        engine.dispose()
    return ReaderView(
        status=None if status is None else json.loads(status),
        csv_rows=None if csv_bytes is None else len(read_csv_rows(csv_bytes)),
        json_rows=None if json_bytes is None else len(read_json_rows(json_bytes)),
        parquet_run_ids=frozenset(
            ()
            if parquet_bytes is None
            else read_parquet(parquet_bytes).column("run_id").to_pylist()
        ),
        quarantine_run_ids=frozenset(
            () if quarantine is None else (e["run_id"] for e in json.loads(quarantine))
        ),
        warehouse_run_ids=frozenset(wh_runs),
        warehouse_status=wh_status,
        versions=versions,
    )
