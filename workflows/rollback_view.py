"""What the Temporal Web UI shows of a rollback: search attributes, the Markdown current details,
and summaries on activities and timers. Off on the time-skipping test server, which knows none
of them."""

from __future__ import annotations

from types import MappingProxyType
from typing import Any

from temporalio import workflow
from temporalio.common import SearchAttributeUpdate

with workflow.unsafe.imports_passed_through():
    from runbook.matrix import describe_role_sets
    from runbook.policy import Policy
    from runbook.status import RollbackStatus
    from workflows.decision_window import at_clock

STEP_MARKS = MappingProxyType({"ok": "✅", "failed": "❌", "running": "⏳"})
ACTION_MARKS = MappingProxyType(
    {
        "pending": "·",
        "running": "⏳",
        "retrying": "🔁",
        "confirmed": "✅",
        "refused": "⛔",
        "gave_up": "❌",
    }
)


class RollbackView:
    """Search attribute changes wait for the next `details()` and go out as one upsert: one
    history event, not one per attribute."""

    def __init__(self, ui: bool) -> None:
        self.ui = ui
        self._pending: dict[str, SearchAttributeUpdate[Any]] = {}

    def upsert(self, *updates: SearchAttributeUpdate[Any]) -> None:
        if self.ui:
            self._pending.update({u.key.name: u for u in updates})

    def summary(self, text: str) -> str | None:
        return text if self.ui else None

    def details(self, status: RollbackStatus, policy: Policy) -> None:
        if not self.ui:
            return
        if self._pending:
            workflow.upsert_search_attributes(list(self._pending.values()))
            self._pending.clear()
        workflow.set_current_details(markdown(status, policy))


def markdown(s: RollbackStatus, policy: Policy) -> str:
    lines = [
        f"## Rollback of `{s.deployment}`{' (drill)' if s.drill else ''}",
        f"**State:** {s.state}",
    ]
    if s.outcome:
        lines.append(
            f"**Outcome:** {s.outcome}" + (f" — {s.outcome_detail}" if s.outcome_detail else "")
        )
    if s.trigger:
        lines.append(f"**Trigger:** {policy.triggers[s.trigger].name} at {s.phase}%")
    if s.decision:
        d = s.decision
        votes = ", ".join(
            f"{policy.people[p].name}: {v} ({d.proven.get(p, 'asserted')})"
            + (f", because: {d.reasons[p]}" if p in d.reasons else "")
            for p, v in d.votes.items()
        )
        lines += [
            f"**Decision by:** {describe_role_sets(policy, d.approvers)}",
            f"**Deadline:** {at_clock(d.deadline)}, then {d.default_action}",
            f"**Votes:** {votes or 'none yet'}",
        ]
    if s.decided_by:
        lines.append(f"**Decided by:** {', '.join(s.decided_by)}")
    if s.acts:
        lines += ["", "**Who acted, proven:**", ""]
        for act in s.acts[-8:]:
            proven = "asserted (not proven)" if act.how == "asserted" else act.detail
            if act.how == "refused":
                proven = f"refused: {act.detail}"
            why = f"; because: {act.reason}" if act.reason else ""
            lines.append(
                f"- {act.at:%H:%M:%S} UTC {act.person} {act.act} {act.choice}: {proven}{why}"
            )
    by_step: dict[str, list[str]] = {}
    for action in s.actions:
        error = f" — {action.error}" if action.error and not action.confirmed else ""
        by_step.setdefault(action.step, []).append(
            f"  - {ACTION_MARKS[action.state]} `{action.command}` {action.state}"
            f"{': ' + action.detail if action.detail else ''}{error}"
        )
    for esc in s.escalations[-10:]:
        state = (
            f"acknowledged by {esc.acked_by} ({esc.acked_via})"
            if esc.acked_at
            else "resolved"
            if esc.resolved_at
            else f"open, at {policy.role_name(esc.told[-1]) if esc.told else 'nobody'}"
        )
        paged = f", paged {', '.join(esc.paged)}" if esc.paged else ""
        lines.append(f"**Escalation** `{esc.key}`: {state}{paged}")
    for step in s.steps:
        late = " (late)" if step.late else ""
        lines.append(f"- {STEP_MARKS[step.outcome]} {step.name}{late} {step.summary}".rstrip())
        lines += by_step.get(step.id, [])
    if s.received:
        counted = ", ".join(f"{t} ×{n}" for t, n in s.received.items())
        lines.append(f"**Triggers received:** {counted}")
    return "\n".join(lines)
