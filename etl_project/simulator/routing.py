"""Requests, responses and the router of the venue simulator (no server state here)."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Request:
    """One incoming request as a venue handler sees it."""

    method: str
    path: str
    query: str
    headers: Mapping[str, str]
    body: bytes = b""
    params: Mapping[str, str] = field(default_factory=dict)

    def header(self, name: str) -> str | None:
        """Header value, case-insensitive."""
        lower = name.lower()
        for key, value in self.headers.items():
            if key.lower() == lower:
                return value
        return None


@dataclass(frozen=True)
class Response:
    """What a handler answers; `body` is sent verbatim."""

    status: int
    body: bytes = b""
    content_type: str = "application/json"
    headers: Mapping[str, str] = field(default_factory=dict)


Handler = Callable[[Request], Response]
ErrorBody = Callable[[int], bytes]


def json_response(status: int, doc: Any) -> Response:
    return Response(status, json.dumps(doc).encode("utf-8"))


@dataclass(frozen=True)
class _Route:
    method: str
    pattern: re.Pattern[str]
    venue: str
    handler: Handler


class Router:
    """Method + path templates (`/reports/{date}.csv`) to venue handlers."""

    def __init__(self) -> None:
        self._routes: list[_Route] = []

    def add(self, method: str, template: str, venue: str, handler: Handler) -> None:
        parts = re.split(r"\{([A-Za-z_][A-Za-z0-9_]*)\}", template)
        regex = "".join(
            re.escape(part) if i % 2 == 0 else f"(?P<{part}>[^/]+)" for i, part in enumerate(parts)
        )
        self._routes.append(_Route(method.upper(), re.compile(regex + r"\Z"), venue, handler))

    def match(self, method: str, path: str) -> tuple[_Route, dict[str, str]] | str | None:
        """The route and its path parameters; `"method"` when only the method differs."""
        other_method = False
        for route in self._routes:
            found = route.pattern.match(path)
            if found is None:
                continue
            if route.method != method:
                other_method = True
                continue
            return route, found.groupdict()
        return "method" if other_method else None
