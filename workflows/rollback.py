"""RollbackWorkflow: one per deployment incident, from the first trigger to the rollback's end.

Every trigger joins `rollback-<deployment>`, so an alert storm collapses into one workflow that
counts repeats and acts once. The parts read alone: the decision window
(`workflows/decision_window.py`, a plain class), the procedure (`workflows/procedure.py`), what
the Web UI shows (`workflows/rollback_view.py`), background messages
(`workflows/messenger.py`). This module holds the handlers and `run()`: take triggers, decide,
run the procedure, watch after it, and hand over (continue as new) rather than grow without
bound or drop a trigger that arrives at the end.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import Any, Literal

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, WorkflowAlreadyStartedError
from temporalio.workflow import ParentClosePolicy

with workflow.unsafe.imports_passed_through():
    from activities.models import (
        DecisionClosedInput,
        DecisionMessage,
        DecisionRequestInput,
        DecisionUpdateInput,
        EscalationInput,
        ReadFiguresInput,
        ReadSplitInput,
    )
    from activities.procedure import RollbackActivities
    from contract.follow_ups import INCIDENT_SIGNAL, FollowUpsInput, follow_ups_id
    from contract.rollback import (
        COMMS_SIGNAL,
        COMMS_UPDATE,
        DECIDE_UPDATE,
        DECISION_SIGNAL,
        ESCALATION_ACK_SIGNAL,
        ESCALATION_ACK_UPDATE,
        RAISE_UPDATE,
        STATUS_QUERY,
        TRIGGER_SIGNAL,
        Carried,
        CommsApprovalInput,
        DecisionInput,
        DecisionReply,
        EscalationAck,
        RollbackInput,
        TriggerBatch,
        TriggerEvent,
        TriggerReply,
        deployment_problem,
    )
    from runbook.authority import may_decide
    from runbook.durations import format_duration
    from runbook.matrix import (
        Resolution,
        auto_at_every_phase,
        describe_role_sets,
        phase_for_share,
        resolve,
    )
    from runbook.status import RollbackStatus
    from runbook.timing import intervals
    from workflows import metering
    from workflows import search_attributes as sa
    from workflows.comms import CommsApprovals
    from workflows.decision_window import DecisionWindow, Verdict, at_clock
    from workflows.follow_ups import FollowUpsWorkflow
    from workflows.messenger import describe_failure
    from workflows.once import once
    from workflows.people import people_refs, role_holders
    from workflows.procedure import Procedure
    from workflows.rollback_record import (
        DECISION_TARGETS_PATCH,
        HELD_DECISIONS_PATCH,
        ORDERED_MESSAGES_PATCH,
        RollbackRecord,
    )

SPLIT_CACHE = timedelta(seconds=5)
"""An alert storm reads the load balancer once, not once per alert."""
QUICK = RetryPolicy(initial_interval=timedelta(milliseconds=200), maximum_attempts=3)
HANDOVER_EVENTS = 2_000
"""A long watch continues as new past this many history events, well before Temporal suggests
it (at 4 Ki events by default on the dev server, 10 Ki on a cluster)."""
EVIDENCE = 20
"""An alert's evidence kept in the status: its first 20 labels and values."""
ROLLING = ("rolling_back", "stabilizing", "investigating")
FINAL = ("rolled_back", "incomplete", "continued", "rejected", "failed")

Arrival = tuple[TriggerEvent, datetime, str | None]
"""A trigger, the instant it counts from, and the update waiting for its answer (if any)."""
Next = Literal["rollback", "continue", "rejected", "handover"]


