"""One reply per request id, inside a workflow."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

R = TypeVar("R")


def once(replies: dict[str, R], request_id: str | None, act: Callable[[], R]) -> R:
    """A repeated request id (a double click, an update then its signal) counts once: the
    first reply is kept and given again."""
    if request_id is None:
        return act()
    if request_id not in replies:
        replies[request_id] = act()
    return replies[request_id]
