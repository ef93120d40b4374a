"""One incident per rollback: every reason of the run (a step over budget, a failed step, a missed
target, a refused action, a new trigger kind after the rollback) joins the same incident — one
PagerDuty alert (one `dedup_key` per rollback run, updated with each reason's summary and custom
details) and one Slack escalation thread that grows.

The incident climbs `escalation_path` once: the first role is told and paged; nobody
acknowledging within `escalation.ack_within` makes it the next role's. An acknowledgement
covers the reasons that come after it: they are told (in the thread, and in PagerDuty's alert)
to whoever acknowledged, not climbed again — unless a reason is of a kind the policy says climbs
again (`escalation.climb_again_for`, by default a Phase 1 action refused or given up: traffic
may still be on the canary). The incident is resolved when the procedure has ended with every
Phase 1 action confirmed and no step failed; an incomplete rollback keeps it open, saying what
is missing, until the run's end.

Replaces workflows/escalation.py for runs started with the `one-incident` patch.
"""

from __future__ import annotations

import contextlib
from datetime import timedelta
from typing import TYPE_CHECKING

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from activities.models import EscalationInput, EscalationResult, PageInput
    from activities.procedure import RollbackActivities
    from contract.rollback import EscalationAck, escalation_dedup_key
    from runbook.durations import format_duration, spoken
    from runbook.status import EscalationRecord, IncidentReason
    from workflows.paging import Paging
    from workflows.people import role_holders

if TYPE_CHECKING:
    from workflows.rollback_record import RollbackRecord

INCIDENT = "incident"
"""The key an incident goes by (an acknowledgement may name it, a reason's key, or `all`)."""
REASONS_KEPT = 30


