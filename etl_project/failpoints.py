"""Named points where a test injects a fault into a real run (the failpoint pattern).

Publishing is only as safe as its behaviour when it stops at any moment, so the protocol
calls `hit(name)` between its steps. Nothing happens unless a test armed the point:
- in-process: `arm(name, callback)` (e.g. cut a TCP proxy in front of S3 or PostgreSQL);
- in a child process: `ETL_FAILPOINTS="name[@key-part]=action,…"` with action `kill`
  (SIGKILL this process), `raise` (an `InjectedFault`), or `pause:<seconds>` (print
  `failpoint <name> reached` on stderr and sleep, so the test can SIGKILL it right there).
"""

from __future__ import annotations

import os
import signal
import sys
import time
from collections.abc import Callable

_ARMED: dict[str, Callable[[str], None]] = {}
_ENV = "ETL_FAILPOINTS"


class InjectedFault(RuntimeError):
    """Raised by a failpoint armed with `raise`."""


def arm(name: str, action: Callable[[str], None]) -> None:
    """Call `action(key)` whenever the point `name` is hit in this process."""
    _ARMED[name] = action


def disarm(name: str | None = None) -> None:
    """Disarm one point, or every point."""
    if name is None:
        _ARMED.clear()
    else:
        _ARMED.pop(name, None)


def hit(name: str, key: str = "") -> None:
    """Mark that the protocol reached `name` (for object `key`); runs an armed fault."""
    action = _ARMED.get(name)
    if action is not None:
        action(key)
    spec = os.environ.get(_ENV)
    if spec:
        _run_env(spec, name, key)


def _run_env(spec: str, name: str, key: str) -> None:
    for item in spec.split(","):
        point, _, action = item.strip().partition("=")
        point_name, _, key_part = point.partition("@")
        if point_name != name or (key_part and key_part not in key):
            continue
        if action == "kill":
            os.kill(os.getpid(), signal.SIGKILL)
        elif action == "raise":
            raise InjectedFault(f"injected fault at {name}")
        elif action.startswith("pause:"):
            print(f"failpoint {name} reached", file=sys.stderr, flush=True)
            time.sleep(float(action.split(":", 1)[1]))
