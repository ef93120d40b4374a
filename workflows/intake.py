"""Trigger intake: alerts, the watch's raises and people's triggers as they reach a rollback.

A repeat (the same delivery key) is recorded once; a trigger while the rollback runs is counted;
anything else waits in the run's inbox until the decision takes it (`judge`). A person who
raised a trigger waits for its verdict, kept under the trigger's delivery key, so the same
trigger sent again, to this run or to the next, is answered with the same verdict.

When the run is handing over (its history is long, or it is ending and a trigger came in), a
trigger is the next run's: a person is answered at once that the next run takes it, and the
next run judges it first.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from contract.rollback import PendingTrigger, TriggerEvent, TriggerReply
    from runbook.authority import may_decide
    from runbook.identity import Refused, stamp
    from runbook.matrix import Resolution, auto_at_every_phase, describe_role_sets, resolve
    from workflows.live_split import LiveSplit
    from workflows.once import REMEMBERED
    from workflows.proving import prove, record
    from workflows.rollback_record import RollbackRecord

ROLLING = ("rolling_back", "stabilizing", "investigating")
Kind = Literal["initiator", "auto", "window"]
"""initiator: decided by whoever raised it; auto: the matrix rolls back; window: people decide."""


@dataclass
class Judged:
    """A trigger the policy takes, and how it is decided."""

    pending: PendingTrigger
    res: Resolution
    phase: int | None
    """None when the matrix rolls back at every phase: the emergency stop's read gives it."""
    kind: Kind

    @property
    def event(self) -> TriggerEvent:
        return self.pending.event

    @property
    def at(self) -> datetime:
        return self.pending.at


