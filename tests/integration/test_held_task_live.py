"""A worker killed while it holds a workflow task: on the dev server, Temporal gives the task
to another worker after the engine's 5 s workflow task timeout, not after its own 10 s default
(a rollback's Step 1 would wait that long; CI saw a watch's raise come 12 s late)."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from uuid import uuid4

from temporalio.api.enums.v1 import EventType
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflowservice.v1 import PollWorkflowTaskQueueRequest
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

from client import operations
from client.operations import WORKFLOW_TASK_TIMEOUT
from contract.rollback import RollbackOptions, TriggerEvent
from contract.watch import BlindSpotEvent, watch_id
from runbook.policy import Policy


async def held_then_timed_out(client: Client, workflow_id: str) -> timedelta:
    """From the task being taken to Temporal timing it out, by the history's own clock."""
    handle = client.get_workflow_handle(workflow_id)
    for _ in range(300):
        started = timed_out = None
        async for event in handle.fetch_history_events():
            if event.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_STARTED and not started:
                started = event.event_time.ToDatetime()
            if event.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_TIMED_OUT:
                timed_out = event.event_time.ToDatetime()
        if started and timed_out:
            return timed_out - started
        await asyncio.sleep(0.1)
    raise AssertionError("the held workflow task never timed out")


async def die_holding_the_first_task(client: Client, task_queue: str) -> None:
    """Take the first workflow task as a worker would, and never answer (SIGKILL)."""
    polled = await client.workflow_service.poll_workflow_task_queue(
        PollWorkflowTaskQueueRequest(
            namespace=client.namespace, task_queue=TaskQueue(name=task_queue), identity="killed"
        )
    )
    assert polled.task_token


async def test_a_rollback_task_held_by_a_killed_worker_is_given_back_after_5_s(
    local_env: WorkflowEnvironment, policy: Policy
) -> None:
    client, task_queue, d = local_env.client, f"held-{uuid4()}", f"search-{uuid4().hex[:8]}"
    handle = await operations.send_trigger(
        client,
        task_queue=task_queue,
        policy=policy,
        deployment=d,
        event=TriggerEvent(trigger="error_rate", source="alertmanager"),
    )
    await die_holding_the_first_task(client, task_queue)
    held = await held_then_timed_out(client, handle.id)
    assert WORKFLOW_TASK_TIMEOUT <= held < WORKFLOW_TASK_TIMEOUT + timedelta(seconds=1.5)
    await handle.terminate("test finished")


async def test_every_start_carries_the_task_timeout(
    local_env: WorkflowEnvironment, policy: Policy
) -> None:
    """Signal-with-start (alerts), update-with-start (a person's raise), the watch and the
    blind-spot record: each run says 5 s, and so does a run the CLI would describe."""
    client = local_env.client
    task_queue = f"nobody-{uuid4()}"  # no worker: the runs only have to exist
    alerted, raised, watched, blind = (f"search-{uuid4().hex[:8]}" for _ in range(4))
    await operations.send_trigger(
        client,
        task_queue=task_queue,
        policy=policy,
        deployment=alerted,
        event=TriggerEvent(trigger="error_rate"),
    )
    await operations.raise_trigger(
        client,
        task_queue=task_queue,
        policy=policy,
        deployment=raised,
        event=TriggerEvent(trigger="operational_anomaly", raised_by="dri-search"),
        within=timedelta(seconds=1),
    )
    await operations.start_watch(
        client, task_queue=task_queue, policy=policy, deployment=watched, options=RollbackOptions()
    )
    await operations.send_blind_spots(
        client,
        task_queue=task_queue,
        policy=policy,
        deployment=blind,
        events=[BlindSpotEvent(source="grafana", alertname="DatasourceNoData")],
    )
    # Started by the update-with-start itself (its update waits for a worker), not by the
    # signal-with-start it falls back to: the start wrote no signal before its first task.
    second = [
        e async for e in client.get_workflow_handle(f"rollback-{raised}").fetch_history_events()
    ][1]
    assert second.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_SCHEDULED, second
    ids = [f"rollback-{alerted}", f"rollback-{raised}", watch_id(watched), watch_id(blind)]
    for workflow_id in ids:
        handle = client.get_workflow_handle(workflow_id)
        described = await handle.describe()
        config = described.raw_description.execution_config
        assert config.default_workflow_task_timeout.ToTimedelta() == WORKFLOW_TASK_TIMEOUT, (
            workflow_id
        )
        await handle.terminate("test finished")
