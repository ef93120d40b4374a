"""`rollback comms`: approve or hold a held audience's wording (the customer notification)."""

from __future__ import annotations

import asyncio
from typing import Annotated, Literal

import typer

from cli.errors import UserError
from cli.output import Format, show_reply
from cli.policy_cmd import read_policy
from cli.rollback_cmds import Deployment, FormatOption, check_deployment, check_person
from cli.temporal import answered_or_stored, client_for
from config.settings import Settings, load_settings
from contract.rollback import (
    COMMS_SIGNAL,
    COMMS_UPDATE,
    CommsApprovalInput,
    DecisionReply,
    workflow_id,
)


def comms(
    deployment: Deployment,
    as_user: Annotated[str, typer.Option("--as", help="who approves (roster person id)")],
    approve: Annotated[
        bool, typer.Option("--approve", help="approve the wording: the message is sent")
    ] = False,
    deny: Annotated[
        bool, typer.Option("--deny", "--hold", help="hold the message: it is not sent")
    ] = False,
    audience: Annotated[
        str, typer.Option("--audience", help="audience id whose wording waits")
    ] = "customer_comms",
    note: Annotated[str, typer.Option("--note", help="a note for the record")] = "",
    format: FormatOption = Format.text,
) -> None:
    """Approve or hold a message whose wording waits for approval (customer comms).

    Authority is checked by the rollback: the business-impact authority of the phase.

    Example: rollback comms -d search-a --approve --as sprint-pm
    """
    if approve == deny:
        raise UserError("choose exactly one of --approve, --deny")
    settings = load_settings()
    policy = read_policy(settings.policy)
    check_deployment(deployment)
    held = [a.id for a in policy.notifications.audiences if a.approval]
    if audience not in held:
        raise UserError(
            f"--audience: {audience!r} has no wording to approve "
            f"(audiences that need approval: {', '.join(held) or 'none'})"
        )
    action: Literal["approve", "deny"] = "approve" if approve else "deny"
    approval = CommsApprovalInput(
        action=action,
        person=check_person(policy, as_user),
        audience=audience,
        via="cli",
        note=note,
    )
    reply = asyncio.run(_comms(settings, deployment, approval))
    show_reply(reply, format)


async def _comms(
    settings: Settings, deployment: str, approval: CommsApprovalInput
) -> DecisionReply:
    client = await client_for(settings)
    return await answered_or_stored(
        client,
        settings,
        deployment,
        workflow_id(deployment),
        (COMMS_UPDATE, COMMS_SIGNAL),
        approval,
        "approval",
    )
