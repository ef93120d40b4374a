"""Accounting of mutating calls to the target systems, and idempotency-key replay."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

Outcome = Literal["applied", "replayed", "failed", "rejected"]
"""``applied``: took effect (2xx). ``replayed``: answered from an earlier call with the
same idempotency key. ``failed``: an injected API fault answered. ``rejected``: the
simulator refused it (unknown deployment, bad body...)."""


@dataclass(frozen=True)
class CallRecord:
    deployment: str | None
    api: str
    method: str
    path: str
    route: str
    """``METHOD /path`` with the deployment name replaced by ``{d}``."""
    idempotency_key: str | None
    outcome: Outcome
    status: int
    at: datetime

    @property
    def replayed(self) -> bool:
        return self.outcome == "replayed"

    def as_dict(self) -> dict[str, Any]:
        return {
            "deployment": self.deployment,
            "api": self.api,
            "method": self.method,
            "path": self.path,
            "route": self.route,
            "idempotency_key": self.idempotency_key,
            "replayed": self.replayed,
            "outcome": self.outcome,
            "status": self.status,
            "at": self.at.isoformat(),
        }


class CallLedger:
    def __init__(self) -> None:
        self._calls: list[CallRecord] = []
        self._inflight: dict[int, dict[str, Any]] = {}
        self._next = 0

    def started(self, api: str, deployment: str | None, method: str, path: str) -> int:
        """A call being served right now (any method): tests kill a client mid-call by it."""
        self._next += 1
        self._inflight[self._next] = {
            "api": api,
            "deployment": deployment,
            "method": method,
            "path": path,
        }
        return self._next

    def finished(self, ticket: int) -> None:
        self._inflight.pop(ticket, None)

    def inflight(self) -> list[dict[str, Any]]:
        return list(self._inflight.values())

    def record(self, call: CallRecord) -> None:
        self._calls.append(call)

    def reset(self) -> None:
        self._calls.clear()

    def calls(self) -> list[CallRecord]:
        return list(self._calls)

    def counts(self) -> dict[str, int]:
        """Calls that took effect, by route."""
        return dict(Counter(c.route for c in self._calls if c.outcome == "applied"))

    def counts_by_deployment(self) -> dict[str, dict[str, int]]:
        result: dict[str, Counter[str]] = {}
        for c in self._calls:
            if c.outcome == "applied" and c.deployment is not None:
                result.setdefault(c.deployment, Counter())[c.route] += 1
        return {deployment: dict(counts) for deployment, counts in result.items()}

    def as_dict(self) -> dict[str, Any]:
        return {
            "calls": [c.as_dict() for c in self._calls],
            "counts": self.counts(),
            "by_deployment": self.counts_by_deployment(),
        }


@dataclass(frozen=True)
class StoredResponse:
    status: int
    headers: list[tuple[bytes, bytes]]
    body: bytes


class IdempotencyStore:
    """First successful response per (method, path, key), replayed for repeats."""

    def __init__(self) -> None:
        self._responses: dict[tuple[str, str, str], StoredResponse] = {}

    def get(self, method: str, path: str, key: str) -> StoredResponse | None:
        return self._responses.get((method, path, key))

    def put(self, method: str, path: str, key: str, response: StoredResponse) -> None:
        self._responses.setdefault((method, path, key), response)
