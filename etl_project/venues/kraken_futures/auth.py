"""Kraken Futures signing (`Authent`, signed path) and nonces, apart from HTTP and mapping."""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import threading
import time
from collections.abc import Callable
from urllib.parse import urlparse

__all__ = ["NonceSource", "authent", "endpoint_path"]

_DERIVATIVES = re.compile(r"^.*?/derivatives(?=/|$)")


def authent(api_secret_b64: str, endpoint_path: str, nonce: str, post_data: str = "") -> str:
    """Kraken Futures `Authent` header value for one request (seed 003)."""
    digest = hashlib.sha256((post_data + nonce + endpoint_path).encode("utf-8")).digest()
    key = base64.b64decode(api_secret_b64)
    return base64.b64encode(hmac.new(key, digest, hashlib.sha512).digest()).decode("ascii")


def endpoint_path(url: str) -> str:
    """The signed path: the URL path without everything up to and including `/derivatives`.

    `https://futures.kraken.com/derivatives/api/v3/subaccounts` -> `/api/v3/subaccounts`;
    a URL without a `/derivatives` segment (a proxy, the simulator) signs its whole path.
    """
    path = urlparse(url).path or "/"
    return _DERIVATIVES.sub("", path, count=1) or "/"


class NonceSource:
    """Strictly increasing nonces (millisecond time, bumped past the previous one), thread-safe.

    One process-wide instance is shared by every connector so two sources or threads using the
    same key never send a duplicate or lower nonce.
    """

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._last = 0

    def next(self) -> str:
        with self._lock:
            candidate = int(self._clock() * 1000)
            if candidate <= self._last:
                candidate = self._last + 1
            self._last = candidate
            return str(candidate)
