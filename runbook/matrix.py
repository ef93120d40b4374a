"""The decision and authority matrices, looked up for one trigger at one canary phase."""

from __future__ import annotations

from datetime import timedelta

from pydantic import BaseModel, ConfigDict

from runbook.policy import Action, Mode, Policy, RoleSets


class Resolution(BaseModel):
    """What the plan says for a trigger at a phase: who decides, how long, and the default."""

    model_config = ConfigDict(frozen=True)

    trigger: str
    phase: int
    mode: Mode
    window: timedelta | None
    default_action: Action
    approvers: RoleSets
    """Who may decide (any one set completes; every role of a set must agree). Empty when the
    system decides. For a trigger raised by hand, the sets that may raise it."""
    accountable: RoleSets
    """The authority-matrix roles of this cell, also where the system decides (they are told)."""
    extend_by: timedelta | None
    extend_until: timedelta | None
    decided_by_initiator: bool
    """Raised by hand (operational anomaly): the initiator's authority is the decision."""

    @property
    def opens_window(self) -> bool:
        return self.mode == "manual" and self.window is not None


def phase_for_share(policy: Policy, treatment_percent: float) -> int:
    """The stricter column at or above the live share: 10 % is judged as the 25 % phase."""
    for phase in policy.phases:
        if treatment_percent <= phase:
            return phase
    return policy.phases[-1]


def resolve(policy: Policy, trigger_id: str, phase: int) -> Resolution:
    trigger = policy.triggers[trigger_id]
    cell = policy.decision_matrix[trigger_id][phase]
    authority = policy.authority_matrix[trigger.authority][phase]
    accountable: RoleSets = [] if authority == "system" else [list(s) for s in authority]
    by_initiator = trigger.initiated_by is not None and cell.mode == "manual" and not cell.window
    if by_initiator:
        approvers = [list(s) for s in trigger.initiated_by or []]
    elif cell.mode == "manual":
        approvers = accountable
    else:
        approvers = []
    return Resolution(
        trigger=trigger_id,
        phase=phase,
        mode=cell.mode,
        window=cell.window if cell.mode == "manual" else None,
        default_action=cell.default,
        approvers=approvers,
        accountable=accountable,
        extend_by=cell.extend_by,
        extend_until=cell.extend_until,
        decided_by_initiator=by_initiator,
    )


def auto_at_every_phase(policy: Policy, trigger_id: str) -> bool:
    """The system decides this trigger whatever the phase: the rollback needs no phase to
    decide, and starts the emergency stop without reading the split first."""
    return all(
        (res := resolve(policy, trigger_id, phase)).mode == "auto" and not res.decided_by_initiator
        for phase in policy.phases
    )


def approvers_for(policy: Policy, authority_row: str, phase: int) -> RoleSets:
    """The approver sets of an authority-matrix row at a phase (`[]` where the row says
    `system`)."""
    cell = policy.authority_matrix[authority_row][phase]
    return [] if cell == "system" else [list(s) for s in cell]


def all_resolutions(policy: Policy) -> list[Resolution]:
    return [
        resolve(policy, trigger_id, phase)
        for trigger_id in policy.triggers
        for phase in policy.phases
    ]


def describe_role_sets(policy: Policy, role_sets: RoleSets) -> str:
    """ "QA DRI + Sprint DRI" for a two-person set; alternatives joined with "or"."""
    if not role_sets:
        return "System"
    return " or ".join(" + ".join(policy.role_name(r) for r in s) for s in role_sets)
