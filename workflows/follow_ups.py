"""FollowUpsWorkflow: the plan's post-rollback procedures on durable timers.

Started by the rollback once traffic is back on control, with an ID of its own, so that the
deployment's next canary can start a new rollback while these run for a week.
"""

from __future__ import annotations

import contextlib
from datetime import datetime, timedelta
from typing import Literal

from temporalio import workflow
from temporalio.exceptions import ActivityError

with workflow.unsafe.imports_passed_through():
    from activities.models import (
        BaselineCheckInput,
        EscalationInput,
        FollowUpNoticeInput,
        StepContext,
    )
    from activities.procedure import RollbackActivities
    from contract.follow_ups import (
        ACK_SIGNAL,
        ACK_UPDATE,
        INCIDENT_SIGNAL,
        RUN_STATE_QUERY,
        FollowUpAck,
        FollowUpsInput,
        FollowUpsRun,
    )
    from contract.rollback import STATUS_QUERY, DecisionReply, TriggerEvent
    from runbook.identity import Refused, check, expected, stamp
    from runbook.status import FollowUpItem, FollowUpsStatus, TimelineEntry
    from workflows.handover import history_long, quiesce
    from workflows.messenger import MESSAGE_RETRY, Messenger, describe_failure
    from workflows.once import once
    from workflows.people import role_holders

FINAL = ("done", "missed")
MAX_TIMELINE = 200
MAX_INCIDENTS = 50
"""Incidents kept in the status; later ones are counted (`incident_count`)."""


