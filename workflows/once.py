"""One reply per request id, inside a workflow."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

R = TypeVar("R")
REMEMBERED = 200
"""Replies kept per run (the oldest forgotten first): a double click or a retried call comes
within seconds, not two hundred requests later."""


def once(replies: dict[str, R], request_id: str | None, act: Callable[[], R]) -> R:
    """A repeated request id (a double click, an update then its signal) counts once: the
    first reply is kept and given again."""
    if request_id is None:
        return act()
    if request_id not in replies:
        replies[request_id] = act()
        while len(replies) > REMEMBERED:
            del replies[next(iter(replies))]  # the oldest (a dict keeps insertion order)
    return replies[request_id]
