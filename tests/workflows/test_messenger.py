"""The messenger's drain: everything spawned is awaited, also what is spawned meanwhile, and a
failure that is not a message failure is raised, never swallowed."""

from __future__ import annotations

import asyncio

import pytest

from workflows.messenger import Messenger


def messenger(log: list[tuple[str, str]]) -> Messenger:
    return Messenger(lambda kind, message: log.append((kind, message)), ui=False)


async def test_drain_awaits_work_spawned_while_it_drains() -> None:
    log: list[tuple[str, str]] = []
    m = messenger(log)
    done: list[str] = []

    async def late() -> None:
        await asyncio.sleep(0.01)
        done.append("late")

    async def first() -> None:
        await asyncio.sleep(0.01)
        m.spawn(late())  # like a comms settle that escalates after the procedure
        done.append("first")

    m.spawn(first())
    await m.drain()
    assert done == ["first", "late"] and m.pending == 0


async def test_a_bug_in_a_background_task_is_raised_by_drain_and_check() -> None:
    m = messenger([])

    async def broken() -> None:
        raise ValueError("a bug, not a message failure")

    m.spawn(broken())
    with pytest.raises(ValueError, match="a bug"):
        await m.drain()
    with pytest.raises(ValueError, match="a bug"):
        m.check()
