"""The HTTP status -> venue error class mapping the connectors share."""

from __future__ import annotations

import pytest

from etl_project.errors import (
    VenueAuthError,
    VenueError,
    VenueRateLimited,
    VenueUnavailable,
    error_for_status,
)


@pytest.mark.parametrize(
    ("status", "kind"),
    [
        (401, VenueAuthError),
        (403, VenueAuthError),
        (429, VenueRateLimited),
        (500, VenueUnavailable),
        (503, VenueUnavailable),
        (400, VenueError),
        (404, VenueError),
    ],
)
def test_error_for_status(status: int, kind: type[VenueError]) -> None:
    assert error_for_status(status) is kind
