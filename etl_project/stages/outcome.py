"""What one stage of one source did; it is also the stage's staged manifest."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class StageOutcome:
    """What one stage of one source did; also its staged manifest."""

    source: str
    status: str  # ok | failed
    reason: str | None = None
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.status == "ok"


def manifest(outcome: StageOutcome) -> dict[str, Any]:
    return {
        "source": outcome.source,
        "status": outcome.status,
        "reason": outcome.reason,
        "details": outcome.details,
    }
