"""Response times against the plan's targets, and activity timing derived from step budgets."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from runbook.policy import Policy, Step
from runbook.status import ResponseTime


def response_times(
    policy: Policy,
    instants: dict[str, datetime],
    decided: Literal["auto", "manual"] | None,
    final: bool,
) -> list[ResponseTime]:
    """Each target that applies to this rollback, measured once both of its instants exist.

    While the rollback runs, a target not reached yet has `met=None`; once it has ended
    (`final`), a target never reached is a miss.
    """
    reports = []
    for target in policy.response_targets:
        if target.applies_to != "any" and target.applies_to != decided:
            continue
        start, end = instants.get(target.start), instants.get(target.end)
        seconds = (end - start).total_seconds() if start and end else None
        limit = target.within.total_seconds()
        reports.append(
            ResponseTime(
                id=target.id,
                name=target.name,
                seconds=seconds,
                target_seconds=limit,
                met=(False if final else None) if seconds is None else seconds < limit,
            )
        )
    return reports


INTERVALS = {
    "trigger_to_decision": ("trigger", "decision"),
    "decision_to_traffic_reversion": ("decision", "traffic_reverted"),
    "trigger_to_traffic_reversion": ("trigger", "traffic_reverted"),
    "decision_to_stabilization": ("decision", "stabilized"),
    "decision_to_first_notification": ("decision", "first_notification"),
}
"""Every interval a rollback measures, target or not, in seconds."""


def intervals(instants: dict[str, datetime]) -> dict[str, float]:
    return {
        name: (instants[end] - instants[start]).total_seconds()
        for name, (start, end) in INTERVALS.items()
        if start in instants and end in instants
    }


@dataclass(frozen=True)
class StepTiming:
    """How a step's activity is scheduled so that its retries fit in its budget."""

    budget: timedelta
    start_to_close: timedelta
    schedule_to_close: timedelta | None
    initial_interval: timedelta
    maximum_interval: timedelta
    heartbeat: timedelta | None


def step_timing(step: Step, polls: bool = False) -> StepTiming:
    """Retries back off from budget/20 up to budget/4 and all fit in the budget.

    A step marked `retry_until_success` (the emergency stop) has no overall deadline: the
    workflow escalates when the budget passes and keeps the activity retrying, each attempt
    limited to half the budget so that a hung call cannot eat it. A step that `polls` (health
    checks) heartbeats, so a lost worker is noticed within a quarter of the budget.
    """
    budget = step.budget
    return StepTiming(
        budget=budget,
        start_to_close=budget / 2 if step.retry_until_success else budget,
        schedule_to_close=None if step.retry_until_success else budget,
        initial_interval=max(budget / 20, timedelta(milliseconds=100)),
        maximum_interval=max(budget / 4, timedelta(milliseconds=200)),
        heartbeat=min(budget / 4, timedelta(seconds=10)) if polls else None,
    )
