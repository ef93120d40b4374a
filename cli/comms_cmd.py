"""`rollback comms`: approve or hold a held audience's wording (the customer notification)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Annotated, Literal

import typer

from cli.errors import UserError
from cli.output import Format, show_reply
from cli.policy_cmd import read_policy
from cli.rollback_cmds import Deployment, FormatOption, check_deployment, check_person
from cli.signing import KeyOption, current_run, now_and_id, proof
from cli.temporal import answered_or_stored, client_for
from config.settings import Settings, load_settings
from contract.rollback import (
    COMMS_SIGNAL,
    COMMS_UPDATE,
    CommsApprovalInput,
    DecisionReply,
    workflow_id,
)
from runbook.policy import Policy


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
    reason: Annotated[str, typer.Option("--reason", "-r", help="why, for the record")] = "",
    note: Annotated[str, typer.Option("--note", hidden=True, help="the old name of --reason")] = "",
    key: KeyOption = None,
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
    made_at, request_id = now_and_id()
    approval = CommsApprovalInput(
        action=action,
        person=check_person(policy, as_user),
        audience=audience,
        via="cli",
        reason=(reason or note).strip(),
        made_at=made_at,
        request_id=request_id,
    )
    reply = asyncio.run(_comms(settings, policy, deployment, approval, key))
    show_reply(reply, format)


async def _comms(
    settings: Settings,
    policy: Policy,
    deployment: str,
    approval: CommsApprovalInput,
    key: Path | None,
) -> DecisionReply:
    client = await client_for(settings)
    assert approval.made_at is not None and approval.request_id is not None
    signed = await proof(
        policy,
        act="comms",
        person=approval.person,
        deployment=deployment,
        made_at=approval.made_at,
        request_id=approval.request_id,
        key=key,
        rollback=await current_run(client, workflow_id(deployment)),
        window=approval.audience,
        choice=approval.action,
        reason=approval.reason,
    )
    approval = approval.model_copy(update={"proof": signed})
    return await answered_or_stored(
        client,
        settings,
        deployment,
        workflow_id(deployment),
        (COMMS_UPDATE, COMMS_SIGNAL),
        approval,
        "approval",
    )
