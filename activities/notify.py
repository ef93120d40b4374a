"""How a rollback talks to people: the `Notifier` protocol, plain-text messages, and the
console notifier (the demo prints its lines; tests read `sent`).

A Slack notifier implements the same protocol with Block Kit (activities/slack_messages.py).
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal, Protocol

from activities.models import (
    CommsApprovalRequestInput,
    DecisionClosedInput,
    DecisionMessage,
    DecisionRequestInput,
    DecisionUpdateInput,
    EscalationInput,
    EscalationResult,
    FollowUpNoticeInput,
    RoleHolders,
    StepContext,
)

Kind = Literal[
    "post",
    "decision_request",
    "decision_outcome",
    "decision_update",
    "escalation",
    "accountable",
    "follow_up_notice",
    "comms_approval_request",
]


class Notifier(Protocol):
    """`key` names a message across retries of the activity that sends it: a notifier that
    sees the same key again must not send it twice."""

    async def post(self, channel: str, text: str, *, key: str | None = None) -> str | None:
        """Send `text`; the message's id (Slack's `ts`) when there is one."""
        ...

    async def post_document(
        self, channel: str, title: str, text: str, *, key: str | None = None, more: str = ""
    ) -> None:
        """A long mrkdwn text under a title (Slack: a header and sections within its limits;
        `more` says where the rest is when it does not fit)."""
        ...

    async def request_decision(
        self, inp: DecisionRequestInput, *, key: str | None = None
    ) -> DecisionMessage: ...

    async def close_decision(self, inp: DecisionClosedInput, *, key: str | None = None) -> None:
        """Mark the decision request (`inp.message`) as decided."""
        ...

    async def update_decision(self, inp: DecisionUpdateInput, *, key: str | None = None) -> None:
        """The open request's message shows its new deadline (or a note of it is posted)."""
        ...

    async def escalate(self, inp: EscalationInput, *, key: str | None = None) -> EscalationResult:
        """Tell the escalation path (in the incident's thread when `inp.thread_ts`): the people
        told and the message's ts."""
        ...

    async def tell_accountable(self, inp: EscalationInput, *, key: str | None = None) -> None:
        """The accountable role of an automatic decision is told (not asked)."""
        ...

    async def follow_up_notice(self, inp: FollowUpNoticeInput, *, key: str | None = None) -> None:
        """A follow-up is due (or still open): its owners can acknowledge it."""
        ...

    async def request_comms_approval(
        self, inp: CommsApprovalRequestInput, *, key: str | None = None
    ) -> None:
        """A held audience's wording, put to the people who may approve or hold it."""
        ...

    async def aclose(self) -> None: ...


# --- the messages, as text -----------------------------------------------------------------


def prefix(ctx: StepContext) -> str:
    return "[DRILL] " if ctx.drill else ""


def holders_text(holders: list[RoleHolders]) -> str:
    """ "Sprint DRI (Backend), Sprint DRI (Search); QA DRI; Engineering Manager: Jane Doe": a
    role is named once (not again when its people's names already say it)."""
    parts = []
    for holder in holders:
        names = [p.name for p in holder.people]
        if not names:
            parts.append(f"{holder.role_name}: nobody on the roster")
        elif all(n.startswith(holder.role_name) for n in names):
            parts.append(", ".join(names))
        else:
            parts.append(f"{holder.role_name}: {', '.join(names)}")
    return "; ".join(parts) or "nobody"


