"""Slack messages as Block Kit (`slack_sdk.models.blocks`), each with a plain `text` fallback.

Pure functions: the Slack notifier sends what they build, and tests read it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from slack_sdk.models.blocks import (
    ActionsBlock,
    Block,
    ButtonElement,
    ConfirmObject,
    ContextBlock,
    HeaderBlock,
    MarkdownTextObject,
    SectionBlock,
)

from activities.models import (
    CommsApprovalRequestInput,
    DecisionClosedInput,
    DecisionRequestInput,
    EscalationInput,
    FollowUpNoticeInput,
    PersonRef,
    RoleHolders,
)
from activities.mrkdwn import verbatim
from activities.notify import FOLLOW_UP_HEADINGS, ack_command, comms_default_text, deciders_text

APPROVE, DENY, INVESTIGATING = "rollback_approve", "rollback_deny", "rollback_investigating"
"""Button action ids; the gateway maps them back to decisions (gateway/slack_handler.py)."""
FOLLOW_UP_ACK = "follow_up_ack"
"""A follow-up notice's Acknowledge button; value `{"workflow_id", "follow_up", "deployment"}`."""
COMMS_APPROVE, COMMS_HOLD = "comms_approve", "comms_hold"
"""The buttons of a wording approval request; their value is `{"deployment", "audience"}`."""
ESCALATION_ACK = "escalation_ack"
"""An escalation's Acknowledge button; value `{"deployment", "key"}`."""


@dataclass(frozen=True)
class SlackMessage:
    text: str
    blocks: list[dict[str, Any]]


def mention(person: PersonRef, role_name: str = "") -> str:
    """`<@U1> Jane Doe`: Slack shows the mention as the person; the name is added unless it
    only repeats the role ("SRE On-call (pager)" for the SRE On-call role)."""
    if role_name and person.name.startswith(role_name):
        return f"<@{person.slack_user_id}>"
    return f"<@{person.slack_user_id}> {person.name}"


def mentions(holders: list[RoleHolders]) -> str:
    """`QA DRI: <@U1>` per role; a role nobody holds says so rather than vanishing."""
    parts = []
    for holder in holders:
        people = ", ".join(mention(p, holder.role_name) for p in holder.people)
        parts.append(f"{holder.role_name}: {people or '_nobody on the roster_'}")
    return "; ".join(parts)


def _when(at: datetime) -> str:
    epoch = int(at.timestamp())
    return f"<!date^{epoch}^{{time_secs}} ({{date_short_pretty}})|{at:%H:%M:%S} UTC>"


def decision_request(inp: DecisionRequestInput, note: str = "") -> SlackMessage:
    """The request with its buttons; `note` says why it changed (an extension)."""
    drill = " (drill)" if inp.ctx.drill else ""
    default = "the rollback starts" if inp.default_action == "rollback" else "the canary continues"
    evidence = "\n".join(f"• {k}: `{v}`" for k, v in sorted(inp.evidence.items())) or "• none given"
    links = " · ".join(f"<{url}|{_label(url)}>" for url in inp.links)
    text = (
        f"Rollback decision needed for {inp.ctx.deployment}{drill}: {inp.trigger_name} at "
        f"{inp.phase}%. Decide: {inp.approver_text}. If nobody decides by "
        f"{inp.deadline:%H:%M:%S} UTC, {default}."
    )
    blocks: list[Block] = [
        HeaderBlock(text=f"Rollback decision: {inp.ctx.deployment}{drill}"[:150]),
        SectionBlock(
            text=MarkdownTextObject(
                text=(f"*{inp.trigger_name}* at *{inp.phase}%* canary\n{inp.reason or ''}").strip()
            )
        ),
        SectionBlock(
            text=MarkdownTextObject(
                text=f"*Evidence*\n{evidence}" + (f"\n{links}" if links else "")
            )
        ),
        SectionBlock(
            text=MarkdownTextObject(
                text=(
                    f"*Who decides:* {inp.approver_text} ({mentions(inp.deciders)})\n"
                    f"*Window ends:* {_when(inp.deadline)}; then {default}."
                )
            )
        ),
        ActionsBlock(block_id="decision", elements=_buttons(inp)),
    ]
    if note:
        blocks.append(ContextBlock(elements=[MarkdownTextObject(text=f"⏳ {note}")]))
        text = f"{text} ({note})"
    return SlackMessage(text=text, blocks=[b.to_dict() for b in blocks])


