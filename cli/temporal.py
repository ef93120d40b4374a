"""Reaching Temporal from the CLI, with errors that say what to do."""

from __future__ import annotations

from typing import TypeVar

from pydantic import BaseModel
from temporalio.client import Client, WorkflowExecutionDescription, WorkflowUpdateFailedError
from temporalio.runtime import Runtime
from temporalio.service import RPCError, RPCStatusCode

from cli.errors import Failure, UserError
from client import answers
from config.connection import connect
from config.settings import Settings
from contract.rollback import DecisionReply

M = TypeVar("M", bound=BaseModel)


async def client_for(
    settings: Settings, runtime: Runtime | None = None, service: str = "rollback-cli"
) -> Client:
    try:
        return await connect(settings, runtime, service)
    except Exception as error:  # the SDK raises a bare RuntimeError on connect
        raise Failure(
            f"cannot reach Temporal at {settings.temporal_address} "
            f"(namespace {settings.temporal_namespace}): {error}. Start the embedded stack with "
            "`rollback up`, or set ROLLBACK_TEMPORAL_ADDRESS"
        ) from None


def explain_rpc(error: RPCError, deployment: str) -> Failure | UserError:
    """An unknown deployment is bad input (exit 2), like everywhere else in the CLI."""
    if error.status == RPCStatusCode.NOT_FOUND:
        return UserError(f"--deployment: no rollback is running for deployment {deployment!r}")
    return Failure(f"Temporal refused the call for {deployment!r}: {error.message}")


async def described(client: Client, wid: str) -> WorkflowExecutionDescription | None:
    """The workflow's latest run as Temporal describes it; None when there is no such workflow.
    Bounded in time, like every call the CLI makes."""
    try:
        return await client.get_workflow_handle(wid).describe(rpc_timeout=answers.WITHIN)
    except RPCError as error:
        if error.status == RPCStatusCode.NOT_FOUND:
            return None
        raise Failure(f"cannot read {wid}: {error.message}") from None


async def live_workers(client: Client, settings: Settings) -> answers.Workers:
    """Whether a worker polls the task queue: found out in seconds, never a hang."""
    try:
        return await answers.workers(client, settings.task_queue)
    except RPCError as error:
        raise Failure(
            f"cannot describe task queue {settings.task_queue!r}: {error.message}"
        ) from None


async def require_worker(client: Client, settings: Settings, what: str) -> None:
    """Exit 1 at once, saying so, when no worker would answer."""
    found = await live_workers(client, settings)
    if found.none:
        raise Failure(f"{what}: {found.explain()}")


async def answered_or_stored(
    client: Client,
    settings: Settings,
    deployment: str,
    workflow: str,
    calls: tuple[str, str],
    message: M,
    what: str,
) -> DecisionReply:
    """The workflow's verdict on a person's word; with no worker, the word is stored durably
    (a signal) and the command exits 1 saying so, and how it will be judged."""
    update, signal = calls
    found = await live_workers(client, settings)
    message = answers.stamped(message)
    try:
        result = await answers.answer_or_store(
            client,
            answers.Call(
                workflow_id=workflow,
                update=update,
                signal=signal,
                message=message,
                update_id=getattr(message, "request_id", None),
            ),
            no_worker=found.none,
        )
    except RPCError as error:
        raise explain_rpc(error, deployment) from None
    except WorkflowUpdateFailedError as error:
        raise Failure(f"the {what} failed: {error.cause}") from None
    if isinstance(result, answers.Stored):
        raise Failure(
            f"your {what} was stored durably in {workflow} but not judged yet: "
            f"{not_answered(found)}. It will be judged by when it was made "
            f"({result.made_at:%H:%M:%S} UTC), not by when a worker reads it"
        )
    reply: DecisionReply = result.reply
    return reply


def not_answered(found: answers.Workers) -> str:
    """Why a word was stored instead of answered: no worker at all, or a worker that polls but
    did not answer in time (busy, or the workflow's task failing), never the one for the other."""
    if found.none:
        return found.explain()
    return (
        f"a worker polls {found.task_queue!r} but the workflow did not answer within "
        f"{answers.WITHIN.total_seconds():g} s (see `rollback status` and the worker's log)"
    )
