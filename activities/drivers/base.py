"""The small interfaces Phase 1's activities call, one per kind of action.

Every driver reads first and acts only if needed, then confirms by reading back, so a retry is
harmless. Each has a read-only call too (`read`, `is_stopped`, `is_off`): `rollback preflight`
uses it to show that the target answers with the configured credentials, changing nothing.
Errors follow activities/targets.py: `unavailable` and `not_confirmed` are retried, `rejected`
is not; each names the host or socket, the command and what came back.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Protocol

from activities.models import TrafficSplit

Outcome = Literal["done", "already"]
ALL_ON_CONTROL = TrafficSplit(treatment=0, control=100)


@dataclass(frozen=True)
class Acted:
    outcome: Outcome
    """`already`: the end state held when read first (a retry, or someone was faster)."""
    evidence: str = ""
    """What the target showed (commands, exit codes, output redacted of secrets), kept in the
    step's result; empty where the outcome says it all (http)."""


@dataclass(frozen=True)
class Reverted:
    split: TrafficSplit
    """As read back after the change."""
    outcome: Outcome
    before: TrafficSplit
    """As read first: the canary's phase."""
    evidence: str = ""


class LoadBalancerDriver(Protocol):
    where: str
    """The load balancer, as an error or a preflight line names it."""

    async def read(self, deployment: str) -> TrafficSplit: ...

    async def revert(self, deployment: str, key: str) -> Reverted:
        """All traffic to control, confirmed by reading it back."""
        ...


class ServiceDriver(Protocol):
    where: str

    async def is_stopped(self, deployment: str, service: str) -> bool: ...

    async def stop(self, deployment: str, service: str, key: str) -> Acted: ...


class SwitchDriver(Protocol):
    """A boolean that Phase 1 turns off: a configuration value, a feature flag."""

    where: str

    async def is_off(self, deployment: str, name: str) -> bool: ...

    async def disable(self, deployment: str, name: str, key: str) -> Acted: ...