@workflow.defn
class FollowUpsWorkflow:
    @workflow.init
    def __init__(self, inp: FollowUpsInput) -> None:
        self._inp = inp
        self._policy = inp.policy
        self._specs = {f.id: f for f in inp.policy.follow_ups}
        carried = inp.carried or FollowUpsRun(
            status=FollowUpsStatus(
                deployment=inp.deployment,
                reverted_at=inp.reverted_at,
                items=[
                    FollowUpItem(
                        id=f.id,
                        name=f.name,
                        owner=f.owner,
                        check=f.check,
                        due_at=inp.reverted_at + f.after,
                    )
                    for f in sorted(inp.policy.follow_ups, key=lambda f: f.after)
                ],
                incidents=[],
                timeline=[],
            )
        )
        self._run = carried
        self._s = carried.status
        self._changed = False
        self._messenger = Messenger(self._record, inp.options.ui_metadata, carried.outbox)
        carried.outbox = []  # on their way again: the messenger knows them now

    @workflow.run
    async def run(self, inp: FollowUpsInput) -> FollowUpsStatus:
        self._messenger.resume()
        items = self._s.items
        while not all(item.state in FINAL for item in items):
            now = workflow.now()
            for item in items:
                await self._advance(item, now)
            upcoming = [t for item in items if (t := self._next_time(item)) is not None]
            if not upcoming:
                break
            wait = min(upcoming) - workflow.now()
            if self._long():
                break
            if wait > timedelta(0):
                self._changed = False
                with contextlib.suppress(TimeoutError):
                    await workflow.wait_condition(
                        lambda: self._changed or self._long(),
                        timeout=wait,
                        timeout_summary="next follow-up",
                    )
        if self._long() and not all(item.state in FINAL for item in items):
            await quiesce(self._messenger)
            workflow.continue_as_new(self._inp.model_copy(update={"carried": self.run_state()}))
        await self._messenger.drain()
        await workflow.wait_condition(workflow.all_handlers_finished)
        return self.status()

    def _long(self) -> bool:
        """Continue as new well before Temporal suggests it (a storm of acknowledgements or
        incidents must not grow one run's history for a week)."""
        return history_long(self._inp.options.handover_events)

    @workflow.query(
        name=RUN_STATE_QUERY,
        description="Everything this run knows, as it would hand it to its next run",
    )
    def run_state(self) -> FollowUpsRun:
        return self._run.model_copy(update={"outbox": self._messenger.unsent()}, deep=True)

    @workflow.update(
        name=ACK_UPDATE,
        description=(
            "Acknowledge a follow-up (first hour, 2 h, 24 h, a week) as a roster person; answered "
            "with the verdict"
        ),
    )
    def acknowledge(self, ack: FollowUpAck) -> DecisionReply:
        return self._acknowledge_once(ack)

    @workflow.signal(
        name=ACK_SIGNAL,
        description=(
            "A follow-up acknowledgement stored while no worker answered; judged by when it was "
            "made"
        ),
    )
    def on_acknowledgement(self, ack: FollowUpAck) -> None:
        self._acknowledge_once(ack, arrived_now=False)

    def _acknowledge_once(self, ack: FollowUpAck, arrived_now: bool = True) -> DecisionReply:
        return once(self._run.replies, ack.request_id, lambda: self._acknowledge(ack, arrived_now))

    @workflow.signal(
        name=INCIDENT_SIGNAL,
        description=(
            "A trigger for the deployment during the post-rollback watch: a new incident, escalated"
        ),
    )
    def on_incident(self, event: TriggerEvent) -> None:
        s = self._s
        s.incident_count += 1
        if len(s.incidents) >= MAX_INCIDENTS:
            return
        entry = TimelineEntry(
            at=workflow.now(),
            kind="incident",
            message=f"{event.trigger} after the rollback ({event.source})",
            by=event.raised_by or event.source,
        )
        s.incidents.append(entry)
        s.timeline.append(entry)

    @workflow.query(
        name=STATUS_QUERY,
        description="The follow-ups: due times, acknowledgements, reminders and escalations",
    )
    def status(self) -> FollowUpsStatus:
        return self._s

    # --- one follow-up -----------------------------------------------------------------

    def _acknowledge(self, ack: FollowUpAck, arrived_now: bool = True) -> DecisionReply:
        """Judged by when it was made: an acknowledgement made before the follow-up was due is
        refused, one made before its escalation counts as on time even if it arrives later."""
        now = workflow.now()
        made = min(ack.made_at or now, now)
        statement = expected(
            "ack_follow_up",
            ack.person,
            self._inp.deployment,
            ack.proof,
            {
                "rollback": workflow.info().workflow_id,
                "window": ack.follow_up,
                "choice": "ack",
                "reason": ack.note,
                "made_at": stamp(ack.made_at or made),
                "request_id": ack.request_id or "",
                "via": ack.via,
            },
        )
        verdict = check(
            self._policy,
            statement,
            ack.proof,
            drill=self._inp.options.drill,
            now=now if arrived_now else made,
        )
        if isinstance(verdict, Refused):
            self._record(
                "ack_rejected", f"acknowledgement by {ack.person} refused: {verdict.reason}"
            )
            return DecisionReply(accepted=False, message=verdict.reason, state="following_up")
        item = next((i for i in self._s.items if i.id == ack.follow_up), None)
        allowed = (
            {self._specs[ack.follow_up].owner, *self._policy.escalation_path} if item else set()
        )
        if item is None:
            reason = f"unknown follow-up {ack.follow_up!r} (known: {', '.join(self._specs)})"
        elif ack.person not in self._policy.people:
            reason = f"{ack.person!r} is not in the roster"
        elif not self._policy.roles_of(ack.person) & allowed:
            names = ", ".join(self._policy.role_name(r) for r in sorted(allowed))
            reason = f"{ack.person} may not acknowledge {item.name}: needs {names}"
        elif item.state == "scheduled" or made < item.due_at:
            reason = f"{item.name} is not due before {item.due_at:%Y-%m-%d %H:%M} UTC"
        elif item.state == "done":
            reason = f"{item.name} was already done ({item.done_by})"
        else:
            after = item.escalated_at is not None and made >= item.escalated_at
            late = " (after escalation)" if after or item.state == "missed" else ""
            self._finish(
                item,
                "done",
                by=ack.person,
                detail=f"acknowledged{late} [{verdict.label()}]: {ack.note}".rstrip(": "),
            )
            return DecisionReply(
                accepted=True, message=f"{item.name}: acknowledged", state="following_up"
            )
        self._record(
            "ack_rejected", f"acknowledgement by {ack.person} rejected: {reason}", by=ack.person
        )
        return DecisionReply(accepted=False, message=reason, state="following_up")

    async def _advance(self, item: FollowUpItem, now: datetime) -> None:
        spec = self._specs[item.id]
        if item.state == "scheduled" and now >= item.due_at:
            item.state = "due"
            self._record("follow_up_due", f"{item.name} is due")
            if spec.check == "baseline":
                await self._check_baseline(item)
            elif spec.check == "no_new_incident":
                if self._s.incidents:
                    self._finish(
                        item,
                        "missed",
                        detail=f"{len(self._s.incidents)} incident(s) since the rollback",
                    )
                    await self._escalate(item, f"{item.name}: incidents since the rollback")
                else:
                    self._finish(item, "done", by="system", detail="no incident since the rollback")
            else:
                await self._notice(item, "due")
            return
        if spec.check != "acknowledge" or item.state in FINAL or item.state == "scheduled":
            return
        if (
            spec.escalate_after
            and now >= item.due_at + spec.escalate_after
            and item.state != "escalated"
        ):
            item.state, item.escalated_at = "escalated", now
            await self._escalate(
                item, f"{item.name} not acknowledged {_hours(spec.escalate_after)} after it was due"
            )
        elif spec.remind_after and now >= item.due_at + spec.remind_after and item.state == "due":
            item.state = "reminded"
            self._record("follow_up_reminder", f"reminder: {item.name}")
            await self._notice(item, "reminder")

    def _next_time(self, item: FollowUpItem) -> datetime | None:
        spec = self._specs[item.id]
        if item.state == "scheduled":
            return item.due_at
        if spec.check != "acknowledge" or item.state in ("done", "missed", "escalated"):
            return None
        if item.state == "due" and spec.remind_after:
            return item.due_at + spec.remind_after
        if spec.escalate_after:
            return item.due_at + spec.escalate_after
        return None

    async def _check_baseline(self, item: FollowUpItem) -> None:
        try:
            result = await workflow.execute_activity_method(
                RollbackActivities.check_baseline,
                BaselineCheckInput(ctx=self._ctx(item.name), criteria=self._policy.health_criteria),
                start_to_close_timeout=timedelta(minutes=1),
                schedule_to_close_timeout=timedelta(minutes=5),
                retry_policy=MESSAGE_RETRY,
                summary=self._summary(f"{item.name}: all metrics within baseline"),
            )
        except ActivityError as error:
            self._finish(item, "missed", detail=f"could not measure: {describe_failure(error)}")
            await self._escalate(item, f"{item.name}: the baseline could not be measured")
            return
        if result.healthy:
            self._finish(item, "done", by="system", detail=result.summary)
        else:
            self._finish(item, "missed", detail=result.summary)
            await self._escalate(item, f"{item.name}: {result.summary}")

    def _finish(
        self, item: FollowUpItem, state: str, by: str | None = None, detail: str = ""
    ) -> None:
        item.state = "done" if state == "done" else "missed"
        item.done_by, item.done_at, item.detail = by, workflow.now(), detail
        self._changed = True
        self._record(f"follow_up_{item.state}", f"{item.name}: {detail}", by=by)

    # --- messages ----------------------------------------------------------------------

    async def _notice(self, item: FollowUpItem, kind: Literal["due", "reminder"]) -> None:
        spec = self._specs[item.id]
        inp = FollowUpNoticeInput(
            ctx=self._ctx(item.name),
            follow_up=item.id,
            name=item.name,
            kind=kind,
            actions=spec.actions,
            owners=role_holders(self._policy, [spec.owner]),
        )
        await self._messenger.deliver(
            f"{item.name}: {kind}", RollbackActivities.follow_up_notice, inp
        )

    async def _escalate(self, item: FollowUpItem, reason: str) -> None:
        self._record("escalation", reason)
        inp = EscalationInput(
            ctx=self._ctx(item.name),
            reason=reason,
            holders=role_holders(self._policy, self._policy.escalation_path),
        )
        await self._messenger.deliver(f"escalation: {item.name}", RollbackActivities.escalate, inp)

    def _record(self, kind: str, message: str, by: str | None = None) -> None:
        timeline = self._s.timeline
        timeline.append(TimelineEntry(at=workflow.now(), kind=kind, message=message, by=by))
        if len(timeline) > MAX_TIMELINE:
            del timeline[MAX_TIMELINE // 5]  # keep the first entries and the latest

    def _summary(self, text: str) -> str | None:
        return text if self._inp.options.ui_metadata else None

    def _ctx(self, step_name: str) -> StepContext:
        return StepContext(
            deployment=self._inp.deployment,
            rollback_id=self._inp.rollback_id,
            channel=self._inp.options.channel or self._policy.notifications.channel,
            drill=self._inp.options.drill,
            step_name=step_name,
        )


def _hours(delta: timedelta) -> str:
    hours = delta.total_seconds() / 3600
    return f"{hours:g} h"
