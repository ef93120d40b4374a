"""Response times against the plan's targets, and activity timing derived from step budgets."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from types import MappingProxyType
from typing import Literal

from runbook.policy import Policy, Step
from runbook.status import ExtendedDecision, ResponseTime


def response_times(
    policy: Policy,
    instants: dict[str, datetime],
    decided: Literal["auto", "manual"] | None,
    final: bool,
    trigger: str | None = None,
    extended: ExtendedDecision | None = None,
) -> list[ResponseTime]:
    """The trigger's own response target (Trigger 1: 30 s to traffic reversion), then each of
    the plan's generic targets that applies to this rollback, measured once both of its
    instants exist.

    While the rollback runs, a target not reached yet has `met=None`; once it has ended
    (`final`), a target never reached is a miss. An investigation extension (`extended`, the
    plan's own allowance) moves the targets that end at the decision to the extended deadline.
    """
    wanted: list[tuple[str, str, str, str, float, Literal["plan", "trigger"]]] = []
    spec = policy.triggers.get(trigger) if trigger else None
    if spec is not None and spec.response_target is not None:
        end = spec.response_end()
        wanted.append(
            (
                f"trigger:{trigger}",
                f"{spec.name}: trigger to {END_NAMES[end]}",
                "trigger",
                end,
                spec.response_target.total_seconds(),
                "trigger",
            )
        )
    for target in policy.response_targets:
        if target.applies_to != "any" and target.applies_to != decided:
            continue
        limit = target.within.total_seconds()
        wanted.append((target.id, target.name, target.start, target.end, limit, "plan"))
    reports = []
    for id_, name, start_name, end_name, limit, basis in wanted:
        start, end_at = instants.get(start_name), instants.get(end_name)
        seconds = (end_at - start).total_seconds() if start and end_at else None
        applied, plan, why = limit, None, ""
        if extended is not None and end_name == "decision" and start is not None:
            allowed = (extended.until - start).total_seconds()
            if allowed > limit:
                applied, plan = allowed, limit
                why = (
                    f"the plan's investigation extension at {extended.phase}%, chosen by "
                    f"{extended.by}: the decision was due by {extended.until:%H:%M:%S} UTC"
                )
        reports.append(
            ResponseTime(
                id=id_,
                name=name,
                seconds=seconds,
                target_seconds=applied,
                met=(False if final else None)
                if seconds is None
                else _within(seconds, applied, plan),
                start=start_name,
                end=end_name,
                basis=basis,
                plan_target_seconds=plan,
                why=why,
            )
        )
    return reports


def _within(seconds: float, target: float, plan: float | None) -> bool:
    """Under the plan's target; a decision made by an extended deadline (its default lands
    exactly then) is in time."""
    return seconds < target if plan is None else seconds <= target


END_NAMES = MappingProxyType({"decision": "decision", "traffic_reverted": "traffic reversion"})


def reversion_interval(mode: Literal["auto", "manual"] | None) -> tuple[str, str]:
    """What `TrafficReversionSeconds` measures: from the trigger for an automated rollback,
    from the decision for a manual one (the plan's two reversion targets)."""
    return ("decision" if mode == "manual" else "trigger"), "traffic_reverted"


INTERVALS = MappingProxyType(
    {
        "trigger_to_decision": ("trigger", "decision"),
        "decision_to_traffic_reversion": ("decision", "traffic_reverted"),
        "trigger_to_traffic_reversion": ("trigger", "traffic_reverted"),
        "decision_to_stabilization": ("decision", "stabilized"),
        "decision_to_first_notification": ("decision", "first_notification"),
    }
)
"""Every interval a rollback measures, target or not, in seconds."""


def intervals(instants: dict[str, datetime]) -> dict[str, float]:
    return {
        name: (instants[end] - instants[start]).total_seconds()
        for name, (start, end) in INTERVALS.items()
        if start in instants and end in instants
    }


DEFAULT_RETRY_FOR = timedelta(hours=4)
"""How long a Phase 1 action keeps retrying past its budget when the policy does not say."""


@dataclass(frozen=True)
class StepTiming:
    """How a step's activity (or each of its actions) is scheduled.

    Every attempt heartbeats, so a lost worker is noticed within `heartbeat` and the attempt is
    retried elsewhere; a budget is never spent waiting on a dead attempt.
    """

    budget: timedelta
    start_to_close: timedelta
    schedule_to_close: timedelta
    """Checks: the budget plus the step's `retry_for`; actions: the budget (the first round)."""
    heartbeat: timedelta
    initial_interval: timedelta
    maximum_interval: timedelta
    retry_for: timedelta
    """Actions only: the second round, past the budget, until the action is confirmed (retries
    are the server's: they cost no history, so a target that comes back is seen within
    `maximum_interval`)."""


def step_timing(step: Step) -> StepTiming:
    """Retries back off from budget/20 up to budget/4 within the budget; attempts heartbeat every
    quarter budget at most (5 s at most), so a killed worker costs seconds, not the budget."""
    budget = step.budget
    retry_for = step.retry_for or (DEFAULT_RETRY_FOR if step.id in ACTION_STEP_IDS else _ZERO)
    return StepTiming(
        budget=budget,
        start_to_close=budget,
        schedule_to_close=budget if step.id in ACTION_STEP_IDS else budget + retry_for,
        heartbeat=max(min(budget / 4, timedelta(seconds=5)), timedelta(seconds=1)),
        initial_interval=max(budget / 20, timedelta(milliseconds=100)),
        maximum_interval=max(budget / 4, timedelta(milliseconds=200)),
        retry_for=retry_for,
    )


_ZERO = timedelta(0)
ACTION_STEP_IDS = ("emergency_stop", "configuration_revert")
"""The steps that act on the targets (Phase 1), one durable unit per action."""
