"""Deliveries made in the last few minutes, so that Alertmanager's repeats of an alert already
delivered are answered without a Temporal call. The workflow deduplicates too: this only saves
work, and a gateway that restarts (or another gateway) simply delivers again."""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable


class Recent:
    def __init__(self, ttl: float, limit: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.ttl = ttl
        self.limit = limit
        self._clock = clock
        self._seen: OrderedDict[str, float] = OrderedDict()

    def __contains__(self, key: object) -> bool:
        if not isinstance(key, str):
            return False
        at = self._seen.get(key)
        if at is None:
            return False
        if self._clock() - at > self.ttl:
            del self._seen[key]
            return False
        return True

    def add(self, key: str) -> None:
        self._seen[key] = self._clock()
        self._seen.move_to_end(key)
        while len(self._seen) > self.limit:
            self._seen.popitem(last=False)

    def __len__(self) -> int:
        return len(self._seen)
