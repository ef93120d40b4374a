"""`rollback ack`: acknowledge a post-rollback follow-up, or an escalation (the same as their
Slack buttons)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Annotated

import typer
from temporalio.client import WorkflowUpdateFailedError
from temporalio.service import RPCError

from cli.errors import Failure, UserError
from cli.output import Format, console, print_json, reply_line
from cli.policy_cmd import read_policy
from cli.rollback_cmds import Deployment, FormatOption, check_deployment, check_person
from cli.signing import KeyOption, current_run, now_and_id, proof
from cli.temporal import answered_or_stored, client_for
from client import operations
from config.settings import Settings, load_settings
from contract.follow_ups import ACK_SIGNAL, ACK_UPDATE, FollowUpAck
from contract.rollback import (
    ESCALATION_ACK_SIGNAL,
    ESCALATION_ACK_UPDATE,
    DecisionReply,
    EscalationAck,
    workflow_id,
)
from runbook.policy import Policy


def ack(
    deployment: Deployment,
    as_user: Annotated[str, typer.Option("--as", help="who acknowledges (roster person id)")],
    follow_up: Annotated[
        str | None,
        typer.Argument(
            metavar="[FOLLOW_UP]",
            help="follow-up id from the policy: first_hour, short_term_24h, …",
        ),
    ] = None,
    escalation: Annotated[
        str | None,
        typer.Option(
            "--escalation",
            "-e",
            metavar="KEY",
            help="acknowledge an escalation (its key, as its message says; `all`: every open "
            "one): it stops climbing the escalation path",
        ),
    ] = None,
    note: Annotated[str, typer.Option("--note", help="a note for the record")] = "",
    key: KeyOption = None,
    format: FormatOption = Format.text,
) -> None:
    """Acknowledge a due follow-up (its owner's role or the escalation path may), or an
    escalation (a role of the escalation path may).

    Example: rollback ack -d search-a short_term_24h --as dri-backend --note "RCA doc shared"

    An escalation: rollback ack -d search-a --escalation budget:emergency_stop --as sre-oncall
    """
    settings = load_settings()
    policy = read_policy(settings.policy)
    check_deployment(deployment)
    person = check_person(policy, as_user)
    if (follow_up is None) == (escalation is None):
        raise UserError("name a FOLLOW_UP or --escalation KEY (one of them)")
    target: str
    reply: DecisionReply
    made_at, request_id = now_and_id()
    if escalation is not None:
        which = None if escalation == "all" else escalation
        esc = EscalationAck(
            key=which,
            person=person,
            via="cli",
            who=person,
            made_at=made_at,
            request_id=request_id,
        )
        target, reply = asyncio.run(_ack_escalation(settings, policy, deployment, esc, key))
    else:
        known = [f.id for f in policy.follow_ups]
        if follow_up not in known:
            raise UserError(f"unknown follow-up {follow_up!r} (known: {', '.join(known)})")
        assert follow_up is not None
        fu = FollowUpAck(
            follow_up=follow_up,
            person=person,
            via="cli",
            note=note,
            made_at=made_at,
            request_id=request_id,
        )
        target, reply = asyncio.run(_ack(settings, policy, deployment, fu, key))
    if format is Format.json:
        print_json({"workflow_id": target, **reply.model_dump(mode="json")})
    else:
        console.print(reply_line(reply))
    if not reply.accepted:
        raise typer.Exit(1)


async def _ack_escalation(
    settings: Settings, policy: Policy, deployment: str, ack: EscalationAck, key: Path | None
) -> tuple[str, DecisionReply]:
    client = await client_for(settings)
    assert ack.person is not None and ack.made_at is not None and ack.request_id is not None
    signed = await proof(
        policy,
        act="ack_escalation",
        person=ack.person,
        deployment=deployment,
        made_at=ack.made_at,
        request_id=ack.request_id,
        key=key,
        rollback=await current_run(client, workflow_id(deployment)),
        window=ack.key or "all",
        choice="ack",
    )
    ack = ack.model_copy(update={"proof": signed})
    reply = await answered_or_stored(
        client,
        settings,
        deployment,
        workflow_id(deployment),
        (ESCALATION_ACK_UPDATE, ESCALATION_ACK_SIGNAL),
        ack,
        "acknowledgement",
    )
    return workflow_id(deployment), reply


async def _ack(
    settings: Settings, policy: Policy, deployment: str, ack: FollowUpAck, key: Path | None
) -> tuple[str, DecisionReply]:
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
    assert ack.made_at is not None and ack.request_id is not None
    signed = await proof(
        policy,
        act="ack_follow_up",
        person=ack.person,
        deployment=deployment,
        made_at=ack.made_at,
        request_id=ack.request_id,
        key=key,
        rollback=target.workflow_id,
        window=ack.follow_up,
        choice="ack",
        reason=ack.note,
    )
    ack = ack.model_copy(update={"proof": signed})
    try:
        reply = await answered_or_stored(
            client,
            settings,
            deployment,
            target.workflow_id,
            (ACK_UPDATE, ACK_SIGNAL),
            ack,
            "acknowledgement",
        )
    except UserError:  # NOT_FOUND: it ended between the listing and the call
        raise Failure(
            f"the follow-ups of {deployment!r} ({target.workflow_id}) have ended"
        ) from None
    except WorkflowUpdateFailedError as error:
        raise Failure(f"the acknowledgement failed: {error.cause}") from None
    return target.workflow_id, reply
