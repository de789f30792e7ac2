"""Counting the Python work a bulk load does: the same count for 8 and 4000 rows means no
Python call per row."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any


def calls_made(action: Callable[[], object]) -> int:
    """How many Python and C functions `action` calls in this thread."""
    count = 0

    def profile(frame: Any, event: str, arg: Any) -> None:
        nonlocal count
        if event in ("call", "c_call"):
            count += 1

    sys.setprofile(profile)
    try:
        action()
    finally:
        sys.setprofile(None)
    return count
