"""The rollback as it stands, shared by its parts (the intake, the decision, the procedure, the
stability watch): the run's one state (`contract.rollback.RollbackRun`, its status inside), the
bounded timeline, the messenger, the view, and escalation once per reason (each a climb along
the escalation path, workflows/escalation.py).

Everything the run must remember lives in that state, so a run that continues as new hands it
over whole (`snapshot()`), and the next run starts from it.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from activities.models import ProgressInput, StepContext
    from activities.procedure import RollbackActivities
    from contract.rollback import RollbackInput, RollbackRun
    from runbook.status import RollbackState, RollbackStatus, TimelineEntry
    from workflows import metering
    from workflows import search_attributes as sa
    from workflows.escalation import Escalations
    from workflows.incident import Incident
    from workflows.messenger import Messenger
    from workflows.rollback_view import RollbackView

TIMELINE_HEAD = 40
TIMELINE_TAIL = 160
"""The status keeps the first and the latest entries; the history keeps them all."""
REMEMBERED_DELIVERIES = 1_000
ONE_INCIDENT = "one-incident"
"""Issue 20 (2026-12-08): every reason of a rollback joins one incident (one PagerDuty alert,
one Slack thread), resolved when the procedure is done; paced, ordered and truthful messages.
Runs started before it keep one escalation per reason (workflows/escalation.py)."""


def fresh_status(inp: RollbackInput) -> RollbackStatus:
    return RollbackStatus(
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


class RollbackRecord:
    def __init__(self, inp: RollbackInput) -> None:
        self.inp = inp
        self.policy = inp.policy
        self.deployment = inp.deployment
        self.state: RollbackRun = inp.carried or RollbackRun(status=fresh_status(inp))
        self.status: RollbackStatus = self.state.status
        self._deliveries = set(self.state.deliveries)
        self.view = RollbackView(inp.options.ui_metadata)
        self._dirty = False
        self.v20 = workflow.patched(ONE_INCIDENT)
        """Whether this run has issue 20's behaviour (see ONE_INCIDENT)."""
        self.messenger = Messenger(
            lambda kind, message: self.record(kind, message),
            self.view.ui,
            carried=self.state.outbox,
            ordered=self.v20,
        )
        self.state.outbox = []  # on their way again: the messenger knows them now
        self.escalations: Escalations | Incident = Incident(self) if self.v20 else Escalations(self)

    def snapshot(self) -> RollbackRun:
        """The whole state as the next run would receive it (messages not sent yet included)."""
        return self.state.model_copy(update={"outbox": self.messenger.unsent()}, deep=True)

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
        if key in self._deliveries:
            return True
        deliveries = self.state.deliveries
        deliveries.append(key)
        self._deliveries.add(key)
        if len(deliveries) > REMEMBERED_DELIVERIES:
            self._deliveries.discard(deliveries.pop(0))
        return False

    # --- people -------------------------------------------------------------------------------

    def person_name(self, person: str | None) -> str:
        if person is None:
            return "nobody"
        known = self.policy.people.get(person)
        return f"{known.name} ({person})" if known else person

    def escalate(self, key: str, reason: str) -> None:
        """Escalate once per reason (`key`) and rollback: the climb along `escalation_path`
        (workflows/escalation.py)."""
        if key in self.state.escalated:
            return
        self.state.escalated.append(key)
        metering.escalated(key.split(":", 1)[0])
        self.record("escalation", reason)
        self.escalations.open(key, reason)

    def progress(self, text: str) -> None:
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
