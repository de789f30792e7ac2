"""Typed errors. Messages are one line, name the source, and never carry a secret."""

from __future__ import annotations


class EtlError(Exception):
    """Base of every error this project raises on purpose."""


class ConfigError(EtlError):
    """The configuration file is invalid; the message says where and why."""


class VenueError(EtlError):
    """A venue call failed. `code` is the venue's own error code when it sent one."""

    def __init__(
        self, source: str, message: str, *, code: str | None = None, status: int | None = None
    ) -> None:
        self.source = source
        self.code = code
        self.status = status
        super().__init__(f"{source}: {message}")


class VenueAuthError(VenueError):
    """The venue rejected our credentials or signature."""


class VenueRateLimited(VenueError):
    """The venue kept answering 429/rate-limit past our retry budget."""


class VenueUnavailable(VenueError):
    """Connection failure, timeout or persistent 5xx."""


class FinalVenueError(VenueError):
    """A venue error that no retry can change (a spent time budget, a file that is not a
    report, a refused location): neither the HTTP layer nor the orchestrator retries it, so
    it is fetched, and landed, once."""


class SourceTimeout(FinalVenueError):
    """The source's one time budget (all retries of every layer included) ran out.

    Final by design: retrying would only spend time the other sources wait for, so neither the
    HTTP layer nor the orchestrator retries it. `pending` says what was still outstanding,
    e.g. `GET /derivatives/api/v3/subaccounts: read timed out` (a path, never a query).
    """

    def __init__(
        self, source: str, budget_seconds: float, pending: str, *, status: int | None = None
    ) -> None:
        self.budget_seconds = budget_seconds
        self.pending = " ".join(pending.split())  # one line, whatever the caller passed
        budget = seconds_text(budget_seconds)
        message = f"no answer within its time budget of {budget}s ({self.pending})"
        super().__init__(source, message, status=status)


def seconds_text(seconds: float) -> str:
    """`120`, `2.5`: a duration for messages, without float noise."""
    return f"{round(seconds, 1):g}"


class MalformedResponse(VenueError):
    """The venue answered, but not in the documented shape."""


class SnapshotMissing(EtlError):
    """No raw snapshot is stored for a date that can no longer be fetched live."""


def error_for_status(status: int) -> type[VenueError]:
    """The error class of a venue's non-success HTTP status: auth (401/403), rate limit (429),
    unavailable (5xx), else the generic `VenueError`."""
    if status in (401, 403):
        return VenueAuthError
    if status == 429:
        return VenueRateLimited
    if status >= 500:
        return VenueUnavailable
    return VenueError