class Intake:
    def __init__(self, rb: RollbackRecord, split: LiveSplit, invalid: str | None) -> None:
        self.rb = rb
        self.split = split
        self.invalid = invalid
        """Set when the deployment's name breaks the rule: every trigger is refused."""
        self.handing_over = False
        self._tickets = 0

    @property
    def inbox(self) -> list[PendingTrigger]:
        return self.rb.state.inbox

    # --- arrivals ------------------------------------------------------------------------

    def arrive(self, event: TriggerEvent, ticket: str | None = None) -> None:
        rb, s = self.rb, self.rb.status
        if self.invalid is not None:
            self.answer(ticket, False, self.invalid)
            return
        now = workflow.now()
        at = min(event.received_at or now, now)
        if rb.seen(event.delivery_key):
            self.answer(ticket, True, "already recorded (the same delivery)")
            return  # a webhook retry or a repeat notification of an alert already recorded
        if s.state in ROLLING and not self.handing_over:
            self.joined(event, at)
            self.answer(ticket, True, f"joined: {rb.deployment} is already rolling back")
            return
        self.inbox.append(PendingTrigger(event=event, at=at, ticket=ticket))
        if self.handing_over:
            self._next_run(ticket)

    async def raised(self, event: TriggerEvent) -> TriggerReply:
        """A person's trigger: answered once the rollback has judged it (asked again, with the
        same delivery key, it is answered with the same verdict)."""
        verdicts = self.rb.state.verdicts
        ticket = event.delivery_key
        if ticket is None:
            self._tickets += 1
            ticket = f"raise-{workflow.info().run_id}-{self._tickets}"
        if ticket not in verdicts and not any(p.ticket == ticket for p in self.inbox):
            self.arrive(event, ticket)
        await workflow.wait_condition(lambda: ticket in verdicts)
        return verdicts[ticket]

    def answer(self, ticket: str | None, accepted: bool, message: str) -> None:
        if ticket is None:
            return
        self._keep(
            ticket, TriggerReply(accepted=accepted, message=message, state=self.rb.status.state)
        )

    def hand_over(self) -> None:
        """From now on a trigger is the next run's; whoever waits is told so at once."""
        self.handing_over = True
        for pending in self.inbox:
            self._next_run(pending.ticket)

    def _next_run(self, ticket: str | None) -> None:
        if ticket is None or ticket in self.rb.state.verdicts:
            return
        message = (
            f"this run of rollback-{self.rb.deployment} is ending: your trigger starts its next "
            "run, which judges it at once"
        )
        self._keep(
            ticket,
            TriggerReply(accepted=True, message=message, state=self.rb.status.state, next_run=True),
        )

    def _keep(self, ticket: str, reply: TriggerReply) -> None:
        verdicts = self.rb.state.verdicts
        verdicts[ticket] = reply
        while len(verdicts) > REMEMBERED:
            del verdicts[next(iter(verdicts))]

    def count(self, event: TriggerEvent) -> bool:
        """Count a firing trigger; True the first time this run sees its kind."""
        received = self.rb.status.received
        if event.status != "firing":
            return False
        first = event.trigger not in received
        received[event.trigger] = received.get(event.trigger, 0) + 1
        return first

    def joined(self, event: TriggerEvent, at: datetime) -> None:
        """A trigger while the rollback runs: counted; the first of each kind is recorded."""
        if self.count(event):
            self.rb.record(
                "trigger",
                f"{event.trigger} received ({event.source}) while rolling back: already rolling "
                "back (further ones are counted)",
                by=event.raised_by or event.source,
                at=at,
            )

    def refuse(self, ticket: str | None, reason: str) -> None:
        self.rb.record("trigger_rejected", reason)
        self.answer(ticket, False, reason)

    # --- judging one ----------------------------------------------------------------------

    async def judge(self, pending: PendingTrigger, window_open: bool) -> Judged | None:
        """The trigger against the policy: its kind, the phase (the live split), who raised
        it. None when it is only recorded (a resolved alert) or refused (answered here)."""
        rb, policy = self.rb, self.rb.policy
        event, at, ticket = pending.event, pending.at, pending.ticket
        first = self.count(event)
        if event.status == "resolved":
            if event.trigger not in rb.state.resolved:
                rb.state.resolved.append(event.trigger)
                rb.record(
                    "alert_resolved",
                    f"{event.trigger} resolved ({event.source}); a resolved alert never cancels "
                    "a rollback",
                    by=event.source,
                    at=at,
                )
            self.answer(ticket, True, "recorded: a resolved alert never cancels a rollback")
            return None
        trigger = policy.triggers.get(event.trigger)
        if trigger is None:
            known = ", ".join(policy.triggers)
            self.refuse(ticket, f"unknown trigger {event.trigger!r} (known: {known})")
            return None
        if event.raised_by is not None:
            verdict = prove(
                rb,
                "trigger",
                event.raised_by,
                event.proof,
                {
                    "rollback": "",
                    "choice": event.trigger,
                    "reason": event.reason,
                    "made_at": stamp(event.received_at or at),
                    "request_id": event.delivery_key or "",
                    "via": event.source,
                },
                arrived_now=ticket is not None,
            )
            record(rb, "trigger", event.raised_by, verdict, choice=event.trigger, at=at)
            if isinstance(verdict, Refused):
                self.refuse(ticket, f"{trigger.name} by {event.raised_by}: {verdict.reason}")
                return None
        phase: int | None
        if not self.split.known and auto_at_every_phase(policy, event.trigger):
            # Decided alike at every phase: no need to wait for the split before the stop,
            # whose own read-first gives the phase (the sender's label is the fallback).
            phase, res = None, resolve(policy, event.trigger, policy.phases[-1])
            rb.state.phase_label = event.phase
        else:
            phase = await self.split.phase(event)
            res = resolve(policy, event.trigger, phase)
        if res.decided_by_initiator and not (
            event.raised_by and may_decide(policy, event.raised_by, res.approvers)
        ):
            needed = describe_role_sets(policy, res.approvers)
            self.refuse(
                ticket,
                f"{trigger.name} must be raised by a {needed}; "
                f"{rb.person_name(event.raised_by)} is not one",
            )
            return None
        kind: Kind = (
            "initiator" if res.decided_by_initiator else "auto" if res.mode == "auto" else "window"
        )
        if first or kind != "window" or not window_open:
            by = f" by {rb.person_name(event.raised_by)}" if event.raised_by else ""
            reason = f": {event.reason}" if event.reason else ""
            at_phase = f"at {phase}%" if phase is not None else "(phase from the emergency stop)"
            rb.record(
                "trigger",
                f"{trigger.name} {at_phase} ({event.source}{by}){reason}",
                by=event.raised_by or event.source,
                at=at,
            )
        rb.state.accepted = True
        return Judged(pending, res, phase, kind)
