"""A decision, an approval or an acknowledgement from Slack, delivered so that it is never
silently lost: the update first (an immediate answer), the signal when no worker answers."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from pydantic import BaseModel
from temporalio.client import WorkflowUpdateFailedError
from temporalio.service import RPCError, RPCStatusCode

from client import answers
from contract.follow_ups import ACK_SIGNAL, ACK_UPDATE, FollowUpAck
from contract.rollback import (
    COMMS_SIGNAL,
    COMMS_UPDATE,
    DECIDE_UPDATE,
    DECISION_SIGNAL,
    ESCALATION_ACK_SIGNAL,
    ESCALATION_ACK_UPDATE,
    CommsApprovalInput,
    DecisionInput,
    DecisionReply,
    EscalationAck,
    workflow_id,
)
from gateway.temporal_link import TemporalLink, TemporalUnavailable

ANSWER_WITHIN = timedelta(seconds=2)


@dataclass(frozen=True)
class Delivery:
    """One click's call: where it goes, under which update and signal, and how to word it."""

    workflow_id: str
    update: str
    signal: str
    arg: BaseModel
    request_id: str | None
    subject: str
    """What it is about, for the person: the deployment, "first hour for search-a"."""
    what: str
    """The noun for it: decision, approval, hold, acknowledgement."""
    owner: str
    """Who may refuse it: the rollback, the follow-ups (capitalized, it starts a sentence)."""
    checked: str
    """What it is checked against once a worker returns."""
    missing: str
    """The answer when the workflow is not running."""
    cli: str
    """The command that does the same from a terminal."""
    outcome: str = "the outcome will appear in the channel"
    """Where the person sees what became of a stored click."""


async def deliver_decision(link: TemporalLink, deployment: str, decision: DecisionInput) -> str:
    """Both ways carry the same request id, so a decision delivered twice counts once."""
    return await deliver(
        link,
        Delivery(
            workflow_id=workflow_id(deployment),
            update=DECIDE_UPDATE,
            signal=DECISION_SIGNAL,
            arg=decision,
            request_id=decision.request_id,
            subject=deployment,
            what="decision",
            owner="The rollback",
            checked="the authority matrix",
            missing=f"No rollback is running for {deployment}: nothing was recorded.",
            cli=f"rollback decide -d {deployment} --{decision.action} --as {decision.person}",
        ),
    )


async def deliver_comms(link: TemporalLink, deployment: str, approval: CommsApprovalInput) -> str:
    """An approval (or hold) of a held audience's wording, to the deployment's rollback."""
    audience = "" if approval.audience == "customer_comms" else f" --audience {approval.audience}"
    return await deliver(
        link,
        Delivery(
            workflow_id=workflow_id(deployment),
            update=COMMS_UPDATE,
            signal=COMMS_SIGNAL,
            arg=approval,
            request_id=approval.request_id,
            subject=f"the {approval.audience} wording of {deployment}",
            what="approval" if approval.action == "approve" else "hold",
            owner="The rollback",
            checked="the business-impact authority of the phase",
            missing=f"No rollback is running for {deployment}: nothing was recorded.",
            cli=(
                f"rollback comms -d {deployment} --{approval.action}{audience} "
                f"--as {approval.person}"
            ),
            outcome=f"`rollback status -d {deployment}` will show the outcome",
        ),
    )


async def deliver_ack(
    link: TemporalLink, follow_ups_id: str, deployment: str, ack: FollowUpAck
) -> str:
    """An acknowledgement, to the follow-ups workflow the button names."""
    return await deliver(
        link,
        Delivery(
            workflow_id=follow_ups_id,
            update=ACK_UPDATE,
            signal=ACK_SIGNAL,
            arg=ack,
            request_id=ack.request_id,
            subject=f"{ack.follow_up} of {deployment}",
            what="acknowledgement",
            owner="The follow-ups",
            checked="the follow-up's owner and the escalation path",
            missing=(
                f"The follow-ups of {deployment} have ended ({follow_ups_id}): "
                "nothing was recorded."
            ),
            cli=f"rollback ack -d {deployment} {ack.follow_up} --as {ack.person}",
            outcome="the follow-ups' timeline will show the outcome",
        ),
    )


async def deliver_escalation_ack(
    link: TemporalLink, deployment: str, ack: EscalationAck
) -> Delivered:
    """An escalation acknowledged (Slack's button, PagerDuty's webhook): the climb stops."""
    key = ack.key or "all"
    return await delivered(
        link,
        Delivery(
            workflow_id=workflow_id(deployment),
            update=ESCALATION_ACK_UPDATE,
            signal=ESCALATION_ACK_SIGNAL,
            arg=ack,
            request_id=ack.request_id,
            subject=f"the escalation {key} of {deployment}",
            what="acknowledgement",
            owner="The rollback",
            checked="the escalation path",
            missing=f"No rollback is running for {deployment}: nothing was recorded.",
            cli=f"rollback ack -d {deployment} --escalation {key} --as {ack.person or '<id>'}",
            outcome="the channel will say who has it",
        ),
    )


async def deliver(link: TemporalLink, call: Delivery) -> str:
    """Try the update (an immediate answer); when no worker answers, store it as a signal."""
    return (await delivered(link, call)).text


@dataclass(frozen=True)
class Delivered:
    text: str
    """What the person is told."""
    taken: bool
    """Answered by the workflow, or stored durably for it; False: nothing was recorded (a
    sender that retries, PagerDuty, should)."""
    accepted: bool | None = None
    """The workflow's verdict when it answered; None: stored for later, or nothing to judge."""


async def delivered(link: TemporalLink, call: Delivery) -> Delivered:
    try:
        client = await link.client()
    except TemporalUnavailable as error:
        return Delivered(
            f"⚠️ Your {call.what} was NOT recorded: {error}. Try again in a moment, or run "
            f"`{call.cli}`.",
            taken=False,
        )
    try:
        result = await answers.answer_or_store(
            client,
            answers.Call(
                workflow_id=call.workflow_id,
                update=call.update,
                signal=call.signal,
                message=call.arg,
                update_id=call.request_id,
            ),
            within=ANSWER_WITHIN,
        )
    except WorkflowUpdateFailedError as error:
        return Delivered(
            f"⚠️ {call.owner} could not take your {call.what}: {error.cause}", True, False
        )
    except RPCError as error:
        if error.status == RPCStatusCode.NOT_FOUND:
            return Delivered(call.missing, taken=True, accepted=False)
        return Delivered(
            f"⚠️ Your {call.what} was NOT recorded: Temporal answered {error.message}", False
        )
    if isinstance(result, answers.Stored):
        return Delivered(
            f"🕓 Recorded for {call.subject}: no rollback worker is answering right now, so "
            f"your {call.what} was stored durably. It will be checked against {call.checked} "
            f"and applied when a worker returns; {call.outcome}.",
            taken=True,
        )
    reply: DecisionReply = result.reply
    mark = "✅" if reply.accepted else "⛔"
    return Delivered(f"{mark} {reply.message}", taken=True, accepted=reply.accepted)
