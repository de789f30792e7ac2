"""How the CLI runs the job: in this process like `execute_in_process`, but with the steps
whose inputs are ready in threads, so one slow venue no longer delays every other one.

Dagster 1.13 ships no threaded executor; this one reuses the serial executor's step function
(`dagster_event_sequence_for_step`) and keeps Dagster's plan state on the orchestrating thread.
It leans on Dagster internals, hence the `dagster~=1.13` pin in pyproject.toml.
"""

from __future__ import annotations

import contextvars
import os
import queue
import sys
import threading
from collections.abc import Iterator, Mapping
from contextlib import ExitStack
from typing import Any

import dagster as dg
from dagster._core.definitions.job_base import InMemoryJob
from dagster._core.errors import DagsterExecutionInterruptedError
from dagster._core.events import DagsterEvent, EngineEventData
from dagster._core.execution.api import ExecuteRunWithPlanIterable
from dagster._core.execution.compute_logs import create_compute_log_file_key
from dagster._core.execution.context.system import (
    PlanExecutionContext,
    PlanOrchestrationContext,
    StepExecutionContext,
)
from dagster._core.execution.context_creation_job import PlanExecutionContextManager
from dagster._core.execution.execute_in_process import core_execute_in_process, merge_run_tags
from dagster._core.execution.plan.active import ActiveExecution
from dagster._core.execution.plan.execute_plan import (
    _trigger_hook,
    dagster_event_sequence_for_step,
)
from dagster._core.execution.plan.instance_concurrency_context import InstanceConcurrencyContext
from dagster._core.execution.plan.plan import ExecutionPlan
from dagster._core.execution.plan.step import ExecutionStep
from dagster._core.execution.retries import RetryMode
from dagster._core.executor.base import Executor
from dagster._utils.error import serializable_error_info_from_exc_info

#: Steps running at once in `execute_concurrently`. The sources' steps wait on venues (HTTP,
#: rate limits), not on the CPU, so a thread each is cheap; the bound only caps a config with
#: dozens of sources.
DEFAULT_MAX_CONCURRENT = 8
#: How often the orchestrating thread looks for Ctrl-C while every step is busy.
_POLL_SECONDS = 0.5
#: How long it waits when no step runs but some are not done (blocked on a pool slot).
_IDLE_SECONDS = 0.05


# -- running the job: steps in threads of this process ----------------------------------------


def execute_concurrently(
    job: dg.JobDefinition,
    *,
    partition_key: str,
    instance: dg.DagsterInstance,
    run_config: Mapping[str, Any] | None = None,
    raise_on_error: bool = False,
    max_concurrent: int = DEFAULT_MAX_CONCURRENT,
) -> dg.ExecuteInProcessResult:
    """`job.execute_in_process(...)`, except that steps whose inputs are ready run at once, each
    in a thread of this process (`ThreadedExecutor`).

    Why not `execute_in_process`: it always runs steps one after another, so a Saxo source
    sitting out its rate limit for two minutes delayed every other source by two minutes. Why
    not the multiprocess executor: a process per step costs seconds each, more than a small run
    takes in total. Everything else is `execute_in_process`'s: the same result type, in-memory IO
    manager, ephemeral or given instance, and one process (monkeypatches and in-process
    failpoints of tests still reach every step).
    """
    ephemeral = job.as_ephemeral_job(resource_defs={}, input_values={}).with_executor_def(
        threaded_executor.configured({"max_concurrent": max_concurrent})
    )
    config: Mapping[str, Any] = run_config or {}
    if not config and ephemeral.partitioned_config:
        config = ephemeral.partitioned_config.get_run_config_for_partition_key(partition_key)
    return core_execute_in_process(
        job=InMemoryJob(job_def=ephemeral),
        run_config=config,
        instance=instance,
        output_capturing_enabled=True,
        raise_on_error=raise_on_error,
        run_tags=merge_run_tags(
            job_def=job,
            partition_key=partition_key,
            tags=None,
            asset_selection=[],
            instance=instance,
            run_config=config,
        ),
        asset_selection=frozenset(),
    )


@dg.executor(
    name="threaded_in_process",
    config_schema={
        "max_concurrent": dg.Field(
            int,
            default_value=DEFAULT_MAX_CONCURRENT,
            description="Steps running at once (one thread each).",
        )
    },
)
def threaded_executor(init_context: dg.InitExecutorContext) -> Executor:
    """Ready steps run at once in threads of the run's process; a pool's steps take turns."""
    limit = init_context.executor_config["max_concurrent"]
    assert isinstance(limit, int)  # the config schema's type
    return ThreadedExecutor(max_concurrent=limit)


