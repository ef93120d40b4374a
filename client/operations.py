"""Client-side calls on a rollback, shared by the CLI and the gateway."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from temporalio.client import Client, WorkflowExecutionStatus, WorkflowHandle
from temporalio.common import WorkflowIDConflictPolicy
from temporalio.service import RPCError, RPCStatusCode

from contract.follow_ups import ACK_UPDATE, FollowUpAck, follow_ups_id
from contract.rollback import (
    COMMS_UPDATE,
    DECIDE_UPDATE,
    ROLLBACK_WORKFLOW,
    STATUS_QUERY,
    TRIGGER_SIGNAL,
    CommsApprovalInput,
    DecisionInput,
    DecisionReply,
    RollbackInput,
    RollbackOptions,
    TriggerEvent,
    workflow_id,
)
from runbook.policy import Policy
from runbook.status import RollbackStatus


async def send_trigger(
    client: Client,
    *,
    task_queue: str,
    policy: Policy,
    deployment: str,
    event: TriggerEvent,
    options: RollbackOptions | None = None,
) -> WorkflowHandle[Any, RollbackStatus]:
    """Signal-with-start: the first trigger starts the rollback, every later one joins it."""
    options = options or RollbackOptions()
    summary = f"Rollback of {deployment}{' (drill)' if options.drill else ''}: {event.trigger}"
    return await client.start_workflow(
        ROLLBACK_WORKFLOW,
        RollbackInput(deployment=deployment, policy=policy, options=options),
        id=workflow_id(deployment),
        task_queue=task_queue,
        id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
        start_signal=TRIGGER_SIGNAL,
        start_signal_args=[event],
        static_summary=summary if options.ui_metadata else None,
        result_type=RollbackStatus,
    )


async def decide(
    client: Client, deployment: str, decision: DecisionInput, update_id: str | None = None
) -> DecisionReply:
    """`update_id` makes a repeated call (a double click) count once."""
    handle = client.get_workflow_handle(workflow_id(deployment))
    return await handle.execute_update(
        DECIDE_UPDATE, decision, id=update_id, result_type=DecisionReply
    )


async def status(client: Client, deployment: str) -> RollbackStatus:
    handle = client.get_workflow_handle(workflow_id(deployment))
    return await handle.query(STATUS_QUERY, result_type=RollbackStatus)


async def approve_comms(
    client: Client, deployment: str, approval: CommsApprovalInput, update_id: str | None = None
) -> DecisionReply:
    """Approve or hold a held audience's wording; `update_id` makes a double click count once."""
    handle = client.get_workflow_handle(workflow_id(deployment))
    return await handle.execute_update(
        COMMS_UPDATE, approval, id=update_id, result_type=DecisionReply
    )


async def acknowledge_follow_up(
    client: Client, follow_ups_workflow_id: str, ack: FollowUpAck, update_id: str | None = None
) -> DecisionReply:
    """Acknowledge one follow-up on the follow-ups workflow (`find_follow_ups` finds its id)."""
    handle = client.get_workflow_handle(follow_ups_workflow_id)
    return await handle.execute_update(ACK_UPDATE, ack, id=update_id, result_type=DecisionReply)


@dataclass(frozen=True)
class FollowUpsRun:
    workflow_id: str
    running: bool
    started: datetime | None = None


async def find_follow_ups(client: Client, deployment: str) -> list[FollowUpsRun]:
    """The deployment's follow-ups workflows, the one to act on first.

    The running rollback names its own (`follow_ups_id` in its status); once it has closed,
    or when it is a newer rollback without follow-ups yet, visibility lists them by ID:
    running before closed, newest first.
    """
    named = await _named_by_rollback(client, deployment)
    if named is not None:
        return [FollowUpsRun(named, running=True)]
    if not _SAFE.match(deployment):
        return []
    prefix = f"{follow_ups_id(deployment)}-"
    shape = re.compile(re.escape(prefix) + r"\d{8}T\d{6}$")
    query = f'WorkflowType = "FollowUpsWorkflow" AND WorkflowId STARTS_WITH "{prefix}"'
    found = [
        FollowUpsRun(
            wf.id, running=wf.status == WorkflowExecutionStatus.RUNNING, started=wf.start_time
        )
        async for wf in client.list_workflows(query, limit=100)
        if shape.match(wf.id)
    ]
    return sorted(found, key=lambda run: (not run.running, -_epoch(run.started)))


_SAFE = re.compile(r"^[A-Za-z0-9._-]+$")


async def _named_by_rollback(client: Client, deployment: str) -> str | None:
    handle = client.get_workflow_handle(workflow_id(deployment))
    try:
        description = await handle.describe()
        if description.status != WorkflowExecutionStatus.RUNNING:
            return None
        current = await handle.query(STATUS_QUERY, result_type=RollbackStatus)
    except RPCError as error:
        if error.status == RPCStatusCode.NOT_FOUND:
            return None
        raise
    return current.follow_ups_id


def _epoch(at: datetime | None) -> float:
    return at.timestamp() if at is not None else 0.0
