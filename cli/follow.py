"""Following a rollback from a terminal: its timeline printed as it grows."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Collection

from temporalio.client import Client
from temporalio.service import RPCError

from cli.errors import Failure
from client import operations
from runbook.status import RollbackStatus, TimelineEntry

SETTLED = frozenset(
    {"following_up", "rolled_back", "incomplete", "continued", "rejected", "failed"}
)


def entry_line(entry: TimelineEntry) -> str:
    by = f"  ({entry.by})" if entry.by else ""
    return f"  {entry.at:%H:%M:%S.%f}"[:-3] + f"  {entry.kind:<14} {entry.message}{by}"


async def follow(
    client: Client,
    deployment: str,
    until: Callable[[RollbackStatus], bool],
    *,
    within: float,
    say: Callable[[str], None] = print,
    seen: int = 0,
) -> tuple[RollbackStatus, int]:
    """Print new timeline entries until `until(status)`; returns the status and entries seen."""
    deadline = time.monotonic() + within
    while True:
        try:
            current = await operations.status(client, deployment)
        except RPCError as error:
            if time.monotonic() > deadline:
                raise Failure(
                    f"cannot read the rollback of {deployment}: {error.message}"
                ) from None
            await asyncio.sleep(0.2)
            continue
        for entry in current.timeline[seen:]:
            if entry.kind != "state":
                say(entry_line(entry))
        seen = len(current.timeline)
        if until(current):
            return current, seen
        if time.monotonic() > deadline:
            raise Failure(
                f"the rollback of {deployment} is still {current.state} after {within:g} s"
            )
        await asyncio.sleep(0.2)


def in_state(states: Collection[str]) -> Callable[[RollbackStatus], bool]:
    return lambda status: status.state in states