#: What a step's thread puts on the queue after its last event.
_DONE = "done"


class ThreadedExecutor(Executor):
    """Dagster's in-process executor with the steps that are ready run at once, one thread each.

    The orchestrating thread alone touches Dagster's plan state (`ActiveExecution`, not
    thread-safe): a step's thread only runs the step (`dagster_event_sequence_for_step`, the very
    function the in-process executor calls) and its hooks, and hands the events over a queue.
    The step's events are applied to the plan state when its thread has ended, as if it had run
    alone: a retried step never starts again while its previous attempt's thread still runs.

    Pools: steps of the same pool (the sources' `venue_<kind>`) never run at once within a run,
    as they never did with the serial executor, whatever the instance allows; an instance that
    enforces pool limits (a `DAGSTER_HOME` with `concurrency.pools`) is asked for a slot first,
    as by every Dagster executor, so runs of other dates still take turns per venue.

    Ctrl-C stops the run within `_POLL_SECONDS`; a thread cannot be killed, so steps then
    running end on their own (their threads are daemons: they never hold the CLI's exit).
    """

    def __init__(self, max_concurrent: int, retries: RetryMode = RetryMode.ENABLED) -> None:
        if max_concurrent < 1:
            raise ValueError("max_concurrent must be at least 1")
        self._max_concurrent = max_concurrent
        self._retries = retries

    @property
    def retries(self) -> RetryMode:
        return self._retries

    def execute(
        self, plan_context: PlanOrchestrationContext, execution_plan: ExecutionPlan
    ) -> Iterator[DagsterEvent]:
        steps = execution_plan.step_keys_to_execute
        pid = os.getpid()
        yield DagsterEvent.engine_event(
            plan_context,
            f"Executing steps in threads of process {pid} (at most {self._max_concurrent} at once)",
            event_specific_data=EngineEventData.in_process(pid, steps),
        )
        yield from ExecuteRunWithPlanIterable(
            execution_plan=plan_context.execution_plan,
            iterator=self._run_steps,
            execution_context_manager=PlanExecutionContextManager(
                job=plan_context.job,
                retry_mode=plan_context.retry_mode,
                execution_plan=plan_context.execution_plan,
                run_config=plan_context.run_config,
                dagster_run=plan_context.dagster_run,
                instance=plan_context.instance,
                raise_on_error=plan_context.raise_on_error,
                output_capture=plan_context.output_capture,
                step_dependency_config=self.step_dependency_config,
            ),
        )
        yield DagsterEvent.engine_event(
            plan_context,
            f"Finished steps in threads of process {pid}",
            event_specific_data=EngineEventData.in_process(pid, steps),
        )

    def _run_steps(
        self, job_context: PlanExecutionContext, execution_plan: ExecutionPlan
    ) -> Iterator[DagsterEvent]:
        """The orchestration loop: start what is ready, relay events, apply them when a step's
        thread ends (the threaded counterpart of `inner_plan_execution_iterator`)."""
        inbox: queue.SimpleQueue[tuple[str, Any]] = queue.SimpleQueue()
        running: dict[str, str | None] = {}  # step key -> its pool
        received: dict[str, list[DagsterEvent]] = {}
        ready: list[ExecutionStep] = []  # handed out by the plan, waiting for a thread or pool
        with ExitStack() as stack:
            concurrency = stack.enter_context(
                InstanceConcurrencyContext(job_context.instance, job_context.dagster_run)
            )
            active = stack.enter_context(
                execution_plan.start(
                    retry_mode=job_context.retry_mode,
                    instance_concurrency_context=concurrency,
                    step_dependency_config=job_context.step_dependency_config,
                )
            )
            yield from _capture_process_logs(job_context, execution_plan, stack)
            # Steps still running when the loop ends early (Ctrl-C, a failure of Dagster
            # itself) give their pool slots back: their threads die with the process.
            stack.callback(_free_slots, concurrency, running)
            while not active.is_complete:
                if active.check_for_interrupts():
                    yield from _interrupted(job_context, active, list(running))
                ready.extend(active.get_steps_to_execute())
                yield from active.concurrency_event_iterator(job_context)
                for step in list(ready):
                    if len(running) >= self._max_concurrent:
                        break
                    if step.pool is not None and step.pool in running.values():
                        continue  # the serial executor never ran two of a pool at once
                    ready.remove(step)
                    running[step.key] = step.pool
                    received[step.key] = []
                    _start_step_thread(job_context.for_step(step, active.get_known_state()), inbox)
                yield from active.plan_events_iterator(job_context)
                if active.is_complete:
                    break
                item = _wait(inbox, active, idle=not running)
                while item is not None:
                    yield from _handle(job_context, active, item, running, received)
                    item = _next_nowait(inbox)


