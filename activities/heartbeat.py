"""Heartbeats for every step's activity: a killed worker is noticed within the heartbeat timeout
and the attempt is retried elsewhere, instead of when the step's budget has run out."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from temporalio import activity


class Beat:
    """What the next heartbeat says; an activity that checkpoints puts its progress here."""

    def __init__(self, what: str) -> None:
        self.details: tuple[Any, ...] = (what,)

    def update(self, *details: Any) -> None:
        self.details = details
        if activity.in_activity():
            activity.heartbeat(*details)


@asynccontextmanager
async def heartbeating(what: str) -> AsyncIterator[Beat]:
    """Heartbeat several times per heartbeat timeout (the SDK throttles what it sends) while the
    body runs, so that a slow call is never mistaken for a dead worker."""
    beat = Beat(what)
    timeout = activity.info().heartbeat_timeout if activity.in_activity() else None
    if not timeout:
        yield beat
        return
    interval = max(timeout.total_seconds() / 3, 0.05)

    async def pulse() -> None:
        while True:
            activity.heartbeat(*beat.details)
            await asyncio.sleep(interval)

    task = asyncio.ensure_future(pulse())
    try:
        yield beat
    finally:
        task.cancel()


def checkpoint() -> Any:
    """The last details the previous attempt heartbeated (None on a first attempt)."""
    if not activity.in_activity():
        return None
    details = activity.info().heartbeat_details
    return details[-1] if details else None
