"""Terse helpers: a worker with stand-ins, a trigger, a decision, and "assert eventually"."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from uuid import uuid4

from temporalio.client import Client, WorkflowHandle
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from client import operations
from contract.rollback import DecisionInput, DecisionReply, RollbackOptions, TriggerEvent
from runbook.policy import Policy
from runbook.status import RollbackStatus
from tests.workflows.standins import StandIns
from workflows.registry import WORKFLOWS
from workflows.rollback import RollbackWorkflow

QUERY_ATTEMPT = timedelta(seconds=5)
"""One status query's wait; `until` asks again after it."""


@dataclass
class Rig:
    client: Client
    task_queue: str
    policy: Policy
    standins: StandIns
    deployment: str
    ui_metadata: bool
    handle: WorkflowHandle[RollbackWorkflow, RollbackStatus] | None = None
    handover_events: int = 2_000
    """The run hands over past this many history events (small: at a moment a test picks)."""
    clock: Callable[[], Awaitable[datetime]] | None = None
    """The server's clock: what a person's decision is stamped with."""

    async def trigger(
        self, trigger: str, phase: int | None = None, **fields: object
    ) -> WorkflowHandle[RollbackWorkflow, RollbackStatus]:
        handle = await operations.send_trigger(
            self.client,
            task_queue=self.task_queue,
            policy=self.policy,
            deployment=self.deployment,
            event=TriggerEvent(trigger=trigger, phase=phase, **fields),  # type: ignore[arg-type]
            options=self.options(),
        )
        if handle.result_run_id is not None or self.handle is None:
            # The run a trigger started: `result()` follows it through continue-as-new.
            self.handle = handle
        return handle

    def options(self) -> RollbackOptions:
        return RollbackOptions(ui_metadata=self.ui_metadata, handover_events=self.handover_events)

    async def decide(
        self, action: str, person: str, update_id: str | None = None, reason: str | None = None
    ) -> DecisionReply:
        """Stamped with the server's clock (the time-skipping server's runs ahead of ours); a
        deny or an investigation says why unless `reason` is given ("" for none)."""
        made_at = await self.clock() if self.clock else None
        if reason is None:
            reason = "" if action == "approve" else f"{action}: checked by the test"
        decision = DecisionInput(
            action=action,  # type: ignore[arg-type]
            person=person,
            made_at=made_at,
            request_id=update_id,
            reason=reason,
        )
        return await operations.decide(self.client, self.deployment, decision, update_id)

    async def status(self) -> RollbackStatus:
        # A query the test server loses is asked again within seconds, not after its deadline.
        return await operations.status(self.client, self.deployment, rpc_timeout=QUERY_ATTEMPT)

    async def until(
        self,
        check: Callable[[RollbackStatus], bool],
        timeout: float = 30.0,  # noqa: ASYNC109
    ) -> RollbackStatus:
        """Assert eventually: poll the status query until `check` holds (a condition, so a
        generous bound costs nothing when the machine is fast)."""
        deadline = asyncio.get_running_loop().time() + timeout
        current: RollbackStatus | str | None = None
        while True:
            try:
                status = await self.status()
                if check(status):
                    return status
                current = status
            except Exception as error:  # not started yet, or the query failed: say which
                current = f"query failed: {type(error).__name__}: {error}"
            if asyncio.get_running_loop().time() > deadline:
                raise AssertionError(f"condition not met in {timeout}s; last status: {current}")
            await asyncio.sleep(0.05)

    def worker(self) -> Worker:
        """A worker on the rig's task queue (`async with r.worker(): …`)."""
        return Worker(
            self.client,
            task_queue=self.task_queue,
            workflows=WORKFLOWS,
            activities=self.standins.activities(),
            # A stopped worker holds its workflows this long (10 s by default), as in production.
            sticky_queue_schedule_to_start_timeout=timedelta(seconds=1),
        )

    async def result(self) -> RollbackStatus:
        """The handle from the last trigger: on the time-skipping server it skips while waiting."""
        assert self.handle is not None, "no trigger sent yet"
        return await self.handle.result()


@asynccontextmanager
async def rig(
    env: WorkflowEnvironment,
    policy: Policy,
    standins: StandIns | None = None,
    *,
    ui_metadata: bool = False,
    worker: bool = True,
    handover_events: int = 2_000,
) -> AsyncIterator[Rig]:
    """A deployment's rollback with a worker of stand-ins (`worker=False`: start and stop it
    with `Rig.worker()`, to see what happens while none runs)."""
    standins = standins or StandIns()
    task_queue = f"tq-{uuid4()}"
    r = Rig(env.client, task_queue, policy, standins, f"search-{uuid4().hex[:8]}", ui_metadata)
    r.handover_events = handover_events
    r.clock = env.get_current_time
    # A workflow left waiting on a timer would hold the time-skipping server's clock once its
    # worker is gone: end it (with a worker there to answer the status query that finds its
    # follow-ups).
    if worker:
        async with r.worker():
            try:
                yield r
            finally:
                await terminate_rollback(env.client, r.deployment)
    else:
        try:
            yield r
        finally:
            async with r.worker():
                await terminate_rollback(env.client, r.deployment)


def kinds(status: RollbackStatus) -> list[str]:
    return [entry.kind for entry in status.timeline]


async def terminate_rollback(client: Client, deployment: str) -> None:
    """End a test's rollback and its follow-ups, so no timer of theirs outlives the test."""
    handle = client.get_workflow_handle(f"rollback-{deployment}")
    with contextlib.suppress(Exception):
        follow_ups = (await operations.status(client, deployment)).follow_ups_id
        if follow_ups:
            await client.get_workflow_handle(follow_ups).terminate("test finished")
    with contextlib.suppress(Exception):
        await handle.terminate("test finished")
