"""Approval of a held audience's wording (the customer notification), inside the rollback.

Step 5 holds an audience whose policy entry names an `approval` row of the authority matrix.
Its wording then waits, on a durable timer of `approval_window`, for the people of that row
at the rollback's phase (sprint PM, engineering manager or VP engineering in the plan); when
nobody answers in time, `approval_default` (send or hold) applies. Authority is checked here,
in the workflow, like every rollback decision, with the same tally; an answer made at or after
the deadline is refused as late.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from activities.models import AudienceResult, SendAudienceInput, StepContext
    from activities.procedure import RollbackActivities
    from contract.rollback import CommsApprovalInput, DecisionReply
    from runbook.authority import may_decide
    from runbook.identity import Refused
    from runbook.matrix import approvers_for, describe_role_sets
    from runbook.policy import Policy
    from runbook.status import PendingComms, RollbackState
    from runbook.tally import count
    from workflows.decision_window import at_clock
    from workflows.messenger import Messenger
    from workflows.once import once

Record = Callable[..., None]


class CommsApprovals:
    def __init__(
        self,
        policy: Policy,
        record: Record,
        name: Callable[[str], str],
        state: Callable[[], RollbackState],
        messenger: Messenger,
        pending: list[PendingComms],
        replies: dict[str, DecisionReply],
        escalate: Callable[[str, str], None],
        prove: Callable[[CommsApprovalInput, bool], Refused | None],
    ) -> None:
        self._policy = policy
        self._state = state
        self._record = record
        self._name = name
        self._messenger = messenger
        self.pending = pending
        """The rollback status's own list: what is held, and how it ended."""
        self._replies = replies
        """The run's replies by request id (carried over continue-as-new)."""
        self._escalate = escalate
        self._prove = prove

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
            f"until {at_clock(pending.deadline)}, then {pending.default}",
        )
        return pending

    def wait_for(self, pending: PendingComms, ctx: StepContext) -> None:
        """In the background: the approval or the deadline, then send or hold; escalated when
        the message should have gone out and could not."""

        async def settled() -> None:
            if not await self.settle(pending, ctx):
                self._escalate(
                    f"comms:{pending.audience}",
                    f"{pending.name}: the approved message could not be sent",
                )

        self._messenger.spawn(settled())

    def resume(self, ctx: StepContext) -> None:
        """After continue-as-new: every wording still waiting for its approvers waits on."""
        for pending in self.pending:
            if pending.outcome == "pending":
                self.wait_for(pending, ctx)

    async def settle(self, pending: PendingComms, ctx: StepContext) -> bool:
        """Wait for the approval or the deadline, then send or hold; False when the message
        should have gone out and could not."""
        remaining = pending.deadline - workflow.now()
        try:
            await workflow.wait_condition(
                lambda: pending.outcome != "pending",
                timeout=max(remaining, timedelta(0)),
                timeout_summary=self._messenger.summary(f"{pending.name}: approval window"),
            )
        except TimeoutError:
            if pending.outcome == "pending":
                self._expire(pending)
        send = pending.outcome == "approved" or (
            pending.outcome == "expired" and pending.default == "send"
        )
        if not send:
            self._record("comms_held", f"{pending.name}: message held, not sent")
            return True
        sent = await self._messenger.deliver(
            f"{pending.name}: send the approved message",
            RollbackActivities.send_audience,
            SendAudienceInput(
                ctx=ctx, audience=pending.audience, channel=pending.channel, text=pending.wording
            ),
        )
        if not sent:
            return False
        pending.sent = True
        self._record("comms_sent", f"{pending.name}: sent to {pending.channel}")
        return True

    def _expire(self, pending: PendingComms) -> None:
        pending.outcome = "expired"
        self._record(
            "comms_approval_expired",
            f"{pending.name}: nobody answered by {at_clock(pending.deadline)}; "
            f"default applied: {pending.default}",
        )

    # --- votes, from the update or the signal --------------------------------------------

    def vote(self, inp: CommsApprovalInput, arrived_now: bool = True) -> DecisionReply:
        """A repeated request id (a double click, an update then its signal) counts once."""
        return once(self._replies, inp.request_id, lambda: self._vote(inp, arrived_now))

    def _vote(self, inp: CommsApprovalInput, arrived_now: bool) -> DecisionReply:
        who = inp.person
        now = workflow.now()
        made = min(inp.made_at or now, now)
        label = f"{inp.action} of the {inp.audience} wording by {self._name(who)} via {inp.via}"
        pending = next(
            (p for p in self.pending if p.audience == inp.audience and p.outcome == "pending"),
            None,
        )

        def reject(reason: str) -> DecisionReply:
            self._record("comms_rejected", f"{label} rejected: {reason}", by=who)
            return DecisionReply(accepted=False, message=reason, state=self._state())

        if pending is None:
            closed = next((p for p in reversed(self.pending) if p.audience == inp.audience), None)
            if closed is not None and closed.outcome == "expired":
                return reject(
                    f"the approval window closed at {at_clock(closed.deadline)}; the default, "
                    f"{closed.default}, applied"
                )
            return reject(f"no {inp.audience} message is waiting for approval")
        if who not in self._policy.people:
            return reject(f"{who!r} is not in the roster")
        refused = self._prove(inp, arrived_now)
        if refused is not None:
            return reject(refused.reason)
        if not may_decide(self._policy, who, pending.approvers):
            needed = describe_role_sets(self._policy, pending.approvers)
            return reject(f"{self._name(who)} may not approve {pending.name}: needs {needed}")
        if made >= pending.deadline:
            self._expire(pending)
            return reject(
                f"made at {at_clock(made)}, the approval window closed at "
                f"{at_clock(pending.deadline)}; the default, {pending.default}, applied"
            )
        pending.votes[who] = inp.action
        tally = count(self._policy, pending.votes, pending.approvers, inp.action)
        if not tally.complete:
            message = f"{label} recorded; waiting for {tally.waiting_for(self._policy)}"
            self._record("comms_vote", message, by=who)
            return DecisionReply(accepted=True, message=message, state=self._state())
        pending.outcome = "approved" if inp.action == "approve" else "denied"
        pending.decided_by = tally.voters
        verb = "approved" if inp.action == "approve" else "held"
        message = f"{pending.name} wording {verb} by {', '.join(map(self._name, tally.voters))}"
        self._record(
            f"comms_{pending.outcome}", f"{message} (via {inp.via})", by=", ".join(tally.voters)
        )
        return DecisionReply(accepted=True, message=message, state=self._state())
