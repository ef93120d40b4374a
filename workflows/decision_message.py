"""The decision's message in the channel: the request when a window opens, a change when its
deadline moves (an investigation), the close with the outcome — in that order, the close last.

The close supersedes changes still on their way (their retries stop; a Slack call under way
settles first), so it is never held up by a deadline Slack was slow to show, and the channel
never ends on an open decision with live buttons.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError

with workflow.unsafe.imports_passed_through():
    from activities.models import DecisionClosedInput, DecisionRequestInput, DecisionUpdateInput
    from activities.procedure import RollbackActivities
    from runbook.matrix import Resolution, describe_role_sets
    from workflows.decision_window import DecisionWindow, at_clock
    from workflows.messenger import describe_failure
    from workflows.people import people_refs, role_holders
    from workflows.rollback_record import RollbackRecord

WHAT = "decision message update"


class DecisionMessages:
    def __init__(self, rb: RollbackRecord, window: DecisionWindow) -> None:
        self.rb = rb
        self.window = window
        self._changes: list[asyncio.Future[Any]] = []
        """The open message's changes on their way: the next one goes out after them."""

    def request_input(self) -> DecisionRequestInput | None:
        """The open window's request, as it would be posted now (its deadline included)."""
        rb, policy, s = self.rb, self.rb.policy, self.rb.status
        decision = self.window.current
        if decision is None or not decision.triggers:
            return None
        first = decision.triggers[0]
        trigger = policy.triggers[first]
        return DecisionRequestInput(
            ctx=rb.ctx("Decision request"),
            trigger=first,
            trigger_name=trigger.name,
            phase=decision.phase,
            reason=s.reason,
            evidence=s.evidence,
            links=rb.state.decision_links,
            approvers=decision.approvers,
            approver_text=describe_role_sets(policy, decision.approvers),
            deciders=role_holders(policy, sorted({r for x in decision.approvers for r in x})),
            deadline=decision.deadline,
            default_action=decision.default_action,
            can_investigate=decision.extend_until is not None,
        )

    async def post(self, res: Resolution, links: list[str]) -> None:
        """The request to the deciders; when it cannot be posted, the escalation path hears
        that the default will apply."""
        rb = self.rb
        rb.state.decision_links = list(links)
        rb.state.decision_message = None
        self._changes = []  # a new message: the last one's changes are not its own
        request = self.request_input()
        assert request is not None and res.window is not None
        try:
            rb.state.decision_message = await workflow.execute_activity_method(
                RollbackActivities.request_decision,
                request,
                start_to_close_timeout=timedelta(seconds=10),
                schedule_to_close_timeout=min(res.window / 2, timedelta(minutes=1)),
                retry_policy=RetryPolicy(initial_interval=timedelta(milliseconds=500)),
                summary=rb.view.summary(f"Decision request to {request.approver_text}"),
            )
        except ActivityError as error:
            rb.escalate(
                "decision_request",
                f"the decision request could not be posted ({describe_failure(error)}); "
                f"without a decision the default ({res.default_action}) applies at "
                f"{at_clock(request.deadline)}",
            )

    def show_deadline(self, note: str) -> None:
        """An extension moves the deadline: the channel's message says so."""
        request = self.request_input()
        if request is None:
            return
        self._change(
            RollbackActivities.update_decision,
            DecisionUpdateInput(request=request, message=self.rb.state.decision_message, note=note),
        )

    def close(self, outcome: str) -> None:
        rb = self.rb
        note = self.window.close(outcome, workflow.now())
        if note is None:
            return
        rb.record(*note)
        message, rb.state.decision_message = rb.state.decision_message, None
        self._change(
            RollbackActivities.close_decision,
            DecisionClosedInput(
                ctx=rb.ctx("Decision outcome"),
                message=message,
                outcome=outcome,
                decided_by=rb.status.decided_by,
                deciders=people_refs(rb.policy, rb.status.decided_by),
                at=workflow.now(),
            ),
            closing=True,
        )
        rb.details()

    def _change(
        self, method: Callable[[Any, Any], Awaitable[Any]], inp: Any, *, closing: bool = False
    ) -> None:
        """In the background, after the changes before it: the channel ends on the last word."""
        before = [change for change in self._changes if not change.done()]
        if closing:
            for change in before:
                change.cancel()

        async def in_turn() -> None:
            if before:
                await workflow.wait(before)  # a failure of theirs is on the timeline
            await self.rb.messenger.deliver(WHAT, method, inp, supersedable=not closing)

        self._changes = [*before, self.rb.messenger.spawn(in_turn())]
