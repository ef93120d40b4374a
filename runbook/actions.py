"""Phase 1's actions, one durable unit each: the split, every service to stop, the early stop,
every feature flag, the configuration-cache flush. Derived from the policy's `targets`; each is
bound to the step of the plan that does it and to the activity of its kind."""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Literal

from pydantic import BaseModel, ConfigDict

from runbook.policy import Policy

ActionKind = Literal[
    "set_traffic_split", "stop_service", "set_config_value", "disable_flag", "flush_cache"
]
"""Each kind is one activity of the same name, behind one driver interface."""

EMERGENCY_STOP = "emergency_stop"
CONFIGURATION_REVERT = "configuration_revert"
STEP_OF_KIND: Mapping[str, str] = MappingProxyType(
    {
        "set_traffic_split": EMERGENCY_STOP,
        "stop_service": CONFIGURATION_REVERT,
        "set_config_value": CONFIGURATION_REVERT,
        "disable_flag": CONFIGURATION_REVERT,
        "flush_cache": CONFIGURATION_REVERT,
    }
)
"""The plan step each kind of action belongs to (a history names its activities so)."""


class ActionSpec(BaseModel):
    model_config = ConfigDict(frozen=True)

    id: str
    """Unique within a rollback, stable across retries: part of every idempotency key."""
    step: str
    kind: ActionKind
    name: str
    command: str
    """The plan's command for it, as the channel and the report show it."""
    target: str = ""
    """The service, flag or configuration field it acts on."""


def phase1_actions(policy: Policy) -> list[ActionSpec]:
    """Step 1 puts all traffic back on control; Step 2 reverts the configuration, one action per
    service, the early stop, one per flag, and the cache flush."""
    if policy.targets is None:
        return []
    targets = policy.targets
    actions = [
        ActionSpec(
            id="traffic_split",
            step=EMERGENCY_STOP,
            kind="set_traffic_split",
            name="Traffic split to control",
            command="traffic-split --treatment 0 --control 100",
        )
    ]
    actions += [
        ActionSpec(
            id=f"stop_service:{service}",
            step=CONFIGURATION_REVERT,
            kind="stop_service",
            name=f"Stop {service}",
            command=f"systemctl stop {service}",
            target=service,
        )
        for service in targets.services_to_stop
    ]
    actions.append(
        ActionSpec(
            id=f"config:{targets.early_stop_field}",
            step=CONFIGURATION_REVERT,
            kind="set_config_value",
            name="TA/NRA early stop off",
            command="config-update --disable-early-stop",
            target=targets.early_stop_field,
        )
    )
    actions += [
        ActionSpec(
            id=f"flag:{flag}",
            step=CONFIGURATION_REVERT,
            kind="disable_flag",
            name=f"Feature flag {flag} off",
            command=f"feature-flag --disable {flag}",
            target=flag,
        )
        for flag in targets.flags_to_disable
    ]
    actions.append(
        ActionSpec(
            id="flush_cache",
            step=CONFIGURATION_REVERT,
            kind="flush_cache",
            name="Configuration cache flushed",
            command="redis-cli FLUSHDB",
        )
    )
    return actions
