"""A decision from Slack, delivered so that it is never silently lost."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from temporalio.client import (
    WorkflowHandle,
    WorkflowUpdateFailedError,
    WorkflowUpdateRPCTimeoutOrCancelledError,
    WorkflowUpdateStage,
)
from temporalio.service import RPCError, RPCStatusCode

from gateway.temporal_link import TemporalLink, TemporalUnavailable
from runbook.messages import (
    DECIDE_UPDATE,
    DECISION_SIGNAL,
    DecisionInput,
    DecisionReply,
    workflow_id,
)

ANSWER_WITHIN = timedelta(seconds=2)


async def deliver_decision(link: TemporalLink, deployment: str, decision: DecisionInput) -> str:
    """Try the update (an immediate answer); when no worker answers, store it as a signal.

    Both carry the same request id, so a decision delivered both ways counts once.
    """
    try:
        client = await link.client()
    except TemporalUnavailable as error:
        return (
            f"⚠️ Your decision was NOT recorded: {error}. Try again in a moment, or run "
            f"`rollback decide -d {deployment} --{decision.action} --as {decision.person}`."
        )
    handle = client.get_workflow_handle(workflow_id(deployment))
    try:
        update = await handle.start_update(
            DECIDE_UPDATE,
            decision,
            id=decision.request_id,
            result_type=DecisionReply,
            wait_for_stage=WorkflowUpdateStage.COMPLETED,
            rpc_timeout=ANSWER_WITHIN,
        )
        reply = await update.result(rpc_timeout=ANSWER_WITHIN)
    except (WorkflowUpdateRPCTimeoutOrCancelledError, TimeoutError):
        return await _store(handle, decision, deployment)
    except WorkflowUpdateFailedError as error:
        return f"⚠️ The rollback could not take your decision: {error.cause}"
    except RPCError as error:
        if error.status == RPCStatusCode.NOT_FOUND:
            return f"No rollback is running for {deployment}: nothing was recorded."
        if error.status == RPCStatusCode.DEADLINE_EXCEEDED:
            return await _store(handle, decision, deployment)
        return f"⚠️ Your decision was NOT recorded: Temporal answered {error.message}"
    mark = "✅" if reply.accepted else "⛔"
    return f"{mark} {reply.message}"


async def _store(handle: WorkflowHandle[Any, Any], decision: DecisionInput, deployment: str) -> str:
    try:
        await handle.signal(DECISION_SIGNAL, decision, rpc_timeout=ANSWER_WITHIN)
    except RPCError as error:
        return f"⚠️ Your decision was NOT recorded: Temporal answered {error.message}"
    return (
        f"🕓 Recorded for {deployment}: no rollback worker is answering right now, so your "
        "decision was stored durably. It will be checked against the authority matrix and "
        "applied when a worker returns; the outcome will appear in the channel."
    )
