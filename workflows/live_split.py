"""The live traffic split, as the load balancer reports it: the canary's phase at trigger time,
and whether treatment traffic came back after a rollback (a new canary)."""

from __future__ import annotations

from datetime import datetime, timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError

with workflow.unsafe.imports_passed_through():
    from activities.models import ReadSplitInput
    from activities.procedure import RollbackActivities
    from contract.rollback import TriggerEvent
    from runbook.matrix import phase_for_share
    from workflows.messenger import describe_failure
    from workflows.rollback_record import RollbackRecord

KEPT_FOR = timedelta(seconds=5)
"""An alert storm reads the load balancer once, not once per alert."""
QUICK = RetryPolicy(initial_interval=timedelta(milliseconds=200), maximum_attempts=3)


class LiveSplit:
    def __init__(self, rb: RollbackRecord) -> None:
        self.rb = rb
        self._read: tuple[datetime, int] | None = None

    @property
    def known(self) -> bool:
        return self._read is not None

    def forget(self) -> None:
        """The procedure changes the split: never judge by a read from before it."""
        self._read = None

    async def treatment(self) -> tuple[int | None, str]:
        """The live treatment share (kept a few seconds), or None and why not."""
        now = workflow.now()
        if self._read and now - self._read[0] < KEPT_FOR:
            return self._read[1], ""
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
        self._read = (now, split.treatment)
        return split.treatment, ""

    async def phase(self, event: TriggerEvent) -> int:
        """The live split decides the phase; the sender's label is only a fallback."""
        policy = self.rb.policy
        treatment, error = await self.treatment()
        if treatment is not None:
            return phase_for_share(policy, treatment)
        fallback = event.phase if event.phase in policy.phases else None
        phase = fallback or policy.phases[-1]
        source = "the trigger's phase label" if fallback else "the strictest phase"
        self.rb.record(
            "phase_fallback",
            f"load balancer unreadable ({error}): phase assumed from {source}, {phase}% — the "
            f"decision and its authority are those of {phase}%, not a phase read",
        )
        return phase
