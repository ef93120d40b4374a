"""Approval of a held audience's wording (the customer notification), inside the rollback.

Step 5 holds an audience whose policy entry names an `approval` row of the authority matrix.
Its wording then waits, on a durable timer of `approval_window`, for the people of that row
at the rollback's phase (sprint PM, engineering manager or VP engineering in the plan); when
nobody answers in time, `approval_default` (send or hold) applies. Authority is checked here,
in the workflow, like every rollback decision.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError

with workflow.unsafe.imports_passed_through():
    from activities.models import AudienceResult, SendAudienceInput, StepContext
    from activities.procedure import RollbackActivities
    from contract.rollback import CommsApprovalInput, DecisionReply
    from runbook.authority import completed_set, may_decide, missing_roles
    from runbook.matrix import approvers_for, describe_role_sets
    from runbook.policy import Policy
    from runbook.status import PendingComms, RollbackState
    from workflows.once import once

Record = Callable[..., None]
SEND_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1), maximum_interval=timedelta(minutes=1)
)


class CommsApprovals:
    def __init__(
        self,
        policy: Policy,
        record: Record,
        name: Callable[[str], str],
        state: Callable[[], RollbackState],
    ) -> None:
        self._policy = policy
        self._state = state
        self._record = record
        self._name = name
        self.pending: list[PendingComms] = []
        self._replies: dict[str, DecisionReply] = {}

    def open(self, held: AudienceResult, phase: int, now: datetime) -> PendingComms:
        audience = next(a for a in self._policy.notifications.audiences if a.id == held.audience)
        assert audience.approval and audience.approval_window and audience.approval_default
        approvers = approvers_for(self._policy, audience.approval, phase)
        pending = PendingComms(
            audience=audience.id,
            name=audience.name,
            channel=audience.channel,
            approvers=approvers,
            opened_at=now,
            deadline=now + audience.approval_window,
            default=audience.approval_default,
            wording=held.wording,
        )
        self.pending.append(pending)
        self._record(
            "comms_approval_opened",
            f"{audience.name}: wording awaits {describe_role_sets(self._policy, approvers)} "
            f"until {pending.deadline:%H:%M:%S} UTC, then {pending.default}",
        )
        return pending

    async def settle(self, pending: PendingComms, ctx: StepContext, ui: bool) -> bool:
        """Wait for the approval or the deadline, then send or hold; False when the message
        should have gone out and could not."""
        remaining = pending.deadline - workflow.now()
        try:
            await workflow.wait_condition(
                lambda: pending.outcome != "pending",
                timeout=max(remaining, timedelta(0)),
                timeout_summary=f"{pending.name}: approval window" if ui else None,
            )
        except TimeoutError:
            pending.outcome = "expired"
            self._record(
                "comms_approval_expired",
                f"{pending.name}: nobody approved the wording by "
                f"{pending.deadline:%H:%M:%S} UTC; default: {pending.default}",
            )
        send = pending.outcome == "approved" or (
            pending.outcome == "expired" and pending.default == "send"
        )
        if not send:
            self._record("comms_held", f"{pending.name}: message held, not sent")
            return True
        try:
            await workflow.execute_activity_method(
                RollbackActivities.send_audience,
                SendAudienceInput(
                    ctx=ctx,
                    audience=pending.audience,
                    channel=pending.channel,
                    text=pending.wording,
                ),
                start_to_close_timeout=timedelta(seconds=30),
                schedule_to_close_timeout=timedelta(minutes=10),
                retry_policy=SEND_RETRY,
                summary=f"{pending.name}: send the approved message" if ui else None,
            )
        except ActivityError as error:
            self._record("comms_failed", f"{pending.name}: could not be sent: {error.cause}")
            return False
        pending.sent = True
        self._record("comms_sent", f"{pending.name}: sent to {pending.channel}")
        return True

    # --- votes, from the update or the signal --------------------------------------------

    def vote(self, inp: CommsApprovalInput) -> DecisionReply:
        """A repeated request id (a double click, an update then its signal) counts once."""
        return once(self._replies, inp.request_id, lambda: self._vote(inp))

    def _vote(self, inp: CommsApprovalInput) -> DecisionReply:
        who = inp.person
        label = f"{inp.action} of the {inp.audience} wording by {self._name(who)} via {inp.via}"
        pending = next(
            (p for p in self.pending if p.audience == inp.audience and p.outcome == "pending"),
            None,
        )

        def reject(reason: str) -> DecisionReply:
            self._record("comms_rejected", f"{label} rejected: {reason}", by=who)
            return DecisionReply(accepted=False, message=reason, state=self._state())

        if pending is None:
            return reject(f"no {inp.audience} message is waiting for approval")
        if who not in self._policy.people:
            return reject(f"{who!r} is not in the roster")
        if not may_decide(self._policy, who, pending.approvers):
            needed = describe_role_sets(self._policy, pending.approvers)
            return reject(f"{self._name(who)} may not approve {pending.name}: needs {needed}")
        pending.votes[who] = inp.action
        voters = [p for p, vote in pending.votes.items() if vote == inp.action]
        distinct = self._policy.decisions.deciders_are_distinct_people
        if completed_set(self._policy, voters, pending.approvers, distinct) is None:
            waiting = missing_roles(self._policy, voters, pending.approvers, distinct)
            names = " + ".join(self._policy.role_name(r) for r in waiting)
            message = f"{label} recorded; waiting for {names}"
            self._record("comms_vote", message, by=who)
            return DecisionReply(accepted=True, message=message, state=self._state())
        pending.outcome = "approved" if inp.action == "approve" else "denied"
        pending.decided_by = voters
        verb = "approved" if inp.action == "approve" else "held"
        message = f"{pending.name} wording {verb} by {', '.join(map(self._name, voters))}"
        self._record(f"comms_{pending.outcome}", f"{message} (via {inp.via})", by=", ".join(voters))
        return DecisionReply(accepted=True, message=message, state=self._state())
