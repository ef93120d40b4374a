"""From triggers to a verdict: each trigger judged (workflows/intake.py), an automatic rollback at
once, a decision window when people decide (workflows/decision_window.py holds its rules),
votes from the update or its stored signal, the default when the deadline passes, and after a
deny the canary watched for `after_deny_watch`.

Everything it knows is in the run's state (the open window is the status's `decision`), so a
long history hands over in the middle of a window and the next run goes on where it stood.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Literal

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from activities.models import EscalationInput, ReadFiguresInput
    from activities.procedure import RollbackActivities
    from contract.rollback import DecisionInput, DecisionReply, PendingTrigger, TriggerEvent
    from runbook.authority import may_decide
    from runbook.identity import Refused, Verified, stamp
    from runbook.matrix import Resolution, describe_role_sets
    from runbook.status import ExtendedDecision
    from workflows import metering
    from workflows import search_attributes as sa
    from workflows.deadlines import Deadlines
    from workflows.decision_message import DecisionMessages
    from workflows.decision_window import DecisionWindow, Verdict, at_clock
    from workflows.handover import history_long
    from workflows.intake import Intake, Judged
    from workflows.once import once
    from workflows.people import role_holders
    from workflows.proving import prove, record
    from workflows.rollback_record import RollbackRecord

Next = Literal["rollback", "continue", "rejected", "handover"]


class Deciding:
    def __init__(self, rb: RollbackRecord, intake: Intake, deadlines: Deadlines) -> None:
        self.rb = rb
        self.policy = rb.policy
        self.intake = intake
        self.deadlines = deadlines
        self.window = DecisionWindow(rb.policy, rb.person_name, rb.status)
        self.messages = DecisionMessages(rb, self.window)
        self.considering = False
        """A trigger is off the inbox and being judged; no window has opened for it yet."""
        self.ending = False
        """The run is ending: the clocks still waiting stop (nothing they wait for will come)."""

    def resume(self) -> None:
        """After continue-as-new: an open window's clocks run on; the figures at the trigger
        are read if the last run had no time to."""
        opened = self.window.current
        if opened is not None and self.window.verdict is None:
            self._watch_decision_targets()
        if self.rb.status.trigger is not None and not self.rb.status.figures_before:
            self.rb.messenger.spawn(self._figures_before())

    # --- the loop ------------------------------------------------------------------------

    async def verdict(self) -> Next:
        rb, state = self.rb, self.rb.state
        state.stage = "verdict"
        while True:
            rb.messenger.check()
            while state.inbox and self.window.verdict is None:
                self.considering = True
                try:
                    await self._consider(state.inbox.pop(0))
                finally:
                    self.considering = False
            held, state.held = state.held, []
            for decision in held:
                self.decide(decision)
            verdict = self.window.verdict
            if verdict is not None and verdict.action == "rollback":
                for pending in state.inbox:
                    self.intake.joined(pending.event, pending.at)
                    self.intake.answer(pending.ticket, True, "joined: the rollback is starting")
                state.inbox.clear()
                self._adopt(verdict)
                self.messages.close(
                    "rollback approved"
                    if rb.status.mode == "manual" and not verdict.by_default
                    else self._expired("rollback")
                    if verdict.by_default
                    else "superseded: rolling back automatically"
                )
                return "rollback"
            if verdict is not None:
                self._adopt(verdict)
                self.messages.close(
                    self._expired("the canary continues")
                    if verdict.by_default
                    else "denied: canary continues"
                )
                self.window.reset()
                self._watch_after_deny()
                continue
            if history_long(rb.inp.options.handover_events):
                return "handover"
            if self.window.is_open:
                await self._wait_for_decision()
                continue
            if state.watch_until is None:
                return "continue" if state.accepted else "rejected"
            remaining = state.watch_until - workflow.now()
            if remaining <= timedelta(0):
                rb.record("watch_ended", "no new trigger during the watch: canary continues")
                return "continue"
            try:
                await workflow.wait_condition(
                    lambda: bool(state.inbox),
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
                        bool(self.rb.state.inbox)
                        or self.window.verdict is not None
                        or decision.deadline != deadline
                        or history_long(self.rb.inp.options.handover_events)
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

    async def _consider(self, pending: PendingTrigger) -> None:
        judged = await self.intake.judge(pending, self.window.is_open)
        if judged is None:
            return
        rb, ticket = self.rb, pending.ticket
        if judged.kind == "initiator":
            raised_by = judged.event.raised_by
            assert raised_by is not None
            self._decide_now(judged, "manual", [raised_by])
            self.intake.answer(
                ticket, True, f"rollback of {rb.deployment} started by {rb.person_name(raised_by)}"
            )
        elif judged.kind == "auto":
            self._decide_now(judged, "auto", ["system"])
            self._tell_accountable(judged.res, judged.phase)
            self.intake.answer(ticket, True, f"automatic rollback of {rb.deployment} started")
        elif not self.window.is_open:
            await self._open(judged)
            self.intake.answer(ticket, True, f"decision window opened for {rb.deployment}")
        else:
            note = self.window.merge(judged.event.trigger, judged.at, judged.res)
            if note is not None:
                rb.record(*note)
            self._changed()
            self.intake.answer(ticket, True, "joined the open decision window")

    # --- votes ---------------------------------------------------------------------------

    def before_first_window(self) -> bool:
        """A trigger is waiting or being judged, and no window has opened yet."""
        waiting = bool(self.rb.state.inbox) or self.considering
        return waiting and self.window.current is None and self.window.last is None

    def stored(self, inp: DecisionInput) -> None:
        """A decision stored while no worker answered (the signal)."""
        if self.before_first_window():
            # Stored before the trigger that opens the window was read: judged (by when it
            # was made) once the window is open, not refused as early.
            self.rb.state.held.append(inp)
            return
        self.decide(inp, arrived_now=False)

    def decide(self, inp: DecisionInput, arrived_now: bool = True) -> DecisionReply:
        if self.before_first_window():
            # Not kept for its request id: the same decision stored as a signal (the CLI's
            # fallback) is held and judged once the window is open.
            return self._vote(inp, arrived_now)
        return once(self.rb.state.replies, inp.request_id, lambda: self._vote(inp, arrived_now))

    def _refused(self, inp: DecisionInput, reason: str) -> DecisionReply:
        rb = self.rb
        label = f"{inp.action} by {rb.person_name(inp.person)} via {inp.via}"
        rb.record("decision_rejected", f"{label} rejected: {reason}", by=inp.person)
        self._changed()
        return DecisionReply(accepted=False, message=reason, state=rb.status.state)

    def _problem(self, inp: DecisionInput) -> str | None:
        """What makes a decision unusable before its author is even checked: a deny or an
        investigation without a reason, a click on another message than the open window's."""
        rb = self.rb
        if (
            inp.action in ("deny", "investigating")
            and not inp.reason.strip()
            and rb.policy.identity is not None
        ):
            flag = "--deny" if inp.action == "deny" else "--investigating"
            return f"a {inp.action} needs its reason: {flag} --reason TEXT (Slack asks for it)"
        posted = rb.state.decision_message
        clicked = inp.via == "slack" and inp.message and posted is not None
        if clicked and posted is not None and inp.message != f"{posted.channel}/{posted.ts}":
            return (
                "this button is on another message than the open decision's: nothing was "
                "counted (use the buttons of the current request)"
            )
        return None

    def _may_count(self, inp: DecisionInput) -> bool:
        """An open window and one of its approvers: only then is the act itself checked
        (otherwise the window refuses it, and says why)."""
        decision = self.window.current
        return (
            self.window.is_open
            and decision is not None
            and inp.person in self.policy.people
            and may_decide(self.policy, inp.person, decision.approvers)
        )

    def _proven(self, inp: DecisionInput, made: datetime, arrived_now: bool) -> Verified | Refused:
        """Who decided, proven, against the window it was made for (a CLI that could not read
        the window signs none, bound to the window open when it is judged; a Slack click is
        bound to its message instead, which `_problem` checks)."""
        rb, decision = self.rb, self.window.current
        window = stamp(decision.opened_at) if decision is not None else ""
        verdict = prove(
            rb,
            "decide",
            inp.person,
            inp.proof,
            {
                "window": window,
                "choice": inp.action,
                "reason": inp.reason,
                "made_at": stamp(inp.made_at or made),
                "request_id": inp.request_id or "",
                "via": inp.via,
                "message": inp.message,
            },
            {"window": {window, ""}},
            arrived_now=arrived_now,
        )
        record(rb, "decide", inp.person, verdict, choice=inp.action, reason=inp.reason, at=made)
        return verdict

    def _vote(self, inp: DecisionInput, arrived_now: bool = True) -> DecisionReply:
        rb = self.rb
        now = workflow.now()
        made = min(inp.made_at or now, now)
        proven = "asserted"  # unless checked below: the window refuses it (closed, not theirs)
        if self._may_count(inp):
            problem = self._problem(inp)
            if problem is not None:
                return self._refused(inp, problem)
            verdict = self._proven(inp, made, arrived_now)
            if isinstance(verdict, Refused):
                return self._refused(inp, verdict.reason)
            proven = verdict.label()
        vote = self.window.vote(
            inp.person, inp.action, inp.via, made, now, proven=proven, reason=inp.reason
        )
        if vote.accepted:
            rb.state.last_via = inp.via
        for note in vote.notes:
            rb.record(*note)
        self._changed()
        if any(note[0] == "investigating" for note in vote.notes):
            self.messages.show_deadline(vote.message)
            opened = self.window.current
            if rb.v20 and opened is not None:
                rb.status.decision_extended = ExtendedDecision(
                    until=opened.deadline, by=rb.person_name(inp.person), phase=opened.phase
                )
        message = vote.message
        if not vote.accepted and self.window.current is None and self.window.last is None:
            message = f"no decision is open for {rb.deployment} (state: {rb.status.state})"
        return DecisionReply(accepted=vote.accepted, message=message, state=rb.status.state)

    # --- verdicts ------------------------------------------------------------------------

    def _decide_now(self, judged: Judged, mode: Literal["auto", "manual"], by: list[str]) -> None:
        self._adopt_trigger(judged.event, judged)
        self.rb.status.mode = mode
        self.window.verdict = Verdict(action="rollback", by=by, at=workflow.now())
        what = "automatic rollback" if mode == "auto" else f"rollback by {by[0]}"
        self.rb.record(
            "decision",
            f"{what}: {self.policy.triggers[judged.event.trigger].name}",
            by=", ".join(by),
        )

    def _adopt(self, verdict: Verdict) -> None:
        via = "default" if verdict.by_default else self.rb.state.last_via
        metering.decided(verdict.action, "system" if verdict.by == ["system"] else via)
        s = self.rb.status
        s.decided_by = verdict.by
        s.instants["decision"] = verdict.at
        if s.mode is None:
            s.mode = "manual"

    def _watch_after_deny(self) -> None:
        s = self.rb.status
        self.rb.state.watch_until = workflow.now() + self.policy.decisions.after_deny_watch
        s.mode, s.decided_by = None, []
        self.rb.set_state("continued")

    async def _open(self, judged: Judged) -> None:
        rb = self.rb
        self._adopt_trigger(judged.event, judged)
        rb.status.mode = "manual"
        if rb.v20:
            rb.status.decision_extended = None  # an extension is its own window's
        rb.record(*self.window.open(judged.event.trigger, judged.at, judged.res))
        rb.set_state("awaiting_decision")
        self._changed()
        self._watch_decision_targets()
        await self.messages.post(judged.res, judged.event.links)

    def _watch_decision_targets(self) -> None:
        """Targets that end at the decision escalate while its window is still open."""
        opened = self.window.current
        if opened is None:
            return
        latest = max(opened.deadline, opened.extend_until or opened.deadline)
        self.deadlines.watch_decision(
            lambda: self.window.current is not opened, lambda: self.ending, latest
        )

    def _adopt_trigger(self, event: TriggerEvent, judged: Judged) -> None:
        s = self.rb.status
        first = s.trigger is None
        s.trigger, s.phase, s.reason = event.trigger, judged.phase, event.reason
        s.evidence = {k[:64]: str(v)[:200] for k, v in list(event.evidence.items())[:EVIDENCE]}
        if first:
            self.rb.messenger.spawn(self._figures_before())
        s.instants["trigger"] = judged.at
        breach = event.breach_started_at
        if breach is not None and breach.tzinfo is None:  # a sender's time without a zone: UTC
            breach = breach.replace(tzinfo=timezone.utc)  # noqa: UP017 (module state)
        if breach is not None:  # the earliest breach known; never after the trigger itself
            breach = min(breach, judged.at, s.instants.get("breach", judged.at))
            s.instants["breach"] = breach
        if first:
            metering.started(event.trigger, judged.phase)
        self.rb.upsert(sa.TRIGGER.value_set(event.trigger))
        if judged.phase is not None:
            self.rb.upsert(sa.CANARY_PHASE.value_set(judged.phase))

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

    def _tell_accountable(self, res: Resolution, phase: int | None) -> None:
        """Where the system decides but the authority matrix names someone (the Engineering
        Manager for a gate failure at 50 %), they are told, mentioned, and paged if the policy's
        `escalation.page_accountable` says so."""
        rb = self.rb
        roles = sorted({r for s in res.accountable for r in s})
        if not roles:
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

    def _changed(self) -> None:
        self.rb.details()


EVIDENCE = 20
"""An alert's evidence kept in the status: its first 20 labels and values."""
