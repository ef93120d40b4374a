"""`rollback report`: a deployment's rollback report, as Markdown or JSON, from Temporal."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from pydantic import BaseModel, ValidationError
from temporalio.client import Client, WorkflowExecutionStatus, WorkflowQueryFailedError
from temporalio.service import RPCError, RPCStatusCode

from cli.errors import Failure, UserError
from cli.rollback_cmds import Deployment, check_deployment
from cli.temporal import client_for
from client import history
from config.settings import Settings, load_settings
from contract.rollback import STATUS_QUERY, workflow_id
from runbook.loading import load_policy
from runbook.policy import Policy
from runbook.report import RollbackReport, build_report
from runbook.status import FollowUpsStatus, RollbackStatus

M = TypeVar("M", bound=BaseModel)
QUERY_TIMEOUT = timedelta(seconds=5)
"""A query needs a worker: without one it would wait for the RPC deadline."""


class ReportFormat(StrEnum):
    md = "md"
    json = "json"


def report(
    deployment: Deployment,
    format: Annotated[
        ReportFormat, typer.Option("--format", help="md (Markdown) or json")
    ] = ReportFormat.md,
    out: Annotated[
        Path | None,
        typer.Option("--out", "-o", help="write the report to this file instead of printing it"),
    ] = None,
) -> None:
    """The report of the deployment's latest rollback, running or ended.

    Trigger and evidence, decision, steps against their budgets, response times against the
    plan's targets, recovery, escalations, root-cause material and the timeline rebuilt from
    the workflow's history.

    Example: rollback report -d search-a --format json --out search-a-rollback.json
    """
    settings = load_settings()
    check_deployment(deployment)
    if out is not None and not out.parent.is_dir():
        raise UserError(f"--out: the folder {out.parent} does not exist")
    made = asyncio.run(gather(settings, deployment))
    text = made.to_markdown() if format is ReportFormat.md else made.model_dump_json(indent=2)
    if out is None:
        typer.echo(text.rstrip("\n"))
        return
    try:
        out.write_text(text.rstrip("\n") + "\n", encoding="utf-8")
    except OSError as error:
        raise UserError(f"--out: cannot write {out}: {error.strerror or error}") from None
    typer.echo(f"Report of {made.workflow_id} ({format.value}) written to {out}")


@dataclass
class _Gathered:
    notes: list[str] = field(default_factory=list)


async def gather(settings: Settings, deployment: str) -> RollbackReport:
    """Status, history and follow-ups of `rollback-<deployment>`'s latest run, as a report."""
    client = await client_for(settings)
    wf_id = workflow_id(deployment)
    try:
        described = await client.get_workflow_handle(wf_id).describe()
    except RPCError as error:
        if error.status == RPCStatusCode.NOT_FOUND:
            raise UserError(
                f"--deployment: no rollback of {deployment!r} is known to Temporal "
                f"(no workflow {wf_id}); `rollback status` lists them"
            ) from None
        raise Failure(f"Temporal refused to describe {wf_id}: {error.message}") from None
    handle = client.get_workflow_handle(wf_id, run_id=described.run_id)
    try:
        read = await history.fetch(handle, client.data_converter)
    except RPCError as error:
        raise Failure(f"cannot read the history of {wf_id}: {error.message}") from None
    found = _Gathered()
    status = await _status(
        client, wf_id, described.run_id, described.status, read, RollbackStatus, found
    )
    if status is None:
        why = (
            "no worker answers it"
            if described.status == WorkflowExecutionStatus.RUNNING
            else "a closed rollback that did not complete needs a worker to replay it"
        )
        raise Failure(
            f"{wf_id} ({_status_name(described.status)}) did not answer its status query: "
            f"{why} (start `rollback worker`, or `rollback up`)"
        )
    policy = read.policy or _fallback_policy(settings, found)
    follow_ups = await _follow_ups(client, status.follow_ups_id, found)
    return build_report(
        status,
        generated_at=datetime.now(UTC),
        policy=policy,
        follow_ups=follow_ups,
        history=read.timeline,
        notes=found.notes,
    )


async def _status(
    client: Client,
    wf_id: str,
    run_id: str | None,
    state: WorkflowExecutionStatus | None,
    read: history.ReadHistory,
    model: type[M],
    found: _Gathered,
) -> M | None:
    """A completed run's result is in its history; any other run answers the status query."""
    if state == WorkflowExecutionStatus.COMPLETED and read.result is not None:
        try:
            return model.model_validate(read.result)
        except ValidationError:
            found.notes.append(f"{wf_id}: its result is of another shape; asked its status query")
    handle = client.get_workflow_handle(wf_id, run_id=run_id)
    try:
        answer: Any = await handle.query(STATUS_QUERY, result_type=model, rpc_timeout=QUERY_TIMEOUT)
    except (RPCError, WorkflowQueryFailedError) as error:
        found.notes.append(f"{wf_id}: status query failed: {error}")
        return None
    return answer if isinstance(answer, model) else None


async def _follow_ups(
    client: Client, follow_ups_id: str | None, found: _Gathered
) -> FollowUpsStatus | None:
    if follow_ups_id is None:
        return None
    handle = client.get_workflow_handle(follow_ups_id)
    try:
        described = await handle.describe()
        read = await history.fetch(
            client.get_workflow_handle(follow_ups_id, run_id=described.run_id),
            client.data_converter,
        )
    except RPCError as error:
        found.notes.append(f"follow-ups {follow_ups_id}: not readable ({error.message})")
        return None
    return await _status(
        client, follow_ups_id, described.run_id, described.status, read, FollowUpsStatus, found
    )


def _fallback_policy(settings: Settings, found: _Gathered) -> Policy | None:
    try:
        policy = load_policy(settings.policy)
    except Exception as error:  # the report is still worth having without names
        found.notes.append(f"no policy in the history, and {settings.policy}: {error}")
        return None
    found.notes.append(f"the history carries no policy: names and targets from {settings.policy}")
    return policy


def _status_name(state: WorkflowExecutionStatus | None) -> str:
    return state.name.lower() if state is not None else "unknown"
