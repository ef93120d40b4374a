"""Staged escalation along the policy's `escalation_path`: one incident per rollback and reason.

The first role is told (Slack, with an Acknowledge button) and paged (PagerDuty, for each of its
people with a routing key); if nobody acknowledges within `escalation.ack_within`, the next role
is, then the next. An acknowledgement (Slack, `rollback ack --escalation`, PagerDuty's webhook)
stops the climb; the rollback's end resolves every page it opened. A drill tells the first role
only, marked as a drill, and pages nobody.

Everything lives in `RollbackStatus.escalations`, so a run that continues as new resumes each
climb where it stood.
"""

from __future__ import annotations

import contextlib
from datetime import timedelta
from typing import TYPE_CHECKING

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from activities.models import EscalationInput, PageInput
    from activities.procedure import RollbackActivities
    from contract.rollback import EscalationAck, escalation_dedup_key
    from runbook.durations import format_duration, spoken
    from runbook.status import EscalationRecord
    from workflows.paging import Paging
    from workflows.people import role_holders

if TYPE_CHECKING:
    from workflows.rollback_record import RollbackRecord

OPEN_INCIDENTS = 48
"""Reasons are few (a step, an action, a target, a trigger kind); past this many, a new reason
is told to the whole path at once, without a ladder of its own."""


