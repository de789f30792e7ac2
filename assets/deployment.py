"""The production code location: the project's definitions with every step run by a Celery
worker, and backfills of many dates run as one run.

`assets.definitions` (what `dagster dev` and `etl-balances run` load) runs a run's steps in
threads of its one run-worker process. Here the very same assets, checks, jobs, schedules and
sensor (`build_definitions`) run on Dagster's Celery executor (dagster-celery): the run worker,
started by the code server, only orchestrates; each step is a message on RabbitMQ that any
Celery worker, on any machine, executes. That works because nothing a step hands to the next
stays in a process: the raw snapshots and staged results are in the object store (S3), the
report and its check verdicts in the warehouse (PostgreSQL), Dagster's own state in the
instance's PostgreSQL (deploy/dagster.yaml).

Limits hold across workers because Dagster enforces them in PostgreSQL, not in a process:
- a venue's calls (`<source>__raw_snapshot`, pool `venue_<kind>`): the run worker claims a pool
  slot from the instance before it sends the step to Celery (dagster-celery's execution loop
  uses `InstanceConcurrencyContext`), so with `pools.default_limit: 1` no two workers ever call
  the same venue at once, whichever runs or dates their steps belong to;
- one run per report date (`tag_concurrency_limits` on `dagster/partition`, the daemon's queue).

Backfills: every per-date asset and check carries Dagster's `BackfillPolicy.single_run()`, so a
backfill of N dates is ONE run whose steps each do the N dates in turn, instead of N runs each
paying a run worker's start-up and a Celery round trip per step. Measured on the deployment
(docs/deploy.md, benchmarks/bench_backfill.py): 30 stored dates replayed in 70 s as one run,
228 s as 30 runs over two workers. `ETL_BACKFILL_POLICY=per-date` (one run per date, spread
over the workers) or `=<N>` (runs of at most N dates) chooses otherwise. A run of one date (the
schedule's, a UI launch) is what it always was.

The project's asset functions act on one date (`context.partition_key`). `_over_dates` runs the
very same function once per date of the run, with the step's context seen as that date's,
records each date's metadata on that date's materialisation, and folds the dates' check verdicts
into one per check (failed if any date failed, naming the dates). Every verdict is also in the
warehouse per date (`settlement_check_results`), as always.

Loaded lazily (`@dg.definitions`): the config is read when Dagster loads the location (code
server, run worker, and each Celery worker for the steps it runs), from `ETL_CONFIG`. Serve it
with

    dagster code-server start -m assets.deployment --location-name settlement_balances ...

(deploy/workspace.yaml, docs/deploy.md). Workers need the same code, `ETL_CONFIG`, the venue
secrets, the object store and warehouse settings, `DAGSTER_HOME` and the instance's
`DAGSTER_PG_*`: the step runs there.
"""

from __future__ import annotations

import inspect
import os
from collections.abc import Iterator, Sequence
from functools import lru_cache
from typing import Any

import dagster as dg
from dagster_celery import celery_executor

from assets.definitions import DEFAULT_CONFIG, build_definitions

#: Environment variable holding the broker URL (credentials included), read by the run worker
#: when a run starts, never stored in the run's config (it is an `env:` reference here).
BROKER_ENV = "DAGSTER_CELERY_BROKER_URL"
#: Environment variable naming the queue the steps are sent to (default `dagster`, the queue a
#: worker started without `-Q` listens on). Workers must listen on it (`-Q <queue>`).
QUEUE_ENV = "DAGSTER_CELERY_QUEUE"
#: `single-run` (default), `per-date`, or a number N: runs of at most N dates.
BACKFILL_POLICY_ENV = "ETL_BACKFILL_POLICY"


def celery_executor_config() -> dict[str, Any]:
    """The executor's Celery settings on the producer side (the run worker). The workers' own
    are in deploy/celery/dagster_celery_config.py; broker, backend and queue must match."""
    return {
        "broker": {"env": BROKER_ENV},
        "backend": "rpc://",
        "config_source": {
            "task_default_queue": os.environ.get(QUEUE_ENV) or "dagster",
            "broker_connection_retry_on_startup": True,
            "broker_heartbeat": 30,
            "result_expires": 3600,
        },
    }


