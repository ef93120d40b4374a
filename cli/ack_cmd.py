"""`rollback ack`: acknowledge a post-rollback follow-up (the same as its Slack button)."""

from __future__ import annotations

import asyncio
from typing import Annotated

import typer
from temporalio.client import WorkflowUpdateFailedError
from temporalio.service import RPCError, RPCStatusCode

from cli.errors import Failure, UserError
from cli.output import Format, console, print_json, reply_line
from cli.policy_cmd import read_policy
from cli.rollback_cmds import Deployment, FormatOption, check_deployment, check_person
from cli.temporal import client_for
from client import operations
from config.settings import Settings, load_settings
from contract.follow_ups import FollowUpAck
from contract.rollback import DecisionReply


def ack(
    follow_up: Annotated[
        str,
        typer.Argument(
            metavar="FOLLOW_UP", help="follow-up id from the policy: first_hour, short_term_24h, …"
        ),
    ],
    deployment: Deployment,
    as_user: Annotated[str, typer.Option("--as", help="who acknowledges (roster person id)")],
    note: Annotated[str, typer.Option("--note", help="a note for the record")] = "",
    format: FormatOption = Format.text,
) -> None:
    """Acknowledge a due follow-up; its owner's role or the escalation path may.

    Example: rollback ack -d search-a short_term_24h --as dri-backend --note "RCA doc shared"
    """
    settings = load_settings()
    policy = read_policy(settings.policy)
    check_deployment(deployment)
    known = [f.id for f in policy.follow_ups]
    if follow_up not in known:
        raise UserError(f"unknown follow-up {follow_up!r} (known: {', '.join(known)})")
    ack = FollowUpAck(
        follow_up=follow_up, person=check_person(policy, as_user), via="cli", note=note
    )
    target, reply = asyncio.run(_ack(settings, deployment, ack))
    if format is Format.json:
        print_json({"workflow_id": target, **reply.model_dump(mode="json")})
    else:
        console.print(reply_line(reply))
    if not reply.accepted:
        raise typer.Exit(1)


async def _ack(settings: Settings, deployment: str, ack: FollowUpAck) -> tuple[str, DecisionReply]:
    client = await client_for(settings)
    try:
        runs = await operations.find_follow_ups(client, deployment)
    except RPCError as error:
        raise Failure(f"Temporal refused the call for {deployment!r}: {error.message}") from None
    if not runs:
        raise UserError(
            f"no follow-ups for deployment {deployment!r}: none were scheduled (they start "
            "once a rollback has put traffic back on control)"
        )
    target = runs[0]
    if not target.running:
        raise Failure(f"the follow-ups of {deployment!r} ({target.workflow_id}) have ended")
    try:
        reply = await operations.acknowledge_follow_up(client, target.workflow_id, ack)
    except RPCError as error:
        if error.status == RPCStatusCode.NOT_FOUND:
            raise Failure(
                f"the follow-ups of {deployment!r} ({target.workflow_id}) have ended"
            ) from None
        raise Failure(f"Temporal refused the call for {deployment!r}: {error.message}") from None
    except WorkflowUpdateFailedError as error:
        raise Failure(f"the acknowledgement failed: {error.cause}") from None
    return target.workflow_id, reply