class Escalations(Paging):
    def __init__(self, rb: RollbackRecord) -> None:
        self.rb = rb
        self.policy = rb.policy
        self.path = rb.policy.escalation_path
        self.closed = False

    # --- opening and climbing -------------------------------------------------------------

    def open(self, key: str, reason: str) -> None:
        """A new incident for `key` (the caller escalates each key once)."""
        rb = self.rb
        now = workflow.now()
        if self.closed:
            self._tell(None, reason, self.path[:1], "the rollback has ended: told, not climbed")
            return
        if len(self.records) >= OPEN_INCIDENTS or not self.path:
            self._tell(None, reason, list(self.path), "")
            return  # told to the whole path at once (no ladder, no page)
        esc = EscalationRecord(
            key=key,
            reason=reason,
            opened_at=now,
            dedup_key=escalation_dedup_key(workflow.info().workflow_id, key, now),
        )
        self.records.append(esc)
        self._announce(esc, 0)  # told at once: a rollback that ends now still tells
        rb.messenger.spawn(self._climb(esc, page_first=True))

    def resume(self) -> None:
        """After continue-as-new: every climb still open goes on where it stood."""
        for esc in self.records:
            if esc.stage >= 0 and esc.acked_at is None and esc.resolved_at is None:
                self.rb.messenger.spawn(self._climb(esc, page_first=False))

    async def _climb(self, esc: EscalationRecord, page_first: bool) -> None:
        """Page the role just told; then, while nobody acknowledges, the next one."""
        if page_first:
            await self._page(esc, [self.path[esc.stage]], esc.stage)
        ack_within = self.policy.escalation.ack_within
        while not self.rb.status.drill and esc.stage + 1 < len(self.path):
            told_at = esc.told_at or workflow.now()
            remaining = told_at + ack_within - workflow.now()
            if remaining > timedelta(0):
                with contextlib.suppress(TimeoutError):
                    await workflow.wait_condition(
                        lambda: self._stopped(esc),
                        timeout=remaining,
                        timeout_summary=f"escalation {esc.key}: acknowledgement",
                    )
            if self._stopped(esc):
                return
            self._announce(esc, esc.stage + 1)
            await self._page(esc, [self.path[esc.stage]], esc.stage)

    def _stopped(self, esc: EscalationRecord) -> bool:
        return self.closed or esc.acked_at is not None

    def _announce(self, esc: EscalationRecord, stage: int) -> None:
        """Tell the stage's role in Slack (with the Acknowledge button)."""
        rb = self.rb
        role = self.path[stage]
        esc.stage, esc.told_at = stage, workflow.now()
        esc.told.append(role)
        ack_within = format_duration(self.policy.escalation.ack_within)
        if rb.status.drill:
            why = "drill: the first role only, nobody paged"
        elif stage == 0:
            why = f"acknowledge within {ack_within}, or {self._next_name(stage)} is told"
        else:
            why = f"not acknowledged within {ack_within}: {self.policy.role_name(role)} now"
        rb.record("escalation_stage", f"{self.policy.role_name(role)} told: {why} ({esc.key})")
        rb.details()
        self._tell(esc.key, esc.reason, [role], why)

    def _next_name(self, stage: int) -> str:
        if stage + 1 < len(self.path):
            return self.policy.role_name(self.path[stage + 1])
        return "nobody else"

    def _tell(self, key: str | None, reason: str, roles: list[str], why: str) -> None:
        rb = self.rb
        inp = EscalationInput(
            ctx=rb.ctx("Escalation"),
            reason=reason,
            holders=role_holders(self.policy, roles),
            key=key,
            stage_text=why,
        )
        rb.messenger.send("escalation", RollbackActivities.escalate, inp)

    async def _page(self, esc: EscalationRecord, roles: list[str], stage: int) -> None:
        keys = self.routing_keys(roles)
        if not keys or self.rb.status.drill or self.closed:
            return
        rb = self.rb
        s = rb.status
        inp = PageInput(
            ctx=rb.ctx("Escalation"),
            action="trigger",
            dedup_key=esc.dedup_key,
            routing_keys=keys,
            summary=f"[{rb.deployment}] rollback escalation: {esc.reason}",
            severity=self.policy.escalation.severity,
            custom_details={
                "deployment": rb.deployment,
                "reason": esc.reason,
                "stage": f"{stage + 1} of {len(self.path)}: {self.policy.role_name(roles[0])}",
                "trigger": s.trigger or "",
                "phase": f"{s.phase}%" if s.phase is not None else "unknown",
                "state": s.state,
                "outcome": s.outcome or "",
                "acknowledge": f"rollback ack -d {rb.deployment} --escalation {esc.key}",
            },
        )
        result = await rb.messenger.call("page", RollbackActivities.page, inp)
        if result is None:
            return  # on the timeline: "page could not be sent: …"
        esc.paged += [p for p in result.paged if p not in esc.paged]
        if result.paged:
            rb.record("paged", f"paged {', '.join(rb.person_name(p) for p in result.paged)}")
            if esc.resolved_at is not None:  # the rollback ended while the page was on its way
                rb.messenger.spawn(self._send_page_action(esc, "resolve"))
            elif esc.acked_at is not None:
                # Acknowledged while the page was on its way: PagerDuty must hear it too.
                rb.messenger.spawn(self._send_page_action(esc, "acknowledge"))
        for skipped in result.skipped:
            rb.record("page_skipped", f"not paged: {skipped}")
        rb.details()

    # --- acknowledging --------------------------------------------------------------------

    def open_records(self, key: str | None) -> list[EscalationRecord]:
        return [
            e
            for e in self.records
            if (key is None or e.key == key) and e.acked_at is None and e.resolved_at is None
        ]

    def problem(self, ack: EscalationAck) -> str | None:
        """Why an acknowledgement is refused (None: accepted)."""
        if ack.person is not None:
            roles = self.policy.roles_of(ack.person)
            allowed = set(self.path) | {r for e in self.records for r in e.told}
            if not roles & allowed:
                names = ", ".join(self.policy.role_name(r) for r in self.path)
                return (
                    f"{self.rb.person_name(ack.person)} holds no role of the escalation path "
                    f"({names})"
                )
        if not self.open_records(ack.key):
            if self._echo(ack):
                return None  # PagerDuty telling us of our own acknowledgement: taken, no-op
            keys = ", ".join(e.key for e in self.records) or "none"
            what = f"escalation {ack.key!r}" if ack.key else "open escalation"
            return f"no {what} for {self.rb.deployment} (escalations: {keys})"
        return None

    def _echo(self, ack: EscalationAck) -> bool:
        """A PagerDuty acknowledgement of an escalation already acknowledged (our own
        acknowledge event, or a second person's)."""
        return ack.via == "pagerduty" and any(
            e.key == ack.key and e.acked_at is not None for e in self.records
        )

    def acknowledge(self, ack: EscalationAck) -> str:
        rb = self.rb
        at = min(ack.made_at or workflow.now(), workflow.now())
        who = rb.person_name(ack.person) if ack.person else (ack.who or ack.via)
        acked = self.open_records(ack.key)
        if not acked and self._echo(ack):
            [esc] = [e for e in self.records if e.key == ack.key][-1:]
            by = rb.person_name(esc.acked_by) if esc.acked_by in rb.policy.people else esc.acked_by
            return (
                f"{ack.key} of {rb.deployment} was already acknowledged by {by} via {esc.acked_via}"
            )
        for esc in acked:
            esc.acked_at, esc.acked_by, esc.acked_via = at, ack.person or ack.who, ack.via
            took = spoken(at - esc.opened_at)
            rb.record(
                "escalation_ack",
                f"escalation acknowledged by {who} via {ack.via} after {took}: {esc.reason}",
                by=ack.person or ack.who or ack.via,
                at=at,
            )
            # One person's PagerDuty acknowledgement leaves the others' incidents open (one per
            # routing key): acknowledge them all (PagerDuty takes a repeat as a no-op).
            if esc.paged:
                rb.messenger.spawn(self._send_page_action(esc, "acknowledge"))
        rb.details()
        keys = ", ".join(e.key for e in acked)
        rb.progress(f"Escalation of {rb.deployment} ({keys}) acknowledged by {who} via {ack.via}")
        return f"acknowledged {keys} for {rb.deployment}: the escalation stops climbing"

    def resolve(self, why: str) -> None:
        """One escalation per reason: its pages are resolved at the run's end (`close`)."""

    # --- the end --------------------------------------------------------------------------

    async def close(self, resolve: bool) -> None:
        """Stop every climb; at the rollback's end (`resolve`), resolve the pages it opened."""
        self.closed = True
        if not resolve:
            return
        now = workflow.now()
        for esc in self.records:
            if esc.resolved_at is None:
                esc.resolved_at = now
                if esc.paged:
                    self.rb.messenger.spawn(self._send_page_action(esc, "resolve"))
        self.rb.details()

    def _page_settled(self, esc: EscalationRecord, action: str) -> str:
        return f"PagerDuty incident {action}d: {esc.key}"  # one incident per reason here
