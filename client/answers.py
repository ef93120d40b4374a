"""Calls that need a worker, bounded in time: whether a worker polls the task queue (Temporal's
task-queue description), and a person's word (a trigger, a decision, a wording approval, an
acknowledgement) answered by the workflow or, when no worker answers, stored durably as a signal
and judged later by when it was made. The CLI, the gateway and the trigger path all use
`answer_or_store`.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from pydantic import BaseModel
from temporalio.api.enums.v1 import TaskQueueKind, TaskQueueType
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflowservice.v1 import DescribeTaskQueueRequest
from temporalio.client import (
    Client,
    WithStartWorkflowOperation,
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


async def workers(client: Client, task_queue: str, *, activities: bool = False) -> Workers:
    """Who polls the task queue for workflow tasks (or activity tasks), by Temporal's own
    account: `live` counts distinct workers (client identities) seen polling lately."""
    kind = (
        TaskQueueType.TASK_QUEUE_TYPE_ACTIVITY
        if activities
        else TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW
    )
    answer = await client.workflow_service.describe_task_queue(
        DescribeTaskQueueRequest(
            namespace=client.namespace,
            task_queue=TaskQueue(name=task_queue, kind=TaskQueueKind.TASK_QUEUE_KIND_NORMAL),
            task_queue_type=kind,
        ),
        timeout=WITHIN,
    )
    now = datetime.now(UTC)
    seen = {
        (p.identity, p.last_access_time.ToDatetime(tzinfo=UTC))
        for p in answer.pollers
        if p.HasField("last_access_time")
    }
    live = len({who for who, at in seen if now - at <= POLL_FRESH})
    return Workers(task_queue, live, max((at for _, at in seen), default=None))


@dataclass(frozen=True)
class Call:
    """A person's word to a workflow: the update that answers it at once, and how it is stored
    durably when no worker answers (a signal with the same request id: the workflow counts the
    two once, and judges the stored one by when it was made)."""

    workflow_id: str
    update: str
    signal: str
    message: BaseModel
    result_type: type[BaseModel] = DecisionReply
    update_id: str | None = None
    """The same id again (a double click, a retried call) is answered with the first result."""
    start: Callable[[], WithStartWorkflowOperation[Any, Any]] | None = None
    """Update-with-start: the word starts the workflow when none runs (a person's trigger)."""
    store: Callable[[], Awaitable[str]] | None = None
    """How to store it (returns the run id); by default the signal to `workflow_id`."""


@dataclass(frozen=True)
class Answered:
    reply: Any
    """The workflow's reply (`Call.result_type`)."""
    run_id: str


@dataclass(frozen=True)
class Stored:
    """No worker answered: the word was stored durably as a signal, to be judged later."""

    made_at: datetime
    run_id: str = ""


NEXT_RUN_PAUSE = timedelta(milliseconds=100)
"""Between two asks while a run hands over to its next: the hand-over takes a workflow task."""


async def answer_or_store(
    client: Client, call: Call, *, no_worker: bool = False, within: timedelta = WITHIN
) -> Answered | Stored:
    """The workflow's answer, or, when no worker answers within `within` (at once when
    `no_worker`), the word stored durably. A run that is ending answers that its next run takes
    the word (`next_run`): it is asked again until that run's verdict comes, within `within`.
    RPC errors other than a timeout (not found, refused) and a failed update reach the caller."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within.total_seconds()
    if not no_worker:
        try:
            answered = await _ask(client, call, within, first=True)
            while getattr(answered.reply, "next_run", False):
                left = deadline - loop.time()
                if left <= NEXT_RUN_PAUSE.total_seconds():
                    break  # the next run will judge it: that is the true answer for now
                await asyncio.sleep(NEXT_RUN_PAUSE.total_seconds())
                try:
                    answered = await _ask(client, call, timedelta(seconds=left), first=False)
                except RPCError as error:
                    if error.status != RPCStatusCode.NOT_FOUND:  # the run closing under us
                        raise
            return answered
        except (WorkflowUpdateRPCTimeoutOrCancelledError, TimeoutError):
            pass
        except RPCError as error:
            if error.status != RPCStatusCode.DEADLINE_EXCEEDED:
                raise
    if call.store is not None:
        run_id = await call.store()
    else:
        handle = client.get_workflow_handle(call.workflow_id)
        await handle.signal(call.signal, call.message, rpc_timeout=within)
        run_id = ""
    made_at = getattr(call.message, "made_at", None) or datetime.now(UTC)
    return Stored(made_at=made_at, run_id=run_id)


async def _ask(client: Client, call: Call, within: timedelta, *, first: bool) -> Answered:
    """One update; asked again, it gets an id of its own (the same id would be answered with
    the first reply)."""
    update_id = call.update_id if first else None
    if call.start is not None:
        start = call.start()
        reply = await asyncio.wait_for(
            client.execute_update_with_start_workflow(
                call.update,
                call.message,
                start_workflow_operation=start,
                result_type=call.result_type,
                id=update_id,
            ),
            timeout=within.total_seconds(),
        )
        handle = await start.workflow_handle()
        return Answered(reply, handle.result_run_id or "")
    handle = client.get_workflow_handle(call.workflow_id)
    started = await handle.start_update(
        call.update,
        call.message,
        id=update_id,
        result_type=call.result_type,
        wait_for_stage=WorkflowUpdateStage.COMPLETED,
        rpc_timeout=within,
    )
    return Answered(await started.result(rpc_timeout=within), started.workflow_run_id or "")


def stamped(message: M) -> M:
    """The moment it was made and a request id, unless the sender (the gateway) already said."""
    fields: dict[str, Any] = {}
    if getattr(message, "made_at", None) is None:
        fields["made_at"] = datetime.now(UTC)
    if getattr(message, "request_id", None) is None:
        fields["request_id"] = f"cli:{uuid.uuid4()}"
    return message.model_copy(update=fields) if fields else message
