"""Client-side calls on a rollback, shared by the CLI and the gateway."""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from temporalio.client import (
    Client,
    WithStartWorkflowOperation,
    WorkflowExecutionStatus,
    WorkflowHandle,
)
from temporalio.common import WorkflowIDConflictPolicy
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.service import RPCError, RPCStatusCode

from client import answers
from contract.follow_ups import ACK_UPDATE, FollowUpAck, follow_ups_id
from contract.rollback import (
    COMMS_UPDATE,
    DECIDE_UPDATE,
    ESCALATION_ACK_UPDATE,
    RAISE_UPDATE,
    ROLLBACK_WORKFLOW,
    STATUS_QUERY,
    TRIGGER_SIGNAL,
    CommsApprovalInput,
    DecisionInput,
    DecisionReply,
    EscalationAck,
    RollbackInput,
    RollbackOptions,
    TriggerBatch,
    TriggerEvent,
    TriggerReply,
    deployment_problem,
    workflow_id,
)
from contract.watch import (
    BLIND_SPOT_SIGNAL,
    EVALUATE_SIGNAL,
    STOP_SIGNAL,
    WATCH_STATUS_QUERY,
    WATCH_WORKFLOW,
    BlindSpotEvent,
    WatchInput,
    WatchStatus,
    watch_id,
)
from runbook.policy import Policy
from runbook.status import RollbackStatus

WORKFLOW_TASK_TIMEOUT = timedelta(seconds=5)
"""How long Temporal waits for a workflow task a worker took before giving it to another: a
worker killed while it held one delays its rollback (or watch) this long, not Temporal's 10 s
default. Our workflow tasks take milliseconds (a storm's slowest, a few hundred); a continued
run inherits it."""


def start_options(
    *, task_queue: str, policy: Policy, deployment: str, options: RollbackOptions, trigger: str
) -> dict[str, Any]:
    """What starts a rollback: the policy travels here, once, and never with a later signal."""
    summary = f"Rollback of {deployment}{' (drill)' if options.drill else ''}: {trigger}"
    return {
        "id": workflow_id(deployment),
        "task_queue": task_queue,
        "id_conflict_policy": WorkflowIDConflictPolicy.USE_EXISTING,
        "static_summary": summary if options.ui_metadata else None,
        "task_timeout": WORKFLOW_TASK_TIMEOUT,
    }


async def send_trigger(
    client: Client,
    *,
    task_queue: str,
    policy: Policy,
    deployment: str,
    event: TriggerEvent | TriggerBatch,
    options: RollbackOptions | None = None,
    rpc_timeout: timedelta | None = None,
) -> WorkflowHandle[Any, RollbackStatus]:
    """A trigger (or a batch) to the deployment's rollback: a plain signal when it runs (no
    policy on the wire), signal-with-start when it does not."""
    options = options or RollbackOptions()
    try:
        return await signal_running(client, deployment, event, rpc_timeout=rpc_timeout)
    except RPCError as error:
        if error.status != RPCStatusCode.NOT_FOUND:
            raise
    first = event.events[0].trigger if isinstance(event, TriggerBatch) else event.trigger
    try:
        return await client.start_workflow(
            ROLLBACK_WORKFLOW,
            RollbackInput(deployment=deployment, policy=policy, options=options),
            start_signal=TRIGGER_SIGNAL,
            start_signal_args=[event],
            result_type=RollbackStatus,
            rpc_timeout=rpc_timeout,
            **start_options(
                task_queue=task_queue,
                policy=policy,
                deployment=deployment,
                options=options,
                trigger=first,
            ),
        )
    except WorkflowAlreadyStartedError:
        # Started by a concurrent sender between our two calls (the time-skipping server
        # answers a racing signal-with-start so): it runs, so a signal joins it.
        return await signal_running(client, deployment, event, rpc_timeout=rpc_timeout)


