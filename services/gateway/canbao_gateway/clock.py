"""The time the gateway reads: token expiry, login throttling, audit rows.

A FastAPI dependency, so that tests replace it (`app.dependency_overrides[clock] = …`) and move
time instead of sleeping."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Annotated

from fastapi import Depends

Now = Callable[[], datetime]


def utc_now() -> datetime:
    return datetime.now(UTC)


async def clock() -> Now:
    """The dependency: a function giving the current time (timezone-aware, UTC). `async` so
    that FastAPI calls it in the event loop, not through its thread pool."""
    return utc_now


ClockDep = Annotated[Now, Depends(clock)]
