"""A real `dagster dev` subprocess for end-to-end tests, spoken to through its GraphQL endpoint.

The webserver, daemon and code server all run in one process group of their own, so teardown
can stop every one of them (and the run workers they spawned) even when a test fails.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import IO, Any

import requests

from assets.cli import ui_command

# Statuses of `PartitionBackfill.status` after which the daemon no longer touches a backfill.
BACKFILL_TERMINAL = {"COMPLETED", "COMPLETED_SUCCESS", "COMPLETED_FAILED", "FAILED", "CANCELED"}

#: GraphQL documents the webserver tests send (also tests/ui, tests/deploy, bench_backfill).
LAUNCH_BACKFILL = """
mutation LaunchPartitionBackfill($backfillParams: LaunchBackfillParams!) {
  launchPartitionBackfill(backfillParams: $backfillParams) {
    __typename
    ... on LaunchBackfillSuccess { backfillId }
    ... on Error { message }
    ... on PythonError { message stack }
  }
}
"""

LOCATION_QUERY = """
query LocationStatus {
  workspaceOrError {
    __typename
    ... on Workspace {
      locationEntries {
        name
        loadStatus
        locationOrLoadError {
          __typename
          ... on RepositoryLocation { repositories { name } }
          ... on PythonError { message stack }
        }
      }
    }
    ... on PythonError { message }
  }
}
"""


_ANSI = re.compile(r"\x1b\[[0-9;]*m")


class DagsterDevError(AssertionError):
    """`dagster dev` did not do what the test needed; the message ends with its log tail."""


class DagsterDev:
    """A running `dagster dev`: GraphQL calls, and its combined output for failure messages."""

    def __init__(self, process: subprocess.Popen[bytes], port: int, log_path: Path) -> None:
        self.process = process
        self.url = f"http://127.0.0.1:{port}/graphql"
        self.log_path = log_path
        self.session = requests.Session()

    def log_tail(self, lines: int = 60) -> str:
        """The last `lines` of output, without colour codes or library warnings' two lines."""
        text = _ANSI.sub("", self.log_path.read_text(encoding="utf-8", errors="replace"))
        kept: list[str] = []
        skip_next = False
        for line in text.splitlines():
            if skip_next or ("Warning: " in line and "/site-packages/" in line):
                skip_next = not skip_next  # a warning line is followed by its source line
                continue
            kept.append(line)
        return "\n".join(kept[-lines:])

    def fail(self, message: str) -> DagsterDevError:
        return DagsterDevError(f"{message}\n--- dagster dev output (tail) ---\n{self.log_tail()}")

    def graphql(self, query: str, variables: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """POST one query as the UI does; GraphQL-level errors fail the test with the log tail."""
        response = self.session.post(
            self.url, json={"query": query, "variables": dict(variables or {})}, timeout=60
        )
        response.raise_for_status()
        body = response.json()
        if body.get("errors"):
            raise self.fail(f"GraphQL errors: {body['errors']}")
        data: dict[str, Any] = body["data"]
        return data

    def wait_for_location(self, name: str, timeout: float) -> str:
        """Poll until code location `name` has loaded; returns its repository name."""
        deadline = time.monotonic() + timeout
        last = "no answer yet"
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise self.fail(f"dagster dev exited with code {self.process.returncode}")
            try:
                data = self.graphql(LOCATION_QUERY)
            except requests.RequestException as exc:  # webserver not listening yet
                last = f"{type(exc).__name__}"
            else:
                workspace = data["workspaceOrError"]
                entries = {e["name"]: e for e in workspace.get("locationEntries", [])}
                entry = entries.get(name)
                last = repr(entry or workspace)
                if entry and entry["loadStatus"] == "LOADED":
                    loaded = entry["locationOrLoadError"]
                    if loaded["__typename"] != "RepositoryLocation":
                        raise self.fail(f"code location {name} failed to load: {loaded}")
                    repo_name: str = loaded["repositories"][0]["name"]
                    return repo_name
            time.sleep(0.5)
        raise self.fail(f"code location {name} not loaded within {timeout:.0f}s; last: {last}")


def _stop_group(process: subprocess.Popen[bytes], log: IO[bytes], grace: float = 15.0) -> None:
    """Ctrl-C the whole process group (dagster dev's own shutdown), then SIGKILL what is left.

    A parent that ignores SIGINT (e.g. a non-interactive `cmd &`) makes dagster dev ignore it
    too, so the SIGKILL fallback is what guarantees nothing outlives the test.
    """
    pgid = process.pid
    try:
        os.killpg(pgid, signal.SIGINT)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        process.poll()  # reap the leader, or it lingers as a zombie member of the group
        try:
            os.killpg(pgid, 0)  # children may outlive the leader for a moment
        except ProcessLookupError:
            return
        time.sleep(0.2)
    log.write(f"\n--- still running {grace:.0f}s after SIGINT; SIGKILL ---\n".encode())
    log.flush()
    with suppress(OSError):  # `ps` is only a diagnostic
        ps = ["ps", "-o", "pid,stat,etime,args", "-g", str(pgid)]
        subprocess.run(ps, stdout=log, check=False)
    with suppress(ProcessLookupError):
        os.killpg(pgid, signal.SIGKILL)
    with suppress(subprocess.TimeoutExpired):
        process.wait(timeout=10)


@contextmanager
def dagster_dev(
    *,
    workspace: Path,
    cwd: Path,
    port: int,
    env: Mapping[str, str],
    log_path: Path,
    command: Sequence[str] | None = None,
) -> Iterator[DagsterDev]:
    """Start `dagster dev` with the command line of `etl-balances ui` (or `command`, which
    must serve the webserver on `port`); always stop its process group.

    Run it in DAGSTER_HOME (`cwd`), as `etl-balances ui` does: from the repo, `dagster dev`
    warns that the repo's dagster.yaml is not the instance's."""
    log: IO[bytes] = log_path.open("wb")
    process = subprocess.Popen(
        list(command) if command is not None else ui_command(workspace, port),
        cwd=cwd,
        env=dict(env),
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        yield DagsterDev(process, port, log_path)
    finally:
        try:
            _stop_group(process, log)
        finally:
            log.close()
