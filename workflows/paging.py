"""What the one incident (workflows/incident.py) and the per-reason escalations it replaced
(workflows/escalation.py, kept for runs started before the `one-incident` patch) page alike:
who on a role has a PagerDuty routing key, the accountable role's page of an automatic cell, and
an acknowledgement or resolution passed on to PagerDuty."""

from __future__ import annotations

from typing import TYPE_CHECKING

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from activities.models import PageInput
    from activities.procedure import RollbackActivities
    from contract.rollback import escalation_dedup_key
    from runbook.status import EscalationRecord

if TYPE_CHECKING:
    from runbook.policy import Policy
    from workflows.rollback_record import RollbackRecord


class Paging:
    rb: RollbackRecord
    policy: Policy

    @property
    def records(self) -> list[EscalationRecord]:
        return self.rb.status.escalations

    async def _page(self, esc: EscalationRecord, roles: list[str], stage: int) -> None:
        raise NotImplementedError

    def _page_settled(self, esc: EscalationRecord, action: str) -> str:
        """The timeline's words once PagerDuty took the acknowledgement or resolution."""
        return f"PagerDuty incident {action}d"

    def routing_keys(self, roles: list[str]) -> dict[str, str]:
        keys = {}
        for role in roles:
            for person in self.policy.people_with_role(role):
                key = self.policy.people[person].pagerduty_routing_key
                if key is not None:
                    keys[person] = key
        return keys

    def page_accountable(self, key: str, reason: str, role: str) -> None:
        """The accountable role of an automatic cell (the plan names them, nothing went wrong):
        paged apart from any escalation when the policy says so, resolved with the rollback."""
        if self.rb.status.drill or not self.policy.escalation.page_accountable:
            return
        if not self.routing_keys([role]):
            return
        now = workflow.now()
        esc = EscalationRecord(
            key=key,
            reason=reason,
            opened_at=now,
            dedup_key=escalation_dedup_key(workflow.info().workflow_id, key, now),
            told=[role],
            told_at=now,
            stage=-1,
        )
        self.records.append(esc)
        self.rb.messenger.spawn(self._page(esc, [role], 0))

    async def _send_page_action(self, esc: EscalationRecord, action: str) -> None:
        keys = {p: k for p, k in self.routing_keys(esc.told).items() if p in esc.paged}
        if not keys:
            return
        inp = PageInput(
            ctx=self.rb.ctx("Escalation"),
            action="acknowledge" if action == "acknowledge" else "resolve",
            dedup_key=esc.dedup_key,
            routing_keys=keys,
        )
        if await self.rb.messenger.deliver(f"page {action}", RollbackActivities.page, inp):
            self.rb.record("paged", self._page_settled(esc, action))