def backfill_policy(setting: str | None) -> dg.BackfillPolicy | None:
    """`ETL_BACKFILL_POLICY` -> Dagster's policy (None: Dagster's default, a run per date)."""
    value = (setting or "single-run").strip().lower()
    if value == "single-run":
        return dg.BackfillPolicy.single_run()
    if value == "per-date":
        return None
    if value.isdigit() and int(value) > 0:
        return dg.BackfillPolicy.multi_run(max_partitions_per_run=int(value))
    raise ValueError(
        f"{BACKFILL_POLICY_ENV}={setting!r}: expected single-run, per-date or a number of dates"
    )


# -- running a one-date asset function over the dates of a run ----------------------------


class _OneDate:
    """The step's context seen as the run of one report date: `partition_key` (what the
    project's asset functions read) is that date; everything else is the step's context."""

    def __init__(self, context: Any, key: str) -> None:
        self._context = context
        self._key = key

    @property
    def partition_key(self) -> str:
        return self._key

    @property
    def partition_keys(self) -> list[str]:
        return [self._key]

    def __getattr__(self, name: str) -> Any:
        return getattr(self._context, name)


def _results(value: Any) -> list[Any]:
    if value is None:
        return []
    return list(value) if inspect.isgenerator(value) else [value]


def _each_date(fn: Any, context: Any, params: Sequence[str]) -> list[tuple[str, list[Any]]]:
    """`fn`'s results for every date of the run, in date order."""
    resources = {name: getattr(context.resources, name) for name in params}
    return [
        (key, _results(fn(_OneDate(context, key), **resources))) for key in context.partition_keys
    ]


def _fold_checks(verdicts: Sequence[tuple[str, dg.AssetCheckResult]]) -> dg.AssetCheckResult:
    """One verdict for a check over several dates: failed if any date failed (each named)."""
    failed = [(day, r) for day, r in verdicts if not r.passed]
    first = verdicts[0][1]
    severities = {r.severity for _, r in failed} or {first.severity}
    error = dg.AssetCheckSeverity.ERROR
    return dg.AssetCheckResult(
        asset_key=first.asset_key,
        check_name=first.check_name,
        passed=not failed,
        severity=error if error in severities else next(iter(severities)),
        description="; ".join(f"{day}: {r.description}" for day, r in failed)
        or f"passed on all {len(verdicts)} report dates",
        metadata={
            "report_dates": f"{verdicts[0][0]} .. {verdicts[-1][0]} ({len(verdicts)})",
            "failed_dates": ", ".join(day for day, _ in failed) or "none",
        },
    )


def _over_dates_results(
    context: dg.AssetExecutionContext,
    per_date: Sequence[tuple[str, list[Any]]],
    default_key: dg.AssetKey | None,
) -> Iterator[Any]:
    """A multi-date step's results: each date's metadata on that date's materialisation, one
    materialisation result per asset, one folded verdict per check."""
    if len(per_date) == 1:
        yield from per_date[0][1]
        return
    keys: list[dg.AssetKey] = []
    verdicts: dict[tuple[dg.AssetKey, str], list[tuple[str, dg.AssetCheckResult]]] = {}
    for day, results in per_date:
        for result in results:
            checks = [result] if isinstance(result, dg.AssetCheckResult) else []
            if isinstance(result, dg.MaterializeResult):
                key = result.asset_key or default_key
                assert key is not None, "a multi-asset step names the asset of each result"
                if key not in keys:
                    keys.append(key)
                if result.metadata:
                    context.add_asset_metadata(dict(result.metadata), key, partition_key=day)
                checks = list(result.check_results or [])
            for check in checks:
                target = (check.asset_key or default_key, check.check_name or "")
                verdicts.setdefault(target, []).append((day, check))  # type: ignore[arg-type]
    for key in keys:
        yield dg.MaterializeResult(asset_key=key)
    for found in verdicts.values():
        yield _fold_checks(found)