def decision_request_text(inp: DecisionRequestInput) -> str:
    default = "the rollback starts" if inp.default_action == "rollback" else "the canary continues"
    evidence = ", ".join(f"{k}={v}" for k, v in sorted(inp.evidence.items())) or "none given"
    lines = [
        f"{prefix(inp.ctx)}⚖️ Rollback decision needed for {inp.ctx.deployment}: "
        f"{inp.trigger_name} at {inp.phase}% canary.",
        f"Reason: {inp.reason or 'not given'}. Evidence: {evidence}.",
        f"Who may decide: {inp.approver_text} ({holders_text(inp.deciders)}).",
        f"Deadline: {inp.deadline:%H:%M:%S} UTC; if nobody decides by then, {default}.",
        f"Decide: rollback decide -d {inp.ctx.deployment} --approve|--deny --as <id>"
        + (" (or --investigating, to extend the window)" if inp.can_investigate else ""),
    ]
    if inp.links:
        lines.insert(2, "Links: " + " ".join(inp.links))
    return "\n".join(lines)


def decision_outcome_text(inp: DecisionClosedInput) -> str:
    who = deciders_text(inp)
    return (
        f"{prefix(inp.ctx)}Decision for {inp.ctx.deployment}: {inp.outcome} "
        f"(by {who}, {inp.at:%H:%M:%S} UTC)"
    )


def deciders_text(inp: DecisionClosedInput) -> str:
    """ "Sprint DRI (Backend) and QA DRI"; "the plan's default" for nobody."""
    names = {p.id: p.name for p in inp.deciders}
    who = [names.get(p, "the system" if p == "system" else p) for p in inp.decided_by]
    return " and ".join(who) or "nobody (the plan's default)"


def decision_update_text(inp: DecisionUpdateInput) -> str:
    request = inp.request
    return (
        f"{prefix(request.ctx)}Decision for {request.ctx.deployment}: {inp.note}; the window now "
        f"ends at {request.deadline:%H:%M:%S} UTC"
    )


def accountable_text(inp: EscalationInput) -> str:
    return (
        f"{prefix(inp.ctx)}ℹ️ {inp.reason[:1].upper()}{inp.reason[1:]}. "
        f"Accountable: {holders_text(inp.holders)}"
    )


def escalation_text(inp: EscalationInput) -> str:
    step = f" ({inp.ctx.step_name})" if inp.ctx.step_name not in ("", "Escalation") else ""
    lines = [
        f"{prefix(inp.ctx)}🚨 Escalation for {inp.ctx.deployment}{step}: {inp.reason}",
        f"Told: {holders_text(inp.holders)}" + (f" ({inp.stage_text})" if inp.stage_text else ""),
    ]
    if inp.key is not None:
        lines.append(
            f"Acknowledge: rollback ack -d {inp.ctx.deployment} --escalation {inp.key} --as <id>"
        )
    return "\n".join(lines)


FOLLOW_UP_HEADINGS = {
    "due": "is due",
    "reminder": "reminder: still open",
    "done": "done",
    "missed": "missed",
}


def follow_up_notice_text(inp: FollowUpNoticeInput) -> str:
    lines = [
        f"{prefix(inp.ctx)}📋 {inp.name} for {inp.ctx.deployment}: {FOLLOW_UP_HEADINGS[inp.kind]}",
        *(f"- {action}" for action in inp.actions),
        f"Owner: {holders_text(inp.owners)}",
    ]
    if inp.detail:
        lines.append(inp.detail)
    if inp.kind in ("due", "reminder"):
        lines.append(f"Acknowledge: {ack_command(inp)}")
    return "\n".join(lines)


def ack_command(inp: FollowUpNoticeInput) -> str:
    return f"rollback ack -d {inp.ctx.deployment} {inp.follow_up} --as <id>"


def comms_default_text(inp: CommsApprovalRequestInput) -> str:
    return "it is sent as worded" if inp.default == "send" else "it is held (not sent)"


def comms_command(inp: CommsApprovalRequestInput, action: Literal["approve", "deny"]) -> str:
    audience = "" if inp.audience == "customer_comms" else f" --audience {inp.audience}"
    return f"rollback comms -d {inp.ctx.deployment} --{action}{audience} --as <id>"


