"""Calls that need a worker, bounded in time: whether a worker polls the task queue (Temporal's
task-queue description), a query that gives up, and a person's word (a decision, a wording
approval, an acknowledgement) answered by the workflow or, when no worker answers, stored
durably as a signal and judged later by when it was made.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from pydantic import BaseModel
from temporalio.api.enums.v1 import TaskQueueKind, TaskQueueType
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflowservice.v1 import DescribeTaskQueueRequest
from temporalio.client import (
    Client,
    WorkflowHandle,
    WorkflowUpdateRPCTimeoutOrCancelledError,
    WorkflowUpdateStage,
)
from temporalio.service import RPCError, RPCStatusCode

from contract.rollback import DecisionReply

WITHIN = timedelta(seconds=5)
"""How long a call waits for a worker before it says none answered."""
POLL_FRESH = timedelta(seconds=75)
"""A poller seen this recently is a live worker (a long poll lasts up to about a minute)."""

M = TypeVar("M", bound=BaseModel)


@dataclass(frozen=True)
class Workers:
    task_queue: str
    live: int
    last_seen: datetime | None
    """The most recent poll of any worker, live or not (None: never seen)."""

    @property
    def none(self) -> bool:
        return self.live == 0

    def explain(self) -> str:
        seen = (
            f"last poll {self.last_seen:%H:%M:%S} UTC"
            if self.last_seen is not None
            else "no poll seen"
        )
        return (
            f"no worker polls task queue {self.task_queue!r} ({seen}, Temporal's task-queue "
            "description); start one: `rollback worker` (or `rollback up`)"
        )


async def workers(client: Client, task_queue: str) -> Workers:
    """Who polls the task queue for workflow tasks, by Temporal's own account."""
    answer = await client.workflow_service.describe_task_queue(
        DescribeTaskQueueRequest(
            namespace=client.namespace,
            task_queue=TaskQueue(name=task_queue, kind=TaskQueueKind.TASK_QUEUE_KIND_NORMAL),
            task_queue_type=TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW,
        ),
        timeout=WITHIN,
    )
    now = datetime.now(UTC)
    seen = [
        p.last_access_time.ToDatetime(tzinfo=UTC)
        for p in answer.pollers
        if p.HasField("last_access_time")
    ]
    live = sum(1 for at in seen if now - at <= POLL_FRESH)
    return Workers(task_queue, live, max(seen, default=None))


@dataclass(frozen=True)
class Stored:
    """No worker answered: the word was stored durably as a signal, to be judged later."""

    made_at: datetime


async def update_or_store(
    handle: WorkflowHandle[Any, Any],
    update: str,
    signal: str,
    message: M,
    *,
    no_worker: bool,
    within: timedelta = WITHIN,
) -> DecisionReply | Stored:
    """The workflow's verdict, or, when no worker answers within `within` (at once when
    `no_worker`), the same message stored as a signal with the same request id (the workflow
    counts the two once) and the moment it was made, against which its deadline is judged."""
    fields: dict[str, Any] = {}
    if getattr(message, "made_at", None) is None:
        fields["made_at"] = datetime.now(UTC)
    if getattr(message, "request_id", None) is None:
        fields["request_id"] = f"cli:{uuid.uuid4()}"
    message = message.model_copy(update=fields)
    if not no_worker:
        try:
            started = await handle.start_update(
                update,
                message,
                id=message.request_id,  # type: ignore[attr-defined]
                result_type=DecisionReply,
                wait_for_stage=WorkflowUpdateStage.COMPLETED,
                rpc_timeout=within,
            )
            reply: DecisionReply = await started.result(rpc_timeout=within)
            return reply
        except (WorkflowUpdateRPCTimeoutOrCancelledError, TimeoutError):
            pass
        except RPCError as error:
            if error.status != RPCStatusCode.DEADLINE_EXCEEDED:
                raise
    await handle.signal(signal, message, rpc_timeout=within)
    return Stored(made_at=message.made_at)  # type: ignore[attr-defined]
