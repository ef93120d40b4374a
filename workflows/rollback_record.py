"""The rollback as it stands, shared by its parts (the decision, the procedure, the watch): its
status, the bounded timeline, the messenger, the view, and escalation once per reason (each a
climb along the escalation path, workflows/escalation.py).

All of it is one serializable status (`runbook.status.RollbackStatus`) plus a few bounded sets,
so a run that continues as new hands everything over in its input.
"""

from __future__ import annotations

from collections import OrderedDict
from datetime import datetime
from typing import Any

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from activities.models import StepContext
    from activities.procedure import RollbackActivities
    from contract.rollback import DecisionReply, RollbackInput, TriggerReply
    from runbook.status import RollbackState, RollbackStatus, TimelineEntry
    from workflows import metering
    from workflows import search_attributes as sa
    from workflows.escalation import Escalations
    from workflows.messenger import Messenger
    from workflows.rollback_view import RollbackView

TIMELINE_HEAD = 40
TIMELINE_TAIL = 160
"""The status keeps the first and the latest entries; the history keeps them all."""
REMEMBERED_DELIVERIES = 1_000
REMEMBERED_REPLIES = 200
LADDER_PATCH = "escalation-ladder"
"""Rollbacks started before the escalation ladder and the plan's clocks (phase budgets,
response targets) keep their one-message escalations when they replay."""
DECISION_TARGETS_PATCH = "decision-targets"
"""Targets that end at the decision are watched from the window's opening (not the procedure's)."""
HELD_DECISIONS_PATCH = "held-decisions"
"""A decision stored before the first window opened waits for it instead of being refused."""
ORDERED_MESSAGES_PATCH = "ordered-decision-messages"
"""Changes of one decision message go out one after the other: the close never lands before
an extension's deadline change that Slack was slow to take."""


class RollbackRecord:
    def __init__(self, inp: RollbackInput) -> None:
        self.inp = inp
        self.policy = inp.policy
        self.deployment = inp.deployment
        carried = inp.carried
        self.status = (
            carried.status
            if carried is not None
            else RollbackStatus(
                deployment=inp.deployment,
                state="triggered",
                drill=inp.options.drill,
                trigger=None,
                phase=None,
                mode=None,
                decision=None,
                decided_by=[],
                outcome=None,
                instants={},
                timeline=[],
                steps=[],
                response_times=[],
            )
        )
        self.deliveries: OrderedDict[str, None] = OrderedDict.fromkeys(
            carried.deliveries if carried else []
        )
        self.escalated: set[str] = set(carried.escalated if carried else [])
        self.replies: OrderedDict[str, DecisionReply] = OrderedDict()
        self.trigger_replies: dict[str, TriggerReply] = {}
        self.phase_label: int | None = None
        """The trigger's phase label, when the phase waits for the emergency stop's read."""
        self.view = RollbackView(inp.options.ui_metadata)
        self._dirty = False
        self.messenger = Messenger(lambda kind, message: self.record(kind, message), self.view.ui)
        self.escalations = Escalations(self)

    # --- the timeline ---------------------------------------------------------------------

    def record(
        self, kind: str, message: str, by: str | None = None, at: datetime | None = None
    ) -> None:
        timeline = self.status.timeline
        timeline.append(TimelineEntry(at=at or workflow.now(), kind=kind, message=message, by=by))
        if len(timeline) > TIMELINE_HEAD + TIMELINE_TAIL:
            del timeline[TIMELINE_HEAD]
            self.status.folded += 1

    def set_state(self, state: RollbackState) -> None:
        self.status.state = state
        self.record("state", f"state: {state}")
        self.view.upsert(sa.ROLLBACK_STATE.value_set(state))
        self.details()

    def details(self) -> None:
        """What the Web UI shows changed: shown once the workflow task's work is done (one
        render and one search-attribute upsert per task, however many changes it made)."""
        self._dirty = True

    async def show(self) -> None:
        """Runs beside the workflow for its whole life; `flush()` before it ends."""
        while True:
            await workflow.wait_condition(lambda: self._dirty)
            self.flush()

    def flush(self) -> None:
        if self._dirty:
            self._dirty = False
            self.view.details(self.status, self.policy)

    # --- repeats ----------------------------------------------------------------------------

    def seen(self, key: str | None) -> bool:
        """True for a delivery already recorded (a webhook retry, a repeat notification)."""
        if key is None:
            return False
        if key in self.deliveries:
            return True
        self.deliveries[key] = None
        while len(self.deliveries) > REMEMBERED_DELIVERIES:
            self.deliveries.popitem(last=False)
        return False

    def remember_reply(self, request_id: str, reply: DecisionReply) -> None:
        self.replies[request_id] = reply
        while len(self.replies) > REMEMBERED_REPLIES:
            self.replies.popitem(last=False)

    # --- people -------------------------------------------------------------------------------

    def person_name(self, person: str | None) -> str:
        if person is None:
            return "nobody"
        known = self.policy.people.get(person)
        return f"{known.name} ({person})" if known else person

    @property
    def ladder(self) -> bool:
        """Whether this rollback climbs the escalation path and watches the plan's clocks."""
        return workflow.patched(LADDER_PATCH)

    def escalate(self, key: str, reason: str) -> None:
        """Escalate once per reason (`key`) and rollback: the climb along `escalation_path`
        (workflows/escalation.py)."""
        if key in self.escalated:
            return
        self.escalated.add(key)
        metering.escalated(key.split(":", 1)[0])
        self.record("escalation", reason)
        self.escalations.open(key, reason)

    def progress(self, text: str) -> None:
        from activities.models import ProgressInput

        inp = ProgressInput(ctx=self.ctx("Progress"), text=text)
        self.messenger.send("progress message", RollbackActivities.post_progress, inp)

    def ctx(self, step_name: str = "") -> StepContext:
        info = workflow.info()
        steps = self.status.steps
        return StepContext(
            deployment=self.deployment,
            rollback_id=f"{info.workflow_id}/{info.run_id}",
            channel=self.inp.options.channel or self.policy.notifications.channel,
            drill=self.inp.options.drill,
            step_name=step_name or (steps[-1].name if steps else ""),
        )

    def upsert(self, *updates: Any) -> None:
        self.view.upsert(*updates)
