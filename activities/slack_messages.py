"""Slack messages as Block Kit (`slack_sdk.models.blocks`), each with a plain `text` fallback.

Pure functions: the Slack notifier sends what they build, and tests read it.
"""

from __future__ import annotations

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
    DecisionClosedInput,
    DecisionRequestInput,
    EscalationInput,
    RoleHolders,
)

APPROVE, DENY, INVESTIGATING = "rollback_approve", "rollback_deny", "rollback_investigating"
"""Button action ids; the gateway maps them back to decisions (gateway/slack_handler.py)."""


@dataclass(frozen=True)
class SlackMessage:
    text: str
    blocks: list[dict[str, Any]]


def mentions(holders: list[RoleHolders]) -> str:
    """`QA DRI: <@U1>` per role; a role nobody holds says so rather than vanishing."""
    parts = []
    for holder in holders:
        people = " ".join(f"<@{p.slack_user_id}>" for p in holder.people) or "_nobody on roster_"
        parts.append(f"{holder.role_name}: {people}")
    return "; ".join(parts)


def _when(at: datetime) -> str:
    epoch = int(at.timestamp())
    return f"<!date^{epoch}^{{time_secs}} ({{date_short_pretty}})|{at:%H:%M:%S} UTC>"


def decision_request(inp: DecisionRequestInput) -> SlackMessage:
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
    who = ", ".join(inp.decided_by) or "nobody"
    text = (
        f"Rollback decision for {inp.ctx.deployment}: {inp.outcome} "
        f"(by {who}, {inp.at:%H:%M:%S} UTC)"
    )
    blocks: list[Block] = [
        SectionBlock(text=MarkdownTextObject(text=f"*{inp.ctx.deployment}*: {inp.outcome}")),
        ContextBlock(elements=[MarkdownTextObject(text=f"Decided by {who} at {_when(inp.at)}")]),
    ]
    return SlackMessage(text=text, blocks=[b.to_dict() for b in blocks])


def escalation(inp: EscalationInput) -> SlackMessage:
    text = f"🚨 Escalation for {inp.ctx.deployment}: {inp.reason}"
    blocks: list[Block] = [
        SectionBlock(
            text=MarkdownTextObject(text=f"🚨 *Escalation: {inp.ctx.deployment}*\n{inp.reason}")
        ),
        ContextBlock(elements=[MarkdownTextObject(text=mentions(inp.holders) or "no one")]),
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