def _handle(
    job_context: PlanExecutionContext,
    active: ActiveExecution,
    item: tuple[str, Any],
    running: dict[str, str | None],
    received: dict[str, list[DagsterEvent]],
) -> Iterator[DagsterEvent]:
    """One message of a step's thread: an event (relayed at once), the thread's end (the step's
    events applied to the plan state), or a failure of Dagster's own machinery (raised here,
    failing the run as it would in the in-process executor)."""
    step_key, payload = item
    if isinstance(payload, DagsterEvent):
        received[step_key].append(payload)
        yield payload
        return
    if isinstance(payload, BaseException):
        raise payload
    del running[step_key]
    for event in received.pop(step_key):
        active.handle_event(event)
    active.verify_complete(job_context, step_key)


def _start_step_thread(
    step_context: StepExecutionContext, inbox: queue.SimpleQueue[tuple[str, Any]]
) -> None:
    """Run one step (and its hooks) in a daemon thread that reports over `inbox`."""
    key = step_context.step.key

    def run() -> None:
        try:
            events: list[DagsterEvent] = []
            for event in dagster_event_sequence_for_step(step_context):
                events.append(event)
                inbox.put((key, event))
            for event in _trigger_hook(step_context, events):
                inbox.put((key, event))
        except BaseException as exc:  # Dagster's machinery itself failed: the run fails
            inbox.put((key, exc))
        finally:
            inbox.put((key, _DONE))

    # Dagster keeps some state in context variables (e.g. the partition loading context):
    # the step sees the orchestrating thread's, as it would in the in-process executor.
    context = contextvars.copy_context()
    threading.Thread(
        target=context.run, args=(run,), name=f"dagster-step-{key}", daemon=True
    ).start()


def _wait(
    inbox: queue.SimpleQueue[tuple[str, Any]], active: ActiveExecution, *, idle: bool
) -> tuple[str, Any] | None:
    """The next message of a step's thread, or None after at most `_POLL_SECONDS`: sooner when
    a retry falls due, and soon when no thread runs (e.g. the only steps left wait for a pool
    slot that a run of another date holds), so the loop neither spins nor oversleeps."""
    interval = active.sleep_interval()
    if interval > 0:
        timeout = min(interval, _POLL_SECONDS)
    else:
        timeout = _IDLE_SECONDS if idle else _POLL_SECONDS
    try:
        return inbox.get(timeout=timeout)
    except queue.Empty:
        return None


def _next_nowait(inbox: queue.SimpleQueue[tuple[str, Any]]) -> tuple[str, Any] | None:
    try:
        return inbox.get_nowait()
    except queue.Empty:
        return None


def _capture_process_logs(
    job_context: PlanExecutionContext, execution_plan: ExecutionPlan, stack: ExitStack
) -> Iterator[DagsterEvent]:
    """Capture stdout/stderr of the whole process for the run, as the in-process executor does
    (one capture for every step: threads share the process's file descriptors)."""
    manager = job_context.instance.compute_log_manager
    step_keys = [s.key for s in execution_plan.get_steps_to_execute_in_topo_order()]
    log_key = manager.build_log_key_for_run(job_context.run_id, create_compute_log_file_key())
    try:
        log_context = stack.enter_context(manager.capture_logs(log_key))
        yield DagsterEvent.capture_logs(job_context, step_keys, log_key, log_context)
    except Exception:
        yield DagsterEvent.engine_event(
            job_context,
            "Exception while setting up compute log capture",
            EngineEventData(error=serializable_error_info_from_exc_info(sys.exc_info())),
        )


def _free_slots(concurrency: InstanceConcurrencyContext, running: Mapping[str, object]) -> None:
    for step_key in list(running):
        concurrency.free_step(step_key)


def _interrupted(
    job_context: PlanExecutionContext, active: ActiveExecution, running: list[str]
) -> Iterator[DagsterEvent]:
    """Ctrl-C (or SIGTERM): end the run now, as interrupted."""
    yield DagsterEvent.engine_event(
        job_context,
        "Threaded executor: received termination signal; steps still running are left to end "
        "in their threads",
        EngineEventData.interrupted(running),
    )
    active.mark_interrupted()
    raise DagsterExecutionInterruptedError()
