"""Step 2, Configuration Revert: hedging service, TA/NRA early stop, feature flags, cache.

Every action checks before it changes, so a retried step reports "already" instead of acting
twice; each change carries an idempotency key of its own.
"""

from __future__ import annotations

from activities.cache import ConfigCache
from activities.flags import FeatureFlags
from activities.models import ActionResult, StepContext
from activities.services import ServiceControl
from activities.targets import Target, fill, not_confirmed
from runbook.policy import Targets
from runbook.status import RecoveryMeasure

STEP = "configuration_revert"


class ConfigService:
    def __init__(self, target: Target, config_path: str, early_stop_field: str) -> None:
        self.target = target
        self.config_path = config_path
        self.field = early_stop_field

    async def disable_early_stop(self, deployment: str, key: str) -> ActionResult:
        command = "config-update --disable-early-stop"
        path = fill(self.config_path, deployment=deployment)
        if not self.target.field(await self.target.get(path), self.field, bool):
            return ActionResult(command=command, outcome="already", detail=f"{self.field} off")
        data = await self.target.call("PATCH", path, json={self.field: False}, key=key)
        if self.target.field(data, self.field, bool):
            raise not_confirmed(
                f"configuration service at {self.target.base_url}: {self.field} of "
                f"{deployment} is still on after `{command}`"
            )
        return ActionResult(command=command, outcome="done", detail=f"{self.field} off")


class ConfigurationRevert:
    def __init__(
        self,
        targets: Targets,
        services: ServiceControl,
        config: ConfigService,
        flags: FeatureFlags,
        cache: ConfigCache,
    ) -> None:
        self.targets = targets
        self.services = services
        self.config = config
        self.flags = flags
        self.cache = cache

    async def run(self, ctx: StepContext) -> tuple[list[ActionResult], RecoveryMeasure]:
        """The actions, and the data-integrity evidence of the cache flush."""
        d = ctx.deployment

        def key(action: str) -> str:
            return f"{ctx.rollback_id}/{STEP}/{action}"

        actions = []
        for service in self.targets.services_to_stop:
            outcome = await self.services.stop(d, service, key(f"stop:{service}"))
            detail = "stopped" if outcome == "done" else "already stopped"
            actions.append(
                ActionResult(command=f"systemctl stop {service}", outcome=outcome, detail=detail)
            )
        actions.append(await self.config.disable_early_stop(d, key("disable-early-stop")))
        flags = {
            f: await self.flags.disable(d, f, key(f"disable:{f}"))
            for f in self.targets.flags_to_disable
        }
        actions.append(
            ActionResult(
                command=f"feature-flag --disable {' '.join(flags)}",
                outcome="done" if "done" in flags.values() else "already",
                detail=", ".join(
                    f"{f} {'disabled' if o == 'done' else 'already off'}" for f, o in flags.items()
                ),
            )
        )
        flush = await self.cache.flush()
        integrity = flush.integrity()
        others = "unchanged" if integrity.result == "pass" else "CHANGED"
        actions.append(
            ActionResult(
                command="redis-cli FLUSHDB",
                outcome="done" if flush.keys else "already",
                detail=f"database {flush.db}: {flush.keys} key(s) flushed; "
                f"other databases {others}",
            )
        )
        return actions, integrity


def summary(actions: list[ActionResult]) -> str:
    return "; ".join(f"`{a.command}`: {a.outcome} ({a.detail})" for a in actions)
