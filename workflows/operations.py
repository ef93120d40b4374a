"""Client-side calls on a rollback, shared by the CLI and the gateway."""

from __future__ import annotations

from temporalio.client import Client, WorkflowHandle
from temporalio.common import WorkflowIDConflictPolicy

from runbook.messages import (
    DECIDE_UPDATE,
    STATUS_QUERY,
    TRIGGER_SIGNAL,
    DecisionInput,
    DecisionReply,
    RollbackInput,
    RollbackOptions,
    RollbackStatus,
    TriggerEvent,
    workflow_id,
)
from runbook.policy import Policy
from workflows.rollback import RollbackWorkflow


async def send_trigger(
    client: Client,
    *,
    task_queue: str,
    policy: Policy,
    deployment: str,
    event: TriggerEvent,
    options: RollbackOptions | None = None,
) -> WorkflowHandle[RollbackWorkflow, RollbackStatus]:
    """Signal-with-start: the first trigger starts the rollback, every later one joins it."""
    options = options or RollbackOptions()
    summary = f"Rollback of {deployment}{' (drill)' if options.drill else ''}: {event.trigger}"
    return await client.start_workflow(
        RollbackWorkflow.run,
        RollbackInput(deployment=deployment, policy=policy, options=options),
        id=workflow_id(deployment),
        task_queue=task_queue,
        id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
        start_signal=TRIGGER_SIGNAL,
        start_signal_args=[event],
        static_summary=summary if options.ui_metadata else None,
    )


async def decide(
    client: Client, deployment: str, decision: DecisionInput, update_id: str | None = None
) -> DecisionReply:
    """`update_id` makes a repeated call (a double click) count once."""
    handle = client.get_workflow_handle_for(RollbackWorkflow.run, workflow_id(deployment))
    return await handle.execute_update(
        DECIDE_UPDATE, decision, id=update_id, result_type=DecisionReply
    )


async def status(client: Client, deployment: str) -> RollbackStatus:
    handle = client.get_workflow_handle(workflow_id(deployment))
    return await handle.query(STATUS_QUERY, result_type=RollbackStatus)
