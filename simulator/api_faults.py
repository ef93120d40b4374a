"""Faults of the target systems' APIs themselves: failing or slow calls."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Literal

Api = Literal["lb", "config", "flags", "services", "metrics", "logs", "search"]
APIS: tuple[Api, ...] = ("lb", "config", "flags", "services", "metrics", "logs", "search")
Mode = Literal["fail", "slow", "html"]
"""fail: an error status; slow: served after a delay; html: a 200 with an HTML page (a proxy's
error page), which no client can read as the API's answer."""

UNTIL_CLEARED = -1


@dataclass
class ApiFault:
    """The next ``remaining`` calls to ``api`` (of ``deployment`` only, unless ``None``)
    fail with ``status``, are served after ``delay_seconds``, or answer an HTML page.
    ``-1``: until cleared."""

    id: int
    api: Api
    mode: Mode
    remaining: int
    status: int = 503
    delay_seconds: float = 0.0
    deployment: str | None = None

    def matches(self, api: str, deployment: str | None) -> bool:
        return self.api == api and self.deployment in (None, deployment)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class ApiFaultBook:
    """Armed API faults; the oldest matching one is used first."""

    def __init__(self) -> None:
        self._faults: list[ApiFault] = []
        self._next_id = 1

    def arm(
        self,
        api: Api,
        mode: Mode,
        count: int,
        *,
        status: int = 503,
        delay_seconds: float = 0.0,
        deployment: str | None = None,
    ) -> ApiFault:
        if count == 0 or count < UNTIL_CLEARED:
            raise ValueError(f"count must be positive or {UNTIL_CLEARED}, got {count}")
        fault = ApiFault(self._next_id, api, mode, count, status, delay_seconds, deployment)
        self._next_id += 1
        self._faults.append(fault)
        return fault

    def take(self, api: str, deployment: str | None) -> ApiFault | None:
        """The fault that applies to this call, if any, using up one of its calls."""
        for fault in self._faults:
            if fault.matches(api, deployment):
                if fault.remaining != UNTIL_CLEARED:
                    fault.remaining -= 1
                    if fault.remaining == 0:
                        self._faults.remove(fault)
                return fault
        return None

    def clear(self) -> None:
        self._faults.clear()

    def active(self) -> list[ApiFault]:
        return list(self._faults)