@workflow.defn
class RollbackWorkflow:
    @workflow.init
    def __init__(self, inp: RollbackInput) -> None:
        self.rb = rb = RollbackRecord(inp)
        self.policy = inp.policy
        s = rb.status
        self.window = DecisionWindow(self.policy, rb.person_name)
        self.window.current, self.window.last = s.decision, s.last_decision
        self.comms = CommsApprovals(
            self.policy, rb.record, rb.person_name, lambda: s.state, rb.messenger, s.comms
        )
        self.procedure = Procedure(rb, self.comms)
        self._inbox: list[Arrival] = []
        self._message: DecisionMessage | None = None
        self._request: DecisionRequestInput | None = None
        self._message_changes: list[asyncio.Future[Any]] = []
        """The open decision message's changes on their way: the next one goes out after them."""
        self._split: tuple[datetime, int] | None = None
        self._held: list[DecisionInput] = []
        self._considering = False
        self._ending = False
        """Decisions stored before the first window opened (see `on_decision`)."""
        self._last_via = "unknown"
        """How the last accepted vote came (slack, cli): the decision's `via` metric."""
        self._watch_until: datetime | None = None
        self._accepted = inp.carried is not None
        """Whether any trigger of this incident was taken (a run of only refused ones ends)."""
        self._seen_after: set[str] = set(inp.carried.seen_after_rollback if inp.carried else [])
        self._handover: Carried | None = None
        self._ticket = 0
        self._invalid = deployment_problem(inp.deployment)
        """Set when the deployment's name breaks the rule: the run refuses every trigger."""
        self._resolved: set[str] = set()
        """Triggers whose resolution is on the timeline (a storm of them is recorded once)."""

    # --- entry points ------------------------------------------------------------------

    @workflow.run
    async def run(self, inp: RollbackInput) -> RollbackStatus:
        rb, carried = self.rb, inp.carried
        if self._invalid is not None:
            # No door may start a rollback that would act on a path it does not name.
            rb.status.outcome = f"no rollback: {self._invalid}"
            rb.record("trigger_rejected", self._invalid)
            rb.status.state = "rejected"
            await workflow.wait_condition(workflow.all_handlers_finished)
            return self.status()
        shown = asyncio.ensure_future(rb.show())
        if carried is None:
            rb.upsert(
                sa.DEPLOYMENT.value_set(inp.deployment), sa.DRILL.value_set(inp.options.drill)
            )
        else:
            rb.record("handover", f"continued from the previous run ({carried.resume} watch)")
            rb.escalations.resume()
        for event in inp.pending:
            self._arrive(event, None)

        if carried is not None and carried.resume == "after_rollback":
            await self._after_rollback(carried.watch_until)
        else:
            if carried is not None:
                self._watch_until = carried.watch_until
            nxt = await self._await_verdict()
            if nxt == "rollback":
                self._split = None  # the procedure changes it: never judge by a read from before
                await self.procedure.run()
                if inp.options.drill:
                    # A rehearsal pages nobody for a week: no stability watch, no follow-ups.
                    rb.record("drill", "drill over: no stability watch and no follow-ups")
                else:
                    await self._after_rollback(None)
            elif nxt == "continue":
                rb.status.outcome = "canary continued"
                self.procedure.post_report()
                rb.set_state("continued")
            elif nxt == "rejected":
                rb.status.outcome = "no rollback: no trigger was accepted"
                rb.set_state("rejected")
        status = await self._end()
        shown.cancel()
        rb.flush()
        return status

    @workflow.signal(
        name=TRIGGER_SIGNAL,
        description=(
            "Alerts and watch raises for this deployment (one or a batch): the first starts the "
            "rollback, repeats are counted"
        ),
    )
    def on_trigger(self, event: TriggerEvent | TriggerBatch) -> None:
        for one in event.events if isinstance(event, TriggerBatch) else [event]:
            self._arrive(one, None)

    @workflow.update(
        name=RAISE_UPDATE,
        description=(
            "A trigger raised by a person (CLI, Slack /rollback): answered with the rollback's "
            "verdict"
        ),
    )
    async def raise_trigger(self, event: TriggerEvent) -> TriggerReply:
        """A trigger raised by a person: answered once the rollback has judged it."""
        self._ticket += 1
        ticket = f"raise-{self._ticket}"
        self._arrive(event, ticket)
        await workflow.wait_condition(lambda: ticket in self.rb.trigger_replies)
        return self.rb.trigger_replies.pop(ticket)

    @workflow.update(
        name=DECIDE_UPDATE,
        description=(
            "Approve, deny or investigate the open decision window; authority and deadline "
            "checked, every attempt recorded"
        ),
    )
    def decide(self, inp: DecisionInput) -> DecisionReply:
        """Every attempt is recorded; one without authority, or made after the deadline, is
        refused and changes nothing."""
        return self._decide_once(inp)

    @workflow.signal(
        name=DECISION_SIGNAL,
        description=(
            "A decision stored while no worker answered; judged by when it was made, against the "
            "deadline"
        ),
    )
    def on_decision(self, inp: DecisionInput) -> None:
        if self._before_first_window() and workflow.patched(HELD_DECISIONS_PATCH):
            # Stored while no worker ran, before the trigger that opens the window was read:
            # judged (by when it was made) once the window is open, not refused as early.
            self._held.append(inp)
            return
        self._decide_once(inp)

    def _before_first_window(self) -> bool:
        """A trigger is waiting or being judged, and no window has opened yet."""
        waiting = bool(self._inbox) or self._considering
        return waiting and self.window.current is None and self.window.last is None

    @workflow.update(
        name=COMMS_UPDATE,
        description=(
            "Approve or hold the customer-communications wording (the phase's business-impact "
            "authority)"
        ),
    )
    def approve_comms(self, inp: CommsApprovalInput) -> DecisionReply:
        """Approve or hold a held audience's wording; authority checked like a decision."""
        reply = self.comms.vote(inp)
        self._changed()
        return reply

    @workflow.signal(
        name=COMMS_SIGNAL,
        description=(
            "A wording approval stored while no worker answered; judged by when it was made"
        ),
    )
    def on_comms_approval(self, inp: CommsApprovalInput) -> None:
        self.comms.vote(inp)
        self._changed()

    @workflow.update(
        name=ESCALATION_ACK_UPDATE,
        description=(
            "Acknowledge an escalation (Slack, CLI, PagerDuty): it stops climbing the escalation "
            "path"
        ),
    )
    def acknowledge_escalation(self, ack: EscalationAck) -> DecisionReply:
        """Someone has it in hand: the escalation stops climbing (a person must hold a role
        of the escalation path; PagerDuty's word, verified by the gateway, is taken)."""
        return once(self.rb.replies, ack.request_id, lambda: self._acknowledge(ack))

    @workflow.signal(
        name=ESCALATION_ACK_SIGNAL,
        description="An escalation acknowledgement stored while no worker answered",
    )
    def on_escalation_ack(self, ack: EscalationAck) -> None:
        once(self.rb.replies, ack.request_id, lambda: self._acknowledge(ack))

    def _acknowledge(self, ack: EscalationAck) -> DecisionReply:
        rb = self.rb
        problem = rb.escalations.problem(ack)
        if problem is not None:
            rb.record("escalation_ack_refused", problem, by=ack.person or ack.who or ack.via)
            return DecisionReply(accepted=False, message=problem, state=rb.status.state)
        message = rb.escalations.acknowledge(ack)
        return DecisionReply(accepted=True, message=message, state=rb.status.state)

    @workflow.query(
        name=STATUS_QUERY,
        description=(
            "The rollback: state, decision window, steps and actions, response times, escalations,"
            " timeline"
        ),
    )
    def status(self) -> RollbackStatus:
        s = self.rb.status
        return s.model_copy(
            update={
                "decision": self.window.current,
                "last_decision": self.window.last,
                "response_times": self.procedure.response_times(final=s.state in FINAL),
                "intervals": intervals(s.instants),
            }
        )

    # --- arrivals ------------------------------------------------------------------------

    def _arrive(self, event: TriggerEvent, ticket: str | None) -> None:
        rb, s = self.rb, self.rb.status
        if self._invalid is not None:
            self._answer(ticket, False, self._invalid)
            return
        now = workflow.now()
        at = min(event.received_at or now, now)
        if rb.seen(event.delivery_key):
            self._answer(ticket, True, "already recorded (the same delivery)")
            return  # a webhook retry or a repeat notification of an alert already recorded
        if s.state in ROLLING:
            self._joined(event, at)
            self._answer(ticket, True, f"joined: {rb.deployment} is already rolling back")
            return
        self._inbox.append((event, at, ticket))

    def _answer(self, ticket: str | None, accepted: bool, message: str) -> None:
        if ticket is not None:
            self.rb.trigger_replies[ticket] = TriggerReply(
                accepted=accepted, message=message, state=self.rb.status.state
            )

    def _count(self, event: TriggerEvent) -> bool:
        """Count a firing trigger; True the first time this run sees its kind."""
        received = self.rb.status.received
        if event.status != "firing":
            return False
        first = event.trigger not in received
        received[event.trigger] = received.get(event.trigger, 0) + 1
        return first

    def _joined(self, event: TriggerEvent, at: datetime) -> None:
        """A trigger while the rollback runs: counted; the first of each kind is recorded."""
        if self._count(event):
            self.rb.record(
                "trigger",
                f"{event.trigger} received ({event.source}) while rolling back: already rolling "
                "back (further ones are counted)",
                by=event.raised_by or event.source,
                at=at,
            )

    # --- the decision --------------------------------------------------------------------

    async def _await_verdict(self) -> Next:
        rb = self.rb
        while True:
            rb.messenger.check()
            while self._inbox and self.window.verdict is None:
                self._considering = True  # the trigger is off the inbox, its window not open yet
                try:
                    await self._consider(*self._inbox.pop(0))
                finally:
                    self._considering = False
            held, self._held = self._held, []
            for decision in held:
                self._decide_once(decision)
            verdict = self.window.verdict
            if verdict is not None and verdict.action == "rollback":
                for event, at, ticket in self._inbox:
                    self._joined(event, at)
                    self._answer(ticket, True, "joined: the rollback is starting")
                self._inbox.clear()
                self._adopt_verdict(verdict)
                self._close_decision(
                    "rollback approved"
                    if rb.status.mode == "manual" and not verdict.by_default
                    else self._expired("rollback")
                    if verdict.by_default
                    else "superseded: rolling back automatically"
                )
                return "rollback"
            if verdict is not None:
                self._adopt_verdict(verdict)
                self._close_decision(
                    self._expired("the canary continues")
                    if verdict.by_default
                    else "denied: canary continues"
                )
                self.window.reset()
                self._watch()
                continue
            if self.window.is_open:
                await self._wait_for_decision()
                continue
            if self._watch_until is None:
                return "continue" if self._accepted else "rejected"
            remaining = self._watch_until - workflow.now()
            if remaining <= timedelta(0):
                rb.record("watch_ended", "no new trigger during the watch: canary continues")
                return "continue"
            if self._long():
                self._handover = self._carry("after_deny", self._watch_until)
                return "handover"
            try:
                await workflow.wait_condition(
                    lambda: bool(self._inbox),
                    timeout=remaining,
                    timeout_summary="watching for new triggers",
                )
            except TimeoutError:
                rb.record("watch_ended", "no new trigger during the watch: canary continues")
                return "continue"

    def _expired(self, default: str) -> str:
        """ "no decision by 19:26 UTC — default applied: rollback": nobody approved it."""
        decision = self.window.current or self.window.last
        by = f" by {decision.deadline:%H:%M} UTC" if decision is not None else " in time"
        return f"no decision{by} — default applied: {default}"

    async def _wait_for_decision(self) -> None:
        decision = self.window.current
        assert decision is not None
        deadline = decision.deadline
        remaining = deadline - workflow.now()
        if remaining > timedelta(0):
            try:
                await workflow.wait_condition(
                    lambda: (
                        bool(self._inbox)
                        or self.window.verdict is not None
                        or decision.deadline != deadline
                    ),
                    timeout=remaining,
                    timeout_summary=f"decision window until {at_clock(deadline)}",
                )
                return
            except TimeoutError:
                pass
        note = self.window.expire(max(workflow.now(), deadline))
        if note is not None:
            self.rb.record(*note)
        self._changed()

    async def _consider(self, event: TriggerEvent, at: datetime, ticket: str | None) -> None:
        rb = self.rb
        first = self._count(event)
        if event.status == "resolved":
            if event.trigger not in self._resolved:
                self._resolved.add(event.trigger)
                rb.record(
                    "alert_resolved",
                    f"{event.trigger} resolved ({event.source}); a resolved alert never cancels "
                    "a rollback",
                    by=event.source,
                    at=at,
                )
            self._answer(ticket, True, "recorded: a resolved alert never cancels a rollback")
            return
        trigger = self.policy.triggers.get(event.trigger)
        if trigger is None:
            known = ", ".join(self.policy.triggers)
            self._refuse(ticket, f"unknown trigger {event.trigger!r} (known: {known})")
            return
        phase: int | None
        if self._split is None and auto_at_every_phase(self.policy, event.trigger):
            # Decided alike at every phase: no need to wait for the split before the stop,
            # whose own read-first gives the phase (the sender's label is the fallback).
            phase, res = None, resolve(self.policy, event.trigger, self.policy.phases[-1])
            self.rb.phase_label = event.phase
        else:
            phase = await self._phase_now(event)
            res = resolve(self.policy, event.trigger, phase)
        if res.decided_by_initiator and not (
            event.raised_by and may_decide(self.policy, event.raised_by, res.approvers)
        ):
            needed = describe_role_sets(self.policy, res.approvers)
            self._refuse(
                ticket,
                f"{trigger.name} must be raised by a {needed}; "
                f"{rb.person_name(event.raised_by)} is not one",
            )
            return
        by = f" by {rb.person_name(event.raised_by)}" if event.raised_by else ""
        reason = f": {event.reason}" if event.reason else ""
        opens = res.mode == "auto" or res.decided_by_initiator or not self.window.is_open
        if first or opens:
            at_phase = f"at {phase}%" if phase is not None else "(phase from the emergency stop)"
            rb.record(
                "trigger",
                f"{trigger.name} {at_phase} ({event.source}{by}){reason}",
                by=event.raised_by or event.source,
                at=at,
            )
        self._accepted = True
        if res.decided_by_initiator:
            assert event.raised_by is not None
            self._decide_now(event, at, phase, "manual", [event.raised_by])
            self._answer(ticket, True, f"rollback of {rb.deployment} started by {by[4:]}")
        elif res.mode == "auto":
            self._decide_now(event, at, phase, "auto", ["system"])
            self._tell_accountable(res, phase)
            self._answer(ticket, True, f"automatic rollback of {rb.deployment} started")
        elif not self.window.is_open:
            await self._open_decision(event, at, res)
            self._answer(ticket, True, f"decision window opened for {rb.deployment}")
        else:
            note = self.window.merge(event.trigger, at, res)
            if note is not None:
                rb.record(*note)
            self._changed()
            self._answer(ticket, True, "joined the open decision window")

    def _refuse(self, ticket: str | None, reason: str) -> None:
        self.rb.record("trigger_rejected", reason)
        self._answer(ticket, False, reason)

    def _decide_now(
        self,
        event: TriggerEvent,
        at: datetime,
        phase: int | None,
        mode: Literal["auto", "manual"],
        by: list[str],
    ) -> None:
        self._adopt_trigger(event, at, phase)
        self.rb.status.mode = mode
        self.window.verdict = Verdict(action="rollback", by=by, at=workflow.now())
        what = "automatic rollback" if mode == "auto" else f"rollback by {by[0]}"
        self.rb.record(
            "decision", f"{what}: {self.policy.triggers[event.trigger].name}", by=", ".join(by)
        )

    def _tell_accountable(self, res: Resolution, phase: int | None) -> None:
        """Where the system decides but the authority matrix names someone (the Engineering
        Manager for a gate failure at 50 %), they are told, mentioned, and paged if the policy's
        `escalation.page_accountable` says so."""
        rb = self.rb
        roles = sorted({r for s in res.accountable for r in s})
        if not roles or not rb.ladder:
            return
        trigger = self.policy.triggers[res.trigger].name
        at = f" at {phase}%" if phase is not None else ""
        holders = role_holders(self.policy, roles)
        names = describe_role_sets(self.policy, res.accountable)
        rb.record("accountable", f"{names} told: accountable for the automatic rollback{at}")
        rb.messenger.send(
            "accountable notice",
            RollbackActivities.tell_accountable,
            EscalationInput(
                ctx=rb.ctx("Accountable"),
                reason=f"automatic rollback of {rb.deployment}: {trigger}{at}; the plan makes "
                f"{names} accountable",
                holders=holders,
            ),
        )
        for role in roles:
            rb.escalations.page_accountable(
                f"accountable:{role}", f"automatic rollback of {rb.deployment}: {trigger}{at}", role
            )

    def _adopt_verdict(self, verdict: Verdict) -> None:
        via = "default" if verdict.by_default else self._last_via
        metering.decided(verdict.action, "system" if verdict.by == ["system"] else via)
        s = self.rb.status
        s.decided_by = verdict.by
        s.instants["decision"] = verdict.at
        if s.mode is None:
            s.mode = "manual"

    async def _open_decision(self, event: TriggerEvent, at: datetime, res: Resolution) -> None:
        rb = self.rb
        self._adopt_trigger(event, at, res.phase)
        rb.status.mode = "manual"
        rb.record(*self.window.open(event.trigger, at, res))
        self._message_changes = []  # a new message: the last one's changes are not its own
        rb.set_state("awaiting_decision")
        self._changed()
        opened = self.window.current
        if opened is not None and workflow.patched(DECISION_TARGETS_PATCH):
            latest = max(opened.deadline, opened.extend_until or opened.deadline)
            self.procedure.deadlines.watch_decision(
                lambda: self.window.current is not opened, lambda: self._ending, latest
            )
        decision = self.window.current
        assert decision is not None and res.window is not None
        trigger = self.policy.triggers[event.trigger]
        approvers = describe_role_sets(self.policy, res.approvers)
        request = DecisionRequestInput(
            ctx=rb.ctx("Decision request"),
            trigger=event.trigger,
            trigger_name=trigger.name,
            phase=res.phase,
            reason=event.reason,
            evidence=event.evidence,
            links=event.links,
            approvers=res.approvers,
            approver_text=approvers,
            deciders=role_holders(self.policy, sorted({r for s in res.approvers for r in s})),
            deadline=decision.deadline,
            default_action=res.default_action,
            can_investigate=decision.extend_until is not None,
        )
        self._request = request
        try:
            self._message = await workflow.execute_activity_method(
                RollbackActivities.request_decision,
                request,
                start_to_close_timeout=timedelta(seconds=10),
                schedule_to_close_timeout=min(res.window / 2, timedelta(minutes=1)),
                retry_policy=RetryPolicy(initial_interval=timedelta(milliseconds=500)),
                summary=rb.view.summary(f"Decision request to {approvers}"),
            )
        except ActivityError as error:
            rb.escalate(
                "decision_request",
                f"the decision request could not be posted ({describe_failure(error)}); "
                f"without a decision the default ({res.default_action}) applies at "
                f"{at_clock(decision.deadline)}",
            )

    def _close_decision(self, outcome: str) -> None:
        rb = self.rb
        note = self.window.close(outcome, workflow.now())
        if note is None:
            return
        rb.record(*note)
        message, self._message = self._message, None
        self._change_message(
            RollbackActivities.close_decision,
            DecisionClosedInput(
                ctx=rb.ctx("Decision outcome"),
                message=message,
                outcome=outcome,
                decided_by=rb.status.decided_by,
                deciders=people_refs(self.policy, rb.status.decided_by),
                at=workflow.now(),
            ),
            closing=True,
        )
        self._changed()

    def _decide_once(self, inp: DecisionInput) -> DecisionReply:
        if self._before_first_window():
            # Not kept for its request id: the same decision stored as a signal (the CLI's
            # fallback) is held and judged once the window is open.
            return self._decide(inp)
        return once(self.rb.replies, inp.request_id, lambda: self._decide(inp))

    def _decide(self, inp: DecisionInput) -> DecisionReply:
        rb = self.rb
        now = workflow.now()
        vote = self.window.vote(inp.person, inp.action, inp.via, inp.made_at or now, now)
        if vote.accepted:
            self._last_via = inp.via
        for note in vote.notes:
            rb.record(*note)
        self._changed()
        if any(note[0] == "investigating" for note in vote.notes):
            self._show_deadline(vote.message)
        message = vote.message
        if not vote.accepted and self.window.current is None and self.window.last is None:
            message = f"no decision is open for {rb.deployment} (state: {rb.status.state})"
        return DecisionReply(accepted=vote.accepted, message=message, state=rb.status.state)

    def _show_deadline(self, note: str) -> None:
        """An extension moves the deadline: the channel's decision message says so."""
        decision, request, message = self.window.current, self._request, self._message
        if not self.rb.ladder or decision is None or request is None:
            return
        self._request = request = request.model_copy(update={"deadline": decision.deadline})
        self._change_message(
            RollbackActivities.update_decision,
            DecisionUpdateInput(request=request, message=message, note=note),
        )

    def _change_message(
        self, method: Callable[[Any, Any], Awaitable[Any]], inp: Any, *, closing: bool = False
    ) -> None:
        """In the background, after the changes before it: the channel ends on the last word.
        The close supersedes changes still on their way (their retries stop; a Slack call under
        way settles first), so it is never held up by a deadline Slack was slow to show."""
        what = "decision message update"
        if not workflow.patched(ORDERED_MESSAGES_PATCH):
            self.rb.messenger.send(what, method, inp)
            return
        before = [change for change in self._message_changes if not change.done()]
        if closing:
            for change in before:
                change.cancel()

        async def in_turn() -> None:
            if before:
                await workflow.wait(before)  # a failure of theirs is on the timeline
            await self.rb.messenger.deliver(what, method, inp, supersedable=not closing)

        self._message_changes = [*before, self.rb.messenger.spawn(in_turn())]

    def _watch(self) -> None:
        s = self.rb.status
        self._watch_until = workflow.now() + self.policy.decisions.after_deny_watch
        s.mode, s.decided_by = None, []
        self.rb.set_state("continued")

    async def _phase_now(self, event: TriggerEvent) -> int:
        """The live split decides the phase; the sender's label is only a fallback."""
        treatment, error = await self._treatment_now()
        if treatment is not None:
            return phase_for_share(self.policy, treatment)
        fallback = event.phase if event.phase in self.policy.phases else None
        phase = fallback or self.policy.phases[-1]
        source = "the trigger's phase label" if fallback else "the strictest phase"
        self.rb.record(
            "phase_fallback", f"load balancer unreadable ({error}): using {source}, {phase}%"
        )
        return phase

    async def _treatment_now(self) -> tuple[int | None, str]:
        """The live treatment share (cached for a few seconds), or None and why not."""
        now = workflow.now()
        if self._split and now - self._split[0] < SPLIT_CACHE:
            return self._split[1], ""
        try:
            split = await workflow.execute_activity_method(
                RollbackActivities.read_traffic_split,
                ReadSplitInput(deployment=self.rb.deployment),
                start_to_close_timeout=timedelta(seconds=3),
                retry_policy=QUICK,
                summary=self.rb.view.summary("Read live traffic split"),
            )
        except ActivityError as error:
            return None, describe_failure(error)
        self._split = (now, split.treatment)
        return split.treatment, ""

    def _adopt_trigger(self, event: TriggerEvent, at: datetime, phase: int | None) -> None:
        s = self.rb.status
        first = s.trigger is None
        s.trigger, s.phase, s.reason = event.trigger, phase, event.reason
        s.evidence = {k[:64]: str(v)[:200] for k, v in list(event.evidence.items())[:EVIDENCE]}
        if first and self.rb.ladder:
            self.rb.messenger.spawn(self._figures_before())
        s.instants["trigger"] = at
        if first:
            metering.started(event.trigger, phase)
        self.rb.upsert(sa.TRIGGER.value_set(event.trigger))
        if phase is not None:
            self.rb.upsert(sa.CANARY_PHASE.value_set(phase))

    async def _figures_before(self) -> None:
        """Every metric as the trigger found it (beside the emergency stop, never before it):
        the "before" of the stakeholder messages."""
        read = await self.rb.messenger.call(
            "reading of the figures at the trigger",
            RollbackActivities.read_figures,
            ReadFiguresInput(deployment=self.rb.deployment),
            deadline=timedelta(seconds=30),
        )
        if read is not None:
            self.rb.status.figures_before = read.values
            self.rb.details()

    def _changed(self) -> None:
        s = self.rb.status
        s.decision, s.last_decision = self.window.current, self.window.last
        self.rb.details()

    # --- after the rollback --------------------------------------------------------------

    async def _after_rollback(self, until: datetime | None) -> None:
        """The stability watch: a trigger while treatment stays at 0 % is counted, and the
        escalation path hears of each new kind once; treatment traffic seen again is a new
        canary, and its trigger starts a new rollback at once."""
        rb = self.rb
        rb.set_state("following_up")
        if until is None:
            await self._start_follow_ups()
            until = workflow.now() + self.policy.decisions.after_rollback_watch
        while (remaining := until - workflow.now()) > timedelta(0):
            if self._long() and self.procedure.settled:
                self._handover = self._carry("after_rollback", until)
                return
            try:
                await workflow.wait_condition(
                    lambda: bool(self._inbox),
                    timeout=remaining,
                    timeout_summary="stability watch after the rollback",
                )
            except TimeoutError:
                break
            while self._inbox:
                event, at, ticket = self._inbox.pop(0)
                if await self._after_one(event, at, ticket):
                    return  # a new canary: the next run rolls it back
        rb.record("watch_ended", "stability watch after the rollback ended")

    async def _after_one(self, event: TriggerEvent, at: datetime, ticket: str | None) -> bool:
        """True when the trigger starts a new rollback (handed to the next run)."""
        rb = self.rb
        if event.status == "resolved":
            self._answer(ticket, True, "recorded")
            return False
        if event.trigger not in self.policy.triggers:
            self._refuse(ticket, f"unknown trigger {event.trigger!r}")
            return False
        treatment, unreadable = await self._treatment_now()
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
            self._answer(ticket, True, f"a new rollback of {rb.deployment} starts")
            self._inbox.insert(0, (event, at, None))
            return True
        self._count(event)
        if event.trigger not in self._seen_after:
            self._seen_after.add(event.trigger)
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
        self._answer(ticket, True, "recorded after the rollback (treatment at 0%)")
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

    # --- the end -------------------------------------------------------------------------

    def _long(self) -> bool:
        info = workflow.info()
        return info.is_continue_as_new_suggested() or (
            info.get_current_history_length() > HANDOVER_EVENTS
        )

    def _carry(self, resume: Literal["after_rollback", "after_deny"], until: datetime) -> Carried:
        self.rb.record("handover", f"history long: continuing as new ({resume} watch)")
        return Carried(
            status=self.status(),
            resume=resume,
            watch_until=until,
            deliveries=list(self.rb.deliveries),
            escalated=sorted(self.rb.escalated),
            seen_after_rollback=sorted(self._seen_after),
        )

    async def _end(self) -> RollbackStatus:
        """Every action settled, every background task and handler done; a trigger that came
        in meanwhile is handed to a new run rather than dropped."""
        rb, s = self.rb, self.rb.status
        await self.procedure.settle()
        self._ending = True  # the clocks still waiting stop: nothing they wait for will come
        if self._handover is None and s.state not in FINAL:
            rb.set_state("rolled_back" if s.outcome == "rolled back" else "incomplete")
        await rb.escalations.close(resolve=self._handover is None)
        while True:
            await rb.messenger.drain()
            await workflow.wait_condition(workflow.all_handlers_finished)
            if rb.messenger.pending == 0:
                break
        if self._inbox or self._handover is not None:
            pending = [event for event, _, _ in self._inbox]
            for _, _, ticket in self._inbox:
                self._answer(ticket, True, "taken by the next run of this rollback")
            await workflow.wait_condition(workflow.all_handlers_finished)
            if pending:
                rb.record("handover", f"{len(pending)} trigger(s) arrived at the end: a new run")
            workflow.continue_as_new(
                RollbackInput(
                    deployment=rb.deployment,
                    policy=self.policy,
                    options=rb.inp.options,
                    pending=pending,
                    carried=self._handover,
                )
            )
        return self.status()