class Incident(Paging):
    def __init__(self, rb: RollbackRecord) -> None:
        self.rb = rb
        self.policy = rb.policy
        self.path = rb.policy.escalation_path
        self.closed = False

    @property
    def current(self) -> EscalationRecord | None:
        """The incident still open (not resolved), if any."""
        return next(
            (e for e in reversed(self.records) if e.key == INCIDENT and e.resolved_at is None),
            None,
        )

    # --- reasons ------------------------------------------------------------------------

    def open(self, key: str, reason: str) -> None:
        """A reason: it opens the incident, or joins the open one."""
        rb, now = self.rb, workflow.now()
        if not self.path:
            return
        if self.closed:
            self._tell(reason, self.path[:1], "the rollback has ended: told, not climbed", None)
            return
        esc = self.current
        if esc is None:
            esc = EscalationRecord(
                key=INCIDENT,
                reason=reason,
                opened_at=now,
                dedup_key=escalation_dedup_key(workflow.info().workflow_id, INCIDENT, now),
            )
            esc.reasons.append(IncidentReason(key=key, text=reason, at=now))
            self.records.append(esc)
            self._announce(esc, 0, reason)
            rb.messenger.spawn(self._climb(esc, page_first=True))
            return
        esc.reasons.append(IncidentReason(key=key, text=reason, at=now))
        del esc.reasons[:-REASONS_KEPT]
        esc.reason = reason
        kind = key.split(":", 1)[0]
        if esc.acked_at is not None and kind in self.policy.escalation.climb_again_for:
            what = f"{kind} is a reason the policy climbs again for"
            rb.record("escalation_stage", f"incident climbs again: {what} ({key})")
            esc.acked_at = esc.acked_by = esc.acked_via = None
            self._announce(esc, 0, reason)
            rb.messenger.spawn(self._climb(esc, page_first=True))
            return
        if esc.acked_at is not None:
            who = esc.acked_by or "whoever acknowledged"
            why = f"acknowledged by {who}: told, not climbed again"
            roles = esc.told[-1:] or self.path[:1]
        else:
            why = f"joins the open incident ({self.policy.role_name(self.path[esc.stage])} has it)"
            roles = [self.path[esc.stage]]
        rb.record("escalation_stage", f"{reason}: {why}")
        self._tell(reason, roles, why, esc)
        rb.messenger.spawn(self._page(esc, roles, esc.stage, update=True))
        rb.details()

    def resume(self) -> None:
        """After continue-as-new: the open incident's climb goes on where it stood."""
        esc = self.current
        if esc is not None and esc.acked_at is None and esc.stage >= 0:
            self.rb.messenger.spawn(self._climb(esc, page_first=False))

    async def _climb(self, esc: EscalationRecord, page_first: bool) -> None:
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
                        timeout_summary="incident: acknowledgement",
                    )
            if self._stopped(esc):
                return
            self._announce(esc, esc.stage + 1, esc.reason)
            await self._page(esc, [self.path[esc.stage]], esc.stage)

    def _stopped(self, esc: EscalationRecord) -> bool:
        return self.closed or esc.acked_at is not None or esc.resolved_at is not None

    def _announce(self, esc: EscalationRecord, stage: int, reason: str) -> None:
        rb = self.rb
        role = self.path[stage]
        esc.stage, esc.told_at = stage, workflow.now()
        esc.told.append(role)
        ack_within = format_duration(self.policy.escalation.ack_within)
        if rb.status.drill:
            why = "drill: the first role only, nobody paged"
        elif stage == 0:
            nxt = self.policy.role_name(self.path[1]) if len(self.path) > 1 else "nobody else"
            why = f"acknowledge within {ack_within}, or {nxt} is told"
        else:
            why = f"not acknowledged within {ack_within}: {self.policy.role_name(role)} now"
        rb.record("escalation_stage", f"{self.policy.role_name(role)} told: {why} (incident)")
        rb.details()
        self._tell(reason, [role], why, esc)

    def _tell(self, reason: str, roles: list[str], why: str, esc: EscalationRecord | None) -> None:
        """In Slack: the incident's first message, then replies in its thread."""
        rb = self.rb
        inp = EscalationInput(
            ctx=rb.ctx("Escalation"),
            reason=reason,
            holders=role_holders(self.policy, roles),
            key=INCIDENT if esc is not None and esc.acked_at is None else None,
            stage_text=why,
            thread_ts=esc.thread_ts if esc is not None else None,
        )

        async def told() -> None:
            result: EscalationResult | None = await rb.messenger.call(
                "escalation", RollbackActivities.escalate, inp
            )
            if result is not None and esc is not None and esc.thread_ts is None and result.ts:
                esc.thread_ts = result.ts

        rb.messenger.spawn(told())

    async def _page(
        self, esc: EscalationRecord, roles: list[str], stage: int, update: bool = False
    ) -> None:
        """A trigger event with the incident's one dedup key: a new page, or, for a reason that
        joins, the alert's summary and details brought up to date."""
        keys = self.routing_keys(roles)
        if not keys or self.rb.status.drill or self.closed or esc.resolved_at is not None:
            return
        rb, s = self.rb, self.rb.status
        reasons = esc.reasons or [IncidentReason(key=INCIDENT, text=esc.reason, at=esc.opened_at)]
        details = {
            "deployment": rb.deployment,
            "reasons": "\n".join(f"{r.at:%H:%M:%S} UTC {r.text}" for r in reasons),
            "reason_count": str(len(reasons)),
            "stage": f"{stage + 1} of {len(self.path)}: {self.policy.role_name(roles[0])}",
            "trigger": s.trigger or "",
            "phase": f"{s.phase}%" if s.phase is not None else "unknown",
            "state": s.state,
            "outcome": s.outcome or "",
            "acknowledge": f"rollback ack -d {rb.deployment} --escalation {INCIDENT}",
        }
        count = f" (+{len(reasons) - 1} more)" if len(reasons) > 1 else ""
        inp = PageInput(
            ctx=rb.ctx("Escalation"),
            action="trigger",
            dedup_key=esc.dedup_key,
            routing_keys=keys,
            summary=f"[{rb.deployment}] rollback incident: {esc.reason}{count}"[:1000],
            severity=self.policy.escalation.severity,
            custom_details=details,
        )
        result = await rb.messenger.call("page", RollbackActivities.page, inp)
        if result is None:
            return
        new = [p for p in result.paged if p not in esc.paged]
        esc.paged += new
        if new and not update:
            rb.record("paged", f"paged {', '.join(rb.person_name(p) for p in new)}")
        if esc.resolved_at is not None:
            rb.messenger.spawn(self._send_page_action(esc, "resolve"))
        elif esc.acked_at is not None and not update:
            rb.messenger.spawn(self._send_page_action(esc, "acknowledge"))
        for skipped in result.skipped:
            rb.record("page_skipped", f"not paged: {skipped}")
        rb.details()

    # --- acknowledging ------------------------------------------------------------------

    def open_records(self, key: str | None) -> list[EscalationRecord]:
        esc = self.current
        return [esc] if esc is not None and esc.acked_at is None else []

    def problem(self, ack: EscalationAck) -> str | None:
        if ack.person is not None:
            roles = self.policy.roles_of(ack.person)
            allowed = set(self.path) | {r for e in self.records for r in e.told}
            if not roles & allowed:
                names = ", ".join(self.policy.role_name(r) for r in self.path)
                return (
                    f"{self.rb.person_name(ack.person)} holds no role of the escalation path "
                    f"({names})"
                )
        esc = self.current
        if esc is None:
            return f"no open incident for {self.rb.deployment}"
        keys = {INCIDENT, "all", *(r.key for r in esc.reasons)}
        if ack.key is not None and ack.key not in keys:
            known = ", ".join(sorted(keys - {"all"}))
            return f"no escalation {ack.key!r} for {self.rb.deployment} (escalations: {known})"
        return None

    def acknowledge(self, ack: EscalationAck) -> str:
        rb = self.rb
        esc = self.current
        assert esc is not None
        who = rb.person_name(ack.person) if ack.person else (ack.who or ack.via)
        if esc.acked_at is not None:
            by = rb.person_name(esc.acked_by) if esc.acked_by in rb.policy.people else esc.acked_by
            return (
                f"the incident of {rb.deployment} was already acknowledged by {by} via "
                f"{esc.acked_via}"
            )
        at = min(ack.made_at or workflow.now(), workflow.now())
        esc.acked_at, esc.acked_by, esc.acked_via = at, ack.person or ack.who, ack.via
        rb.record(
            "escalation_ack",
            f"incident acknowledged by {who} via {ack.via} after {spoken(at - esc.opened_at)}: "
            f"{len(esc.reasons)} reason(s); later reasons are told to them, not climbed",
            by=ack.person or ack.who or ack.via,
            at=at,
        )
        if esc.paged:
            rb.messenger.spawn(self._send_page_action(esc, "acknowledge"))
        rb.details()
        rb.progress(f"Incident of {rb.deployment} acknowledged by {who} via {ack.via}")
        return f"acknowledged the incident of {rb.deployment}: it stops climbing"

    # --- resolving ----------------------------------------------------------------------

    def resolve(self, why: str) -> None:
        """The rollback is done: the open incident is resolved, in PagerDuty and its thread,
        and the accountable pages with it."""
        rb = self.rb
        for esc in [e for e in self.records if e.resolved_at is None]:
            esc.resolved_at = workflow.now()
            if esc.paged:
                rb.messenger.spawn(self._send_page_action(esc, "resolve"))
            if esc.key == INCIDENT:
                rb.record("escalation_resolved", f"incident resolved: {why}")
                roles = esc.told[-1:] or self.path[:1]
                self._tell(f"✅ Resolved: {why}", roles, "resolved", esc)
        rb.details()

    async def close(self, resolve: bool) -> None:
        """The run ends (`resolve`) or hands over: no climb goes on in this run."""
        self.closed = True
        if resolve:
            self.resolve("the rollback's run has ended")
