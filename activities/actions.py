"""Phase 1's actions, one activity per kind: set the split, stop a service, set a configuration
value, disable a flag, flush the cache; each through the driver the policy chooses for it
(activities/drivers/: http, haproxy, command locally or over SSH, redis).

Each reads first and acts only if needed, then confirms by reading back, so a retry (after a
lost worker, a timeout, a 503) is harmless; every change carries the action's idempotency key.
Each heartbeats while it runs: a killed worker is noticed within the heartbeat timeout and the
action is retried, never left for a deadline that no retry fits in.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from temporalio import activity

from activities.cache import ConfigCache
from activities.drivers.base import Acted, LoadBalancerDriver, ServiceDriver, SwitchDriver
from activities.heartbeat import heartbeating
from activities.models import ActionDone, ActionInput


def attempt_note() -> str:
    attempt = activity.info().attempt if activity.in_activity() else 1
    return f" (attempt {attempt})" if attempt > 1 else ""


def action_key(inp: ActionInput) -> str:
    """The idempotency key of one action: the same on every retry of it."""
    return f"{inp.ctx.rollback_id}/{inp.action.step}/{inp.action.id}"


class Phase1Actions:
    def __init__(
        self,
        lb: LoadBalancerDriver,
        services: ServiceDriver,
        config: SwitchDriver,
        flags: SwitchDriver,
        cache: ConfigCache,
    ) -> None:
        self.lb = lb
        self.services = services
        self.config = config
        self.flags = flags
        self.cache = cache

    def activities(self) -> list[Callable[..., Any]]:
        return [
            self.set_traffic_split,
            self.stop_service,
            self.set_config_value,
            self.disable_flag,
            self.flush_cache,
        ]

    @activity.defn(name="set_traffic_split")
    async def set_traffic_split(self, inp: ActionInput) -> ActionDone:
        """Step 1: all traffic to control, confirmed by reading the split back."""
        async with heartbeating(inp.action.command):
            reverted = await self.lb.revert(inp.ctx.deployment, action_key(inp))
        split = reverted.split
        return ActionDone(
            outcome=reverted.outcome,
            detail=f"read back treatment {split.treatment}% / control {split.control}%"
            + attempt_note()
            + _evidence(reverted.evidence),
            split=split,
            before=reverted.before,
        )

    @activity.defn(name="stop_service")
    async def stop_service(self, inp: ActionInput) -> ActionDone:
        async with heartbeating(inp.action.command):
            acted = await self.services.stop(inp.ctx.deployment, inp.action.target, action_key(inp))
        verb = "stopped" if acted.outcome == "done" else "already stopped"
        return _done(acted, verb)

    @activity.defn(name="set_config_value")
    async def set_config_value(self, inp: ActionInput) -> ActionDone:
        async with heartbeating(inp.action.command):
            acted = await self.config.disable(
                inp.ctx.deployment, inp.action.target, action_key(inp)
            )
        verb = "turned off" if acted.outcome == "done" else "already off"
        return _done(acted, f"{inp.action.target} {verb}{attempt_note()}")

    @activity.defn(name="disable_flag")
    async def disable_flag(self, inp: ActionInput) -> ActionDone:
        async with heartbeating(inp.action.command):
            acted = await self.flags.disable(inp.ctx.deployment, inp.action.target, action_key(inp))
        return _done(acted, "disabled" if acted.outcome == "done" else "already off")

    @activity.defn(name="flush_cache")
    async def flush_cache(self, inp: ActionInput) -> ActionDone:
        """`FLUSHDB` on the configuration cache's database only; the other databases' key
        counts before and after are the data-integrity evidence."""
        async with heartbeating(inp.action.command):
            flush = await self.cache.flush()
        integrity = flush.integrity()
        others = "unchanged" if integrity.result == "pass" else "CHANGED"
        return ActionDone(
            outcome="done" if flush.keys else "already",
            detail=f"database {flush.db}: {flush.keys} key(s) flushed; other databases {others}",
            integrity=integrity,
        )


def _done(acted: Acted, detail: str) -> ActionDone:
    return ActionDone(outcome=acted.outcome, detail=detail + _evidence(acted.evidence))


def _evidence(evidence: str) -> str:
    """What the target showed (commands and their redacted output), after the outcome."""
    return f"; {evidence}" if evidence else ""