def _over_dates_asset(
    assets_def: dg.AssetsDefinition, policy: dg.BackfillPolicy | None
) -> dg.AssetsDefinition:
    """`assets_def` (one date per call) as a step that does every date of its run."""
    op = assets_def.op
    fn = op.compute_fn.decorated_fn  # type: ignore[union-attr]
    params = [p for p in inspect.signature(fn).parameters if p != "context"]
    specs = [spec.replace_attributes(partitions_def=None) for spec in assets_def.specs]
    default_key = specs[0].key if len(specs) == 1 else None

    @dg.multi_asset(
        specs=specs,
        check_specs=list(assets_def.check_specs),
        name=op.name,
        description=op.description,
        partitions_def=assets_def.partitions_def,
        backfill_policy=policy,
        required_resource_keys=set(params),
        pool=op.pool,
        retry_policy=op.retry_policy,
    )
    def _step(context):  # type: ignore[no-untyped-def]  # Dagster inspects the bare parameter
        per_date = _each_date(fn, context, params)
        yield from _over_dates_results(context, per_date, default_key)

    return _step


def _over_dates_check(check_def: dg.AssetChecksDefinition) -> dg.AssetChecksDefinition:
    """A per-date check (one date per call) as a step that judges every date of its run."""
    fn = check_def.op.compute_fn.decorated_fn  # type: ignore[union-attr]
    params = [p for p in inspect.signature(fn).parameters if p != "context"]
    (spec,) = check_def.check_specs

    @dg.asset_check(
        asset=spec.asset_key,
        name=spec.name,
        blocking=spec.blocking,
        description=spec.description,
        partitions_def=check_def.partitions_def,
        required_resource_keys=set(params),
    )
    def _check(context):  # type: ignore[no-untyped-def]
        verdicts = [
            (day, result) for day, results in _each_date(fn, context, params) for result in results
        ]
        return verdicts[0][1] if len(verdicts) == 1 else _fold_checks(verdicts)

    return _check


# -- the code location ----------------------------------------------------------------------


def deployment_definitions(
    config_path: str | os.PathLike[str], policy: dg.BackfillPolicy | None
) -> dg.Definitions:
    """`build_definitions(config_path)` with the Celery executor for every job (the implicit
    asset job of UI launches and asset backfills included) and `policy` for backfills."""
    import warnings

    base = build_definitions(config_path)
    assets = [
        _over_dates_asset(a, policy)
        if isinstance(a, dg.AssetsDefinition) and a.partitions_def is not None
        else a
        for a in base.assets or []
    ]
    with warnings.catch_warnings():
        # Partitioned checks are a Dagster preview feature (see assets/definitions.py).
        warnings.filterwarnings("ignore", category=dg.PreviewWarning)
        checks = [
            _over_dates_check(c)
            if isinstance(c, dg.AssetChecksDefinition) and c.partitions_def is not None
            else c
            for c in base.asset_checks or []
        ]
    celery = celery_executor.configured(celery_executor_config(), name="celery")
    return dg.Definitions(
        assets=assets,
        asset_checks=checks,
        jobs=base.jobs,
        schedules=base.schedules,
        sensors=base.sensors,
        resources=base.resources,
        loggers=base.loggers,
        executor=celery,
        metadata=base.metadata,
    )


@lru_cache(maxsize=4)
def _cached(config_path: str, mtime_ns: int, policy: str | None) -> dg.Definitions:
    # A Celery worker loads the location for every step it runs; building it once per config
    # version keeps that to a dictionary look-up (Definitions are immutable once built).
    return deployment_definitions(config_path, backfill_policy(policy))


@dg.definitions
def defs() -> dg.Definitions:
    config_path = str(os.environ.get("ETL_CONFIG") or DEFAULT_CONFIG)
    try:
        mtime_ns = os.stat(config_path).st_mtime_ns
    except OSError:
        mtime_ns = -1  # build_definitions names the missing file
    return _cached(config_path, mtime_ns, os.environ.get(BACKFILL_POLICY_ENV))