async def signal_running(
    client: Client,
    deployment: str,
    event: TriggerEvent | TriggerBatch,
    rpc_timeout: timedelta | None = None,
) -> WorkflowHandle[Any, RollbackStatus]:
    """A trigger (or a batch) to the rollback that runs; RPCError NOT_FOUND when none does."""
    handle = client.get_workflow_handle(workflow_id(deployment), result_type=RollbackStatus)
    await handle.signal(TRIGGER_SIGNAL, event, rpc_timeout=rpc_timeout)
    return handle


async def send_blind_spots(
    client: Client,
    *,
    task_queue: str,
    policy: Policy,
    deployment: str,
    events: list[BlindSpotEvent],
    options: RollbackOptions | None = None,
    rpc_timeout: timedelta | None = None,
) -> None:
    """Blind spots to the deployment's canary watch; one that fires while none runs starts a
    watch that only records the outage (it never reads metrics or rolls back)."""
    handle = client.get_workflow_handle(watch_id(deployment))
    try:
        for event in events:
            await handle.signal(BLIND_SPOT_SIGNAL, event, rpc_timeout=rpc_timeout)
        return
    except RPCError as error:
        if error.status != RPCStatusCode.NOT_FOUND:
            raise
    firing = [e for e in events if e.status == "firing"]
    if not firing:
        raise RPCError("no canary watch runs", RPCStatusCode.NOT_FOUND, b"")
    options = options or RollbackOptions()
    started = await client.start_workflow(
        WATCH_WORKFLOW,
        WatchInput(deployment=deployment, policy=policy, options=options, evaluate=False),
        id=watch_id(deployment),
        task_queue=task_queue,
        id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
        start_signal=BLIND_SPOT_SIGNAL,
        start_signal_args=[firing[0]],
        static_summary=f"Monitoring blind spot of {deployment}" if options.ui_metadata else None,
        task_timeout=WORKFLOW_TASK_TIMEOUT,
        rpc_timeout=rpc_timeout,
    )
    for event in events[1:]:
        await started.signal(BLIND_SPOT_SIGNAL, event, rpc_timeout=rpc_timeout)


@dataclass(frozen=True)
class WatchStart:
    workflow_id: str
    started: bool
    """False: a watch was already running (now evaluating, if it only recorded blind spots)."""


async def start_watch(
    client: Client,
    *,
    task_queue: str,
    policy: Policy,
    deployment: str,
    options: RollbackOptions | None = None,
) -> WatchStart:
    """The deployment's canary watch, started if none runs; one a blind-spot alert started is
    told to judge the canary too."""
    options = options or RollbackOptions()
    try:
        handle = await client.start_workflow(
            WATCH_WORKFLOW,
            WatchInput(deployment=deployment, policy=policy, options=options),
            id=watch_id(deployment),
            task_queue=task_queue,
            static_summary=f"Canary watch of {deployment}" if options.ui_metadata else None,
            task_timeout=WORKFLOW_TASK_TIMEOUT,
        )
    except WorkflowAlreadyStartedError:
        await client.get_workflow_handle(watch_id(deployment)).signal(EVALUATE_SIGNAL)
        return WatchStart(workflow_id=watch_id(deployment), started=False)
    return WatchStart(workflow_id=handle.id, started=True)


async def stop_watch(client: Client, deployment: str) -> None:
    await client.get_workflow_handle(watch_id(deployment)).signal(STOP_SIGNAL)


@dataclass(frozen=True)
class Raised:
    """A person's trigger: the rollback's answer, or None when it was stored for later."""

    reply: TriggerReply | None
    run_id: str


ANSWER_WITHIN = timedelta(seconds=5)
"""How long a person waits for the rollback's verdict before the trigger is stored instead."""


