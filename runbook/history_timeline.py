"""A rollback's timeline as its Temporal history tells it.

Every trigger and decision that reached the workflow, every step's activity scheduled and
ended, the timers (decision windows, step budgets, the watch), escalations, the follow-ups
child and the end, each at the instant the history recorded it. The workflow's own status
timeline says what it concluded; this one is the evidence it concluded from, rebuilt
independently of the workflow's code (`client/history.py` reads a history into it).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel

from runbook.actions import STEP_OF_KIND
from runbook.policy import STEP_IDS, Policy

HistoryKind = Literal[
    "workflow_started",
    "signal",
    "update",
    "activity_scheduled",
    "activity_completed",
    "activity_failed",
    "activity_timed_out",
    "activity_canceled",
    "escalation",
    "timer_started",
    "timer_fired",
    "timer_canceled",
    "child_started",
    "child_failed",
    "workflow_closed",
]

CloseStatus = Literal["completed", "failed", "canceled", "terminated", "timed_out", "continued"]


class HistoryEntry(BaseModel):
    event_id: int
    at: datetime
    """The event's time in the history."""
    workflow_time: datetime | None = None
    """The workflow's clock (`workflow.now()`) in the workflow task that issued this command or
    first saw this event: the clock of the workflow's own timeline and step records."""
    kind: HistoryKind
    name: str
    """Signal or update name, activity type, timer id, child workflow id, or close status."""
    message: str
    step: str | None = None
    """The plan step this activity (or its budget timer) belongs to."""
    step_name: str | None = None
    unit: str | None = None
    """The Phase 1 action this activity carried out (Steps 1 and 2 have one per action)."""
    summary: str | None = None
    """The summary shown in the Web UI (user metadata), when one was set."""
    trigger: str | None = None
    person: str | None = None
    action: str | None = None
    accepted: bool | None = None
    """Updates: whether the workflow accepted the decision (its reply)."""
    attempt: int | None = None
    payload: dict[str, Any] = {}
    """A signal's or update's input as JSON (the trigger event with its evidence, the decision)."""


class HistoryTimeline(BaseModel):
    workflow_id: str
    run_id: str
    workflow_type: str
    deployment: str | None = None
    drill: bool = False
    started_at: datetime | None = None
    closed_at: datetime | None = None
    close_status: CloseStatus | None = None
    """None while the workflow runs."""
    entries: list[HistoryEntry] = []
    step_results: dict[str, dict[str, Any]] = {}
    """The result of each plan step's activity as JSON, by step id (for example the root cause
    analysis' material)."""

    def of_kind(self, *kinds: HistoryKind) -> list[HistoryEntry]:
        return [entry for entry in self.entries if entry.kind in kinds]


def step_of(policy: Policy | None, activity_type: str) -> tuple[str | None, str | None]:
    """(step id, step name) of a plan step's activity; (None, None) for any other activity.

    Steps 3-7 are bound to the activity of the same name (`runbook.policy.STEP_IDS`); Steps 1
    and 2 to their actions' activities (`runbook.actions.STEP_OF_KIND`). The name is the
    policy's, so a report says "Step 2: Configuration Revert" like the plan does.
    """
    step_id = STEP_OF_KIND.get(activity_type, activity_type)
    if step_id not in STEP_IDS:
        return None, None
    if policy is None:
        return step_id, step_id
    try:
        return step_id, policy.step(step_id).name
    except KeyError:
        return step_id, step_id


def person_label(policy: Policy | None, person: str | None) -> str:
    if person is None:
        return "nobody"
    known = policy.people.get(person) if policy is not None else None
    return f"{known.name} ({person})" if known else person


def trigger_label(policy: Policy | None, trigger: str) -> str:
    known = policy.triggers.get(trigger) if policy is not None else None
    return known.name if known else trigger


def describe_trigger(policy: Policy | None, event: dict[str, Any]) -> str:
    trigger = str(event.get("trigger", "?"))
    status = event.get("status", "firing")
    parts = [f"{trigger_label(policy, trigger)} ({trigger})"]
    if status == "resolved":
        parts.append("resolved")
    source = event.get("source") or "?"
    raised_by = event.get("raised_by")
    parts.append(f"from {source}" + (f" by {person_label(policy, raised_by)}" if raised_by else ""))
    if event.get("phase") is not None:
        parts.append(f"phase label {event['phase']}%")
    text = ", ".join(parts)
    if event.get("reason"):
        text += f": {event['reason']}"
    return text


def describe_decision(policy: Policy | None, decision: dict[str, Any], via_update: bool) -> str:
    action = decision.get("action", "?")
    person = person_label(policy, decision.get("person"))
    how = "update" if via_update else "signal"
    note = f" ({decision['note']})" if decision.get("note") else ""
    return f"{action} by {person} via {decision.get('via', '?')} ({how}){note}"
