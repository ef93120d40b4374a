"""With no worker polling, the CLI never hangs: each call that needs one exits 1 within seconds
saying so (Temporal's task-queue description); a decision is stored durably and judged, by when
it was made, once a worker runs; an unknown deployment exits 2 everywhere."""

from __future__ import annotations

import asyncio
import os
import time
from uuid import uuid4

import pytest
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from client import operations
from contract.rollback import RollbackOptions, TriggerEvent
from runbook.policy import Policy
from runbook.status import RollbackStatus
from tests.cli.stack_helpers import rollback
from tests.conftest import ASSERTED_POLICY
from tests.workflows.standins import StandIns
from workflows.registry import WORKFLOWS

pytestmark = pytest.mark.timeout(120)


SECONDS = 60
"""Well inside the 2-minute window, whatever the machine's load: the CLI waits 5 s for a worker
and says so (a busy CI machine took 16 s to start the process and answer)."""


async def test_no_worker_means_exit_1_in_seconds_and_a_stored_decision_is_judged_later(
    local_env: WorkflowEnvironment, policy: Policy
) -> None:
    task_queue = f"nobody-{uuid4()}"
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("ROLLBACK_")},
        "ROLLBACK_TEMPORAL_ADDRESS": local_env.client.service_client.config.target_host,
        "ROLLBACK_TASK_QUEUE": task_queue,
        "ROLLBACK_POLICY": str(ASSERTED_POLICY),
    }

    async def gate_failure(deployment: str) -> None:
        """A rollback whose window no worker has opened yet."""
        await operations.send_trigger(
            local_env.client,
            task_queue=task_queue,
            policy=policy,
            deployment=deployment,
            event=TriggerEvent(trigger="gate_failure", source="test", reason="recall gate"),
            options=RollbackOptions(ui_metadata=False),
        )

    deployment = f"search-{uuid4().hex[:8]}"
    await gate_failure(deployment)

    def timed(*args: str) -> tuple[int, str, float]:
        began = time.monotonic()
        done = rollback(env, *args, timeout=90)
        return done.returncode, done.stdout + done.stderr, time.monotonic() - began

    for args in (["status", "-d", deployment], ["drill", "-d", "search-z", "--no-preflight"]):
        code, out, took = timed(*args)
        assert code == 1 and f"no worker polls task queue {task_queue!r}" in out, (args, out)
        assert took < SECONDS, (args, took)
    # Decided before any worker read the trigger (no window yet): stored, and judged once the
    # window opens, not refused as early.
    early = f"search-{uuid4().hex[:8]}"
    await gate_failure(early)
    code, out, took = timed("decide", "-d", early, "--approve", "--as", "dri-backend")
    assert code == 1 and "stored durably" in out and took < SECONDS, out
    for args in (
        ["status", "-d", "nosuch-dep"],
        ["report", "-d", "nosuch-dep"],
        ["decide", "-d", "nosuch-dep", "--approve", "--as", "dri-backend"],
    ):
        code, out, _ = timed(*args)
        assert code == 2 and "Traceback" not in out, (args, out)

    standins = StandIns(treatment=25)

    def worker() -> Worker:
        return Worker(
            local_env.client,
            task_queue=task_queue,
            workflows=WORKFLOWS,
            activities=standins.activities(),
        )

    async def state(wanted: set[str], of: str = deployment) -> RollbackStatus:
        for _ in range(100):
            status = await operations.status(local_env.client, of)
            if status.state in wanted:
                return status
            await asyncio.sleep(0.1)
        raise AssertionError(f"never {wanted}: {status.state}")

    async with worker():  # the window opens; then the worker goes away
        opened = await state({"awaiting_decision"})
        decided_early = await state({"rolling_back", "rolled_back", "following_up"}, early)
        assert decided_early.decided_by == ["dri-backend"], decided_early.timeline
        await local_env.client.get_workflow_handle(f"rollback-{early}").terminate("done")
    assert opened.decision is not None
    code, out, took = timed("decide", "-d", deployment, "--approve", "--as", "dri-backend")
    assert code == 1, out
    assert "stored durably" in out and "judged by when it was made" in out, out
    assert took < SECONDS, took
    async with worker():  # back: the stored decision is judged by when it was made
        done = await state({"rolling_back", "rolled_back", "following_up"})
        assert done.decided_by == ["dri-backend"], done.timeline
        await local_env.client.get_workflow_handle(f"rollback-{deployment}").terminate("done")
