"""What a rollback went through, from its own status and from its history, side by side.

Each side gives (instant, kind, key) milestones: triggers, decision attempts, step ends,
escalations and an expired window. Sorted by their own clock they must tell the same story.
"""

from __future__ import annotations

from datetime import datetime

from runbook.history_timeline import HistoryTimeline
from runbook.policy import Policy
from runbook.status import RollbackStatus

Milestone = tuple[str, str]
ORDER = {
    "trigger": 0,
    "decision": 1,
    "window_expired": 1,
    "step": 2,
    "escalation": 3,
    "action_step": 4,
}
"""Within one instant (one workflow task): a Phase 1 step ends with its last action, after what
its earlier actions escalated."""


def from_status(status: RollbackStatus, policy: Policy) -> list[Milestone]:
    found: list[tuple[datetime, str, str]] = []
    for e in status.timeline:
        if e.kind in ("trigger", "trigger_rejected", "alert_resolved"):
            found.append((e.at, "trigger", _trigger_id(policy, e.message)))
        elif e.kind == "decision_rejected":
            found.append((e.at, "decision", f"{e.by}: rejected"))
        elif e.kind in ("decision_vote", "investigating"):
            found.append((e.at, "decision", f"{e.by}: accepted"))
        elif e.kind == "decision" and "(via " in e.message:  # a person's decision, not the system's
            last = (e.by or "").split(", ")[-1]
            found.append((e.at, "decision", f"{last}: accepted"))
        elif e.kind == "window_expired":
            found.append((e.at, "window_expired", ""))
        elif e.kind == "escalation":
            found.append((e.at, "escalation", e.message))
    acting = {a.step for a in status.actions}
    for s in status.steps:
        if s.ended_at is not None:
            kind = "action_step" if s.id in acting else "step"
            found.append((s.ended_at, kind, f"{s.id}: {s.outcome}"))
    return _ordered(found)


def from_history(timeline: HistoryTimeline) -> list[Milestone]:
    found: list[tuple[datetime, str, str]] = []
    units: dict[str, dict[str, tuple[datetime, bool]]] = {}
    """An action step ends with the last of its actions' last attempts."""
    for e in timeline.entries:
        at = e.workflow_time or e.at
        if e.kind == "signal" and e.name == "trigger":
            found.append((at, "trigger", e.trigger or "?"))
        elif e.kind == "update" and e.name == "decide":
            verdict = "accepted" if e.accepted else "rejected"
            found.append((at, "decision", f"{e.person}: {verdict}"))
        elif e.kind == "timer_fired" and e.step is None:
            found.append((at, "window_expired", ""))
        elif e.kind == "escalation":
            found.append((at, "escalation", e.message))
        elif (
            e.step is not None
            and e.kind.startswith("activity_")
            and e.kind != ("activity_scheduled")
        ):
            ok = e.kind == "activity_completed" and ": unhealthy" not in e.message
            if e.unit is not None:
                units.setdefault(e.step, {})[e.unit] = (at, ok)
            else:
                found.append((at, "step", f"{e.step}: {'ok' if ok else 'failed'}"))
    for step, last in units.items():
        ended = max(at for at, _ in last.values())
        ok = all(ok for _, ok in last.values())
        found.append((ended, "action_step", f"{step}: {'ok' if ok else 'failed'}"))
    return _ordered(found)


def _ordered(found: list[tuple[datetime, str, str]]) -> list[Milestone]:
    # Milestones of one workflow task share its instant: order them as the workflow acts.
    found.sort(
        key=lambda m: (m[0].replace(microsecond=m[0].microsecond // 1000 * 1000), ORDER[m[1]])
    )
    return [("step" if kind == "action_step" else kind, key) for _, kind, key in found]


def _trigger_id(policy: Policy, message: str) -> str:
    for trigger_id, trigger in policy.triggers.items():
        if message.startswith((trigger.name, trigger_id)):
            return trigger_id
    return "?"
