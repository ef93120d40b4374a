"""After the rollback: the week of follow-ups starts apart (its own workflow), and the rollback
watches the deployment for `after_rollback_watch` (the plan's 4 hours). A trigger while treatment
stays at 0 % is counted, and the escalation path hears of each new kind once; treatment traffic
seen again is a new canary, and its trigger starts a new rollback at once (the next run)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Literal

from temporalio import workflow
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.workflow import ParentClosePolicy

with workflow.unsafe.imports_passed_through():
    from contract.follow_ups import INCIDENT_SIGNAL, FollowUpsInput, follow_ups_id
    from contract.rollback import PendingTrigger, TriggerEvent
    from runbook.durations import format_duration
    from workflows.follow_ups import FollowUpsWorkflow
    from workflows.handover import history_long
    from workflows.intake import Intake
    from workflows.live_split import LiveSplit
    from workflows.rollback_record import RollbackRecord

Ended = Literal["ended", "new_canary", "handover"]


class StabilityWatch:
    def __init__(
        self, rb: RollbackRecord, intake: Intake, split: LiveSplit, settled: Callable[[], bool]
    ) -> None:
        self.rb = rb
        self.policy = rb.policy
        self.intake = intake
        self.split = split
        self._settled = settled
        """Every Phase 1 action is confirmed or given up: the run may hand over."""

    async def run(self) -> Ended:
        """The watch, from its start or from where the previous run's stood."""
        rb, state = self.rb, self.rb.state
        rb.set_state("following_up")
        if state.stage != "after_rollback" or state.watch_until is None:
            state.stage = "after_rollback"
            await self._start_follow_ups()
            state.watch_until = workflow.now() + self.policy.decisions.after_rollback_watch
        until = state.watch_until
        while (remaining := until - workflow.now()) > timedelta(0):
            if history_long(rb.inp.options.handover_events) and self._settled():
                return "handover"
            try:
                await workflow.wait_condition(
                    lambda: bool(state.inbox),
                    timeout=remaining,
                    timeout_summary="stability watch after the rollback",
                )
            except TimeoutError:
                break
            while state.inbox:
                if await self._one(state.inbox.pop(0)):
                    return "new_canary"  # the next run rolls it back
        rb.record("watch_ended", "stability watch after the rollback ended")
        return "ended"

    async def _one(self, pending: PendingTrigger) -> bool:
        """True when the trigger starts a new rollback (handed to the next run)."""
        rb, intake = self.rb, self.intake
        event, at, ticket = pending.event, pending.at, pending.ticket
        if event.status == "resolved":
            intake.answer(ticket, True, "recorded")
            return False
        if event.trigger not in self.policy.triggers:
            intake.refuse(ticket, f"unknown trigger {event.trigger!r}")
            return False
        treatment, unreadable = await self.split.treatment()
        if unreadable:
            rb.record(
                "split_unreadable", f"load balancer unreadable after the rollback: {unreadable}"
            )
        if treatment:
            rb.record(
                "new_canary",
                f"{event.trigger} ({event.source}) with treatment traffic back at {treatment}%: "
                "a new canary; a new rollback starts",
                by=event.raised_by or event.source,
                at=at,
            )
            await self._tell_follow_ups(event)
            rb.state.inbox.insert(0, pending)  # the next run judges it first
            return True
        intake.count(event)
        seen_after = rb.state.seen_after_rollback
        if event.trigger not in seen_after:
            seen_after.append(event.trigger)
            rb.record(
                "trigger",
                f"{event.trigger} fired again ({event.source}) after the rollback, treatment at 0%",
                by=event.raised_by or event.source,
                at=at,
            )
            rb.escalate(
                f"after:{event.trigger}",
                f"new {event.trigger} trigger for {rb.deployment} within "
                f"{format_duration(self.policy.decisions.after_rollback_watch)} of the rollback, "
                "treatment still at 0%: treat as a new incident (repeats are counted, not "
                "escalated)",
            )
            await self._tell_follow_ups(event)
        intake.answer(ticket, True, "recorded after the rollback (treatment at 0%)")
        return False

    async def _start_follow_ups(self) -> None:
        """The week of follow-ups runs apart, so the next canary can start a new rollback."""
        rb, s = self.rb, self.rb.status
        reverted = s.instants.get("traffic_reverted", workflow.now())
        child_id = f"{follow_ups_id(rb.deployment)}-{reverted:%Y%m%dT%H%M%S}"
        try:
            await workflow.start_child_workflow(
                FollowUpsWorkflow.run,
                FollowUpsInput(
                    deployment=rb.deployment,
                    policy=self.policy,
                    options=rb.inp.options,
                    reverted_at=reverted,
                    rollback_id=workflow.info().workflow_id,
                ),
                id=child_id,
                parent_close_policy=ParentClosePolicy.ABANDON,
                static_summary=rb.view.summary(f"Follow-ups of the rollback of {rb.deployment}"),
            )
        except WorkflowAlreadyStartedError:
            rb.record("follow_ups", f"follow-ups {child_id} already running")
            return
        s.follow_ups_id = child_id
        rb.record("follow_ups", f"post-rollback follow-ups scheduled: {child_id}")

    async def _tell_follow_ups(self, event: TriggerEvent) -> None:
        follow_ups = self.rb.status.follow_ups_id
        if follow_ups is None:
            return
        try:
            await workflow.get_external_workflow_handle(follow_ups).signal(INCIDENT_SIGNAL, event)
        except Exception as error:  # the follow-ups may have ended: the incident is still ours
            self.rb.record("follow_ups", f"could not tell {follow_ups}: {error}")