def comms_approval_text(inp: CommsApprovalRequestInput) -> str:
    quoted = "\n".join(f"> {line}" for line in inp.wording.splitlines() or [""])
    return "\n".join(
        [
            f"{prefix(inp.ctx)}✉️ {inp.audience_name} message for {inp.ctx.deployment} needs "
            f"approval by {inp.approver_text} ({holders_text(inp.approvers)}) before "
            f"{inp.deadline:%H:%M:%S} UTC; if nobody answers by then, {comms_default_text(inp)}.",
            f"To {inp.channel}:",
            quoted,
            f"Approve: {comms_command(inp, 'approve')}",
            f"Hold: {comms_command(inp, 'deny')}",
        ]
    )


def people_of(holders: list[RoleHolders]) -> list[str]:
    return list(dict.fromkeys(p.id for h in holders for p in h.people))


# --- the console notifier --------------------------------------------------------------------


@dataclass(frozen=True)
class SentMessage:
    kind: Kind
    channel: str
    text: str
    key: str | None
    ts: str
    at: datetime


class ConsoleNotifier:
    """Logs each message as readable lines and keeps it in `sent`."""

    REMEMBERED_KEYS = 10_000

    def __init__(self, logger: logging.Logger | None = None) -> None:
        self.log = logger or logging.getLogger("rollback.notify")
        self.sent: list[SentMessage] = []
        self._by_key: OrderedDict[str, str] = OrderedDict()

    def texts(self, kind: Kind | None = None) -> list[str]:
        return [m.text for m in self.sent if kind is None or m.kind == kind]

    async def post(self, channel: str, text: str, *, key: str | None = None) -> str | None:
        return self._send("post", channel, text, key)

    async def post_document(
        self, channel: str, title: str, text: str, *, key: str | None = None, more: str = ""
    ) -> None:
        self._send("post", channel, f"{title}\n{text}", key)

    async def request_decision(
        self, inp: DecisionRequestInput, *, key: str | None = None
    ) -> DecisionMessage:
        ts = self._send("decision_request", inp.ctx.channel, decision_request_text(inp), key)
        return DecisionMessage(channel=inp.ctx.channel, ts=ts)

    async def close_decision(self, inp: DecisionClosedInput, *, key: str | None = None) -> None:
        channel = inp.message.channel if inp.message else inp.ctx.channel
        self._send("decision_outcome", channel, decision_outcome_text(inp), key)

    async def update_decision(self, inp: DecisionUpdateInput, *, key: str | None = None) -> None:
        self._send("decision_update", inp.request.ctx.channel, decision_update_text(inp), key)

    async def escalate(self, inp: EscalationInput, *, key: str | None = None) -> EscalationResult:
        thread = f"[thread {inp.thread_ts}] " if inp.thread_ts else ""
        ts = self._send("escalation", inp.ctx.channel, thread + escalation_text(inp), key)
        return EscalationResult(notified=people_of(inp.holders), ts=inp.thread_ts or ts)

    async def tell_accountable(self, inp: EscalationInput, *, key: str | None = None) -> None:
        self._send("accountable", inp.ctx.channel, accountable_text(inp), key)

    async def follow_up_notice(self, inp: FollowUpNoticeInput, *, key: str | None = None) -> None:
        self._send("follow_up_notice", inp.ctx.channel, follow_up_notice_text(inp), key)

    async def request_comms_approval(
        self, inp: CommsApprovalRequestInput, *, key: str | None = None
    ) -> None:
        self._send("comms_approval_request", inp.ctx.channel, comms_approval_text(inp), key)

    async def aclose(self) -> None:
        return None

    def _send(self, kind: Kind, channel: str, text: str, key: str | None) -> str:
        if key is not None and key in self._by_key:
            return self._by_key[key]
        ts = f"{len(self.sent) + 1}"
        self.sent.append(SentMessage(kind, channel, text, key, ts, datetime.now(UTC)))
        if key is not None:
            self._by_key[key] = ts
            while len(self._by_key) > self.REMEMBERED_KEYS:
                self._by_key.popitem(last=False)
        self.log.info("%s %s", channel, text.replace("\n", "\n    "))
        return ts