def _buttons(inp: DecisionRequestInput) -> list[ButtonElement]:
    deployment = inp.ctx.deployment
    buttons = [
        ButtonElement(
            text="Approve rollback",
            action_id=APPROVE,
            value=deployment,
            style="danger",
            confirm=ConfirmObject(
                title="Roll back now?",
                text=f"Traffic of *{deployment}* goes back to control at once.",
                confirm="Roll back",
                deny="Cancel",
            ),
        ),
        ButtonElement(text="Deny — continue canary", action_id=DENY, value=deployment),
    ]
    if inp.can_investigate:
        buttons.append(
            ButtonElement(text="Investigating", action_id=INVESTIGATING, value=deployment)
        )
    return buttons


def decision_outcome(inp: DecisionClosedInput) -> SlackMessage:
    """ "no decision by 19:26 UTC — default applied: rollback", or who decided, mentioned."""
    by = {p.id: p for p in inp.deciders}
    people = [by[p] for p in inp.decided_by if p in by]
    who = deciders_text(inp)
    text = f"Rollback decision for {inp.ctx.deployment}: {inp.outcome}"
    if inp.decided_by:
        text += f" (by {who}, {inp.at:%H:%M:%S} UTC)"
    if people:
        line = f"Decided by {' and '.join(mention(p) for p in people)} at {_when(inp.at)}"
    elif inp.decided_by:
        line = f"Decided by {who} at {_when(inp.at)}"
    else:
        line = f"Closed at {_when(inp.at)}"
    blocks: list[Block] = [
        SectionBlock(text=MarkdownTextObject(text=f"*{inp.ctx.deployment}*: {inp.outcome}")),
        ContextBlock(elements=[MarkdownTextObject(text=line)]),
    ]
    return SlackMessage(text=text, blocks=[b.to_dict() for b in blocks])


def accountable(inp: EscalationInput) -> SlackMessage:
    """The accountable role of an automatic decision, told and mentioned (not asked)."""
    reason = verbatim(f"{inp.reason[:1].upper()}{inp.reason[1:]}")
    people = mentions(inp.holders) or "nobody on the roster"
    blocks: list[Block] = [
        SectionBlock(text=MarkdownTextObject(text=f"ℹ️ {reason}.")),
        ContextBlock(elements=[MarkdownTextObject(text=f"Accountable: {people}")]),
    ]
    return SlackMessage(
        text=f"{reason}. Accountable: {people}", blocks=[b.to_dict() for b in blocks]
    )


def escalation(inp: EscalationInput) -> SlackMessage:
    """With an Acknowledge button when the escalation climbs: whoever has it in hand stops
    the climb (or `rollback ack -d D --escalation`)."""
    stage = f"\n_{verbatim(inp.stage_text, 300)}_" if inp.stage_text else ""
    reason = verbatim(inp.reason)
    text = f"🚨 Escalation for {inp.ctx.deployment}: {reason}"
    blocks: list[Block] = [
        SectionBlock(
            text=MarkdownTextObject(text=f"🚨 *Escalation: {inp.ctx.deployment}*\n{reason}{stage}")
        ),
        ContextBlock(elements=[MarkdownTextObject(text=mentions(inp.holders) or "no one")]),
    ]
    if inp.key is not None:
        value = json.dumps({"deployment": inp.ctx.deployment, "key": inp.key})
        blocks.append(
            ActionsBlock(
                block_id="escalation",
                elements=[
                    ButtonElement(
                        text="Acknowledge: I have it",
                        action_id=ESCALATION_ACK,
                        value=value,
                        style="primary",
                    )
                ],
            )
        )
        blocks.append(
            ContextBlock(
                elements=[
                    MarkdownTextObject(
                        text=f"Or `rollback ack -d {inp.ctx.deployment} --escalation {inp.key} "
                        "--as <id>`"
                    )
                ]
            )
        )
    return SlackMessage(text=text, blocks=[b.to_dict() for b in blocks])