async def raise_trigger(
    client: Client,
    *,
    task_queue: str,
    policy: Policy,
    deployment: str,
    event: TriggerEvent,
    options: RollbackOptions | None = None,
    within: timedelta = ANSWER_WITHIN,
    no_worker: bool = False,
) -> Raised:
    """Update-with-start: the trigger starts (or joins) the rollback and the rollback says
    whether it took it (a run that is ending hands it to its next run, whose verdict comes
    back). When no worker answers in time, the same trigger is stored as a signal (its delivery
    key makes the two count once) and `reply` is None."""
    options = options or RollbackOptions()
    if event.delivery_key is None:
        event = event.model_copy(update={"delivery_key": f"{event.source}:{uuid.uuid4()}"})

    def start() -> WithStartWorkflowOperation[Any, RollbackStatus]:
        return WithStartWorkflowOperation(
            ROLLBACK_WORKFLOW,
            RollbackInput(deployment=deployment, policy=policy, options=options),
            result_type=RollbackStatus,
            **start_options(
                task_queue=task_queue,
                policy=policy,
                deployment=deployment,
                options=options,
                trigger=event.trigger,
            ),
        )

    async def store() -> str:
        handle = await send_trigger(
            client,
            task_queue=task_queue,
            policy=policy,
            deployment=deployment,
            event=event,
            options=options,
        )
        return handle.result_run_id or ""

    result = await answers.answer_or_store(
        client,
        answers.Call(
            workflow_id=workflow_id(deployment),
            update=RAISE_UPDATE,
            signal=TRIGGER_SIGNAL,
            message=event,
            result_type=TriggerReply,
            start=start,
            store=store,
        ),
        no_worker=no_worker,
        within=within,
    )
    if isinstance(result, answers.Stored):
        return Raised(None, result.run_id)
    return Raised(result.reply, result.run_id)


async def decide(
    client: Client, deployment: str, decision: DecisionInput, update_id: str | None = None
) -> DecisionReply:
    """`update_id` makes a repeated call (a double click) count once; the decision is stamped
    with the moment it was made, which is what the window's deadline is judged against."""
    handle = client.get_workflow_handle(workflow_id(deployment))
    return await handle.execute_update(
        DECIDE_UPDATE, answers.stamped(decision), id=update_id, result_type=DecisionReply
    )


async def status(
    client: Client, deployment: str, rpc_timeout: timedelta | None = None
) -> RollbackStatus:
    handle = client.get_workflow_handle(workflow_id(deployment))
    return await handle.query(STATUS_QUERY, result_type=RollbackStatus, rpc_timeout=rpc_timeout)


async def watch_status(
    client: Client, deployment: str, rpc_timeout: timedelta | None = None
) -> WatchStatus:
    handle = client.get_workflow_handle(watch_id(deployment))
    return await handle.query(WATCH_STATUS_QUERY, result_type=WatchStatus, rpc_timeout=rpc_timeout)


async def approve_comms(
    client: Client, deployment: str, approval: CommsApprovalInput, update_id: str | None = None
) -> DecisionReply:
    """Approve or hold a held audience's wording; `update_id` makes a double click count once."""
    handle = client.get_workflow_handle(workflow_id(deployment))
    return await handle.execute_update(
        COMMS_UPDATE, answers.stamped(approval), id=update_id, result_type=DecisionReply
    )


async def acknowledge_escalation(
    client: Client, deployment: str, ack: EscalationAck, update_id: str | None = None
) -> DecisionReply:
    """Stop an escalation's climb (`ack.key`, or every open one of the rollback)."""
    handle = client.get_workflow_handle(workflow_id(deployment))
    return await handle.execute_update(
        ESCALATION_ACK_UPDATE, answers.stamped(ack), id=update_id, result_type=DecisionReply
    )


async def acknowledge_follow_up(
    client: Client, follow_ups_workflow_id: str, ack: FollowUpAck, update_id: str | None = None
) -> DecisionReply:
    """Acknowledge one follow-up on the follow-ups workflow (`find_follow_ups` finds its id)."""
    handle = client.get_workflow_handle(follow_ups_workflow_id)
    return await handle.execute_update(
        ACK_UPDATE, answers.stamped(ack), id=update_id, result_type=DecisionReply
    )


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
    if deployment_problem(deployment) is not None:
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
