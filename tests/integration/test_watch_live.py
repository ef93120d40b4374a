"""The canary watch end to end on the dev server: a `rollback worker` process with the real
activities reads the simulator's metrics, a fault injected into the simulator is detected after
its sustain period and the rollback starts by itself; a worker killed in the middle of the
sustain loses neither the clock nor the detection."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path
from uuid import uuid4

import pytest
from temporalio.testing import WorkflowEnvironment

from client import operations
from client.operations import WORKFLOW_TASK_TIMEOUT
from contract.rollback import RollbackOptions
from contract.watch import WatchStatus, watch_id
from runbook.policy import Policy
from runbook.status import RollbackStatus
from simulator import SimulatorServer
from tests.integration.conftest import Rig
from tests.integration.test_faults_live import wait_for, worker_process
from tests.policies import edited
from tests.workflows.helpers import terminate_rollback

pytestmark = pytest.mark.timeout(90)

SHORT_WATCH = {"watch.interval": "1s", "triggers.error_rate.sustain": "8s"}


async def test_a_fault_is_detected_after_its_sustain_and_a_killed_worker_keeps_the_clock(
    local_env: WorkflowEnvironment,
    policy: Policy,
    simulator: SimulatorServer,
    redis_url: str,
    tmp_path: Path,
) -> None:
    task_queue = f"watch-{uuid4()}"
    policy = edited(policy, SHORT_WATCH)
    rig = Rig(local_env.client, task_queue, policy, simulator, None, f"search-{uuid4().hex[:8]}")  # type: ignore[arg-type]
    d = rig.deployment
    client = local_env.client
    await rig.target("POST", "/deployments", {"name": d, "treatment": 25})

    async def watch() -> WatchStatus:
        return await operations.watch_status(client, d)

    async def condition_state(state: str) -> bool:
        try:
            current = await watch()
        except Exception:
            return False
        return any(c.id == "error_rate" and c.state == state for c in current.conditions)

    with worker_process(local_env, simulator, redis_url, task_queue, tmp_path / "w.log") as worker:
        worker.start()
        await operations.start_watch(
            client,
            task_queue=task_queue,
            policy=policy,
            deployment=d,
            options=RollbackOptions(ui_metadata=True),
        )
        await wait_for(lambda: condition_state("healthy"), timeout=30)
        await rig.target("POST", f"/faults/{d}", {"treatment_error_rate": 0.05})
        injected = datetime.now(UTC)
        await wait_for(lambda: condition_state("breaching"))
        await asyncio.sleep(2)
        worker.kill()  # in the middle of the 8 s sustain
        killed = datetime.now(UTC)
        await asyncio.sleep(2)
        worker.start()

        async def rolled_back() -> RollbackStatus | None:
            try:
                status = await operations.status(client, d)
            except Exception:
                return None
            return status if status.outcome == "rolled back" else None

        status = await wait_for(rolled_back, timeout=40)

        async def idle() -> WatchStatus | None:
            current = await watch()
            return current if current.treatment == 0 else None

        current = await wait_for(idle)  # rolled back: the watch idles, nothing more to raise
        await client.get_workflow_handle(watch_id(d)).terminate("test finished")
        await terminate_rollback(client, d)

    assert status.trigger == "error_rate" and status.drill is False
    evidence = status.evidence
    assert evidence["condition"] == "error_rate"
    since = datetime.fromisoformat(evidence["breaching_since"].replace("Z", "+00:00"))
    # The clock started before the kill and survived it: not restarted by the new worker.
    assert injected.replace(microsecond=0) <= since < killed
    raised_at = status.instants["trigger"]
    assert (raised_at - since).total_seconds() >= 8.0
    # Raised within one interval of the period's end, plus the time nobody read: the 2 s the
    # worker was down, then at most the workflow task it died holding (5 s; Temporal's own
    # default was 10 s) and its successor's start.
    down = 2.0 + WORKFLOW_TASK_TIMEOUT.total_seconds() + 2.0
    assert (raised_at - since).total_seconds() < 8.0 + 1.0 + down

    assert [r.trigger for r in current.raised] == ["error_rate"]
    assert {c.state for c in current.conditions} == {"idle"}