def follow_up_notice(inp: FollowUpNoticeInput) -> SlackMessage:
    """Due and reminder notices carry an Acknowledge button for the follow-up's owners."""
    deployment = inp.ctx.deployment
    heading = FOLLOW_UP_HEADINGS[inp.kind]
    owners = mentions(inp.owners) or "nobody on the roster"
    open_ = inp.kind in ("due", "reminder")
    text = f"📋 {inp.name} for {deployment}: {heading}. Owner: {owners}" + (
        f". Acknowledge with the button or `{ack_command(inp)}`" if open_ else ""
    )
    actions = "\n".join(f"• {action}" for action in inp.actions)
    blocks: list[Block] = [
        SectionBlock(
            text=MarkdownTextObject(
                text=f"📋 *{inp.name}* for *{deployment}*: {heading}"
                + (f"\n{actions}" if actions else "")
            )
        )
    ]
    if inp.detail:
        blocks.append(SectionBlock(text=MarkdownTextObject(text=inp.detail)))
    blocks.append(ContextBlock(elements=[MarkdownTextObject(text=f"Owner: {owners}")]))
    if open_ and inp.workflow_id:
        value = json.dumps(
            {"workflow_id": inp.workflow_id, "follow_up": inp.follow_up, "deployment": deployment}
        )
        blocks.append(
            ActionsBlock(
                block_id="follow_up",
                elements=[
                    ButtonElement(
                        text="Acknowledge", action_id=FOLLOW_UP_ACK, value=value, style="primary"
                    )
                ],
            )
        )
    return SlackMessage(text=text, blocks=[b.to_dict() for b in blocks])


def comms_approval_request(inp: CommsApprovalRequestInput) -> SlackMessage:
    """A held audience's wording with "Approve wording" and "Hold" for its approvers."""
    deployment = inp.ctx.deployment
    default = comms_default_text(inp)
    text = (
        f"✉️ {inp.audience_name} message for {deployment} needs approval by "
        f"{inp.approver_text} before {inp.deadline:%H:%M:%S} UTC; then {default}."
    )
    quoted = "\n".join(f">{line}" for line in inp.wording.splitlines() or [""])
    value = json.dumps({"deployment": deployment, "audience": inp.audience})
    blocks: list[Block] = [
        HeaderBlock(text=f"Approve wording: {inp.audience_name} ({deployment})"[:150]),
        SectionBlock(text=MarkdownTextObject(text=f"*To {inp.channel}:*\n{quoted}"[:3000])),
        SectionBlock(
            text=MarkdownTextObject(
                text=(
                    f"*Who approves:* {inp.approver_text} ({mentions(inp.approvers)})\n"
                    f"*Window ends:* {_when(inp.deadline)}; then {default}."
                )
            )
        ),
        ActionsBlock(
            block_id="comms",
            elements=[
                ButtonElement(
                    text="Approve wording",
                    action_id=COMMS_APPROVE,
                    value=value,
                    style="primary",
                    confirm=ConfirmObject(
                        title="Send this message?",
                        text=f"The wording goes to *{inp.channel}* as shown.",
                        confirm="Approve",
                        deny="Cancel",
                    ),
                ),
                ButtonElement(text="Hold", action_id=COMMS_HOLD, value=value),
            ],
        ),
    ]
    return SlackMessage(text=text, blocks=[b.to_dict() for b in blocks])


def plain(text: str) -> SlackMessage:
    return SlackMessage(
        text=text, blocks=[SectionBlock(text=MarkdownTextObject(text=text)).to_dict()]
    )


def _label(url: str) -> str:
    if "grafana" in url:
        return "dashboard"
    if "graph" in url or "prometheus" in url:
        return "graph"
    return "link"
