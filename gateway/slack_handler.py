"""Slack interactions and slash commands, the same whether they come over HTTP or Socket Mode.

Each handler returns the immediate acknowledgement (Slack wants it within 3 seconds) and the
slower follow-up, which answers through the request's `response_url`.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

import httpx
from temporalio.service import RPCError

from client import operations
from config.settings import Settings
from contract.follow_ups import FollowUpAck, follow_ups_id
from contract.rollback import (
    CommsApprovalInput,
    DecisionInput,
    EscalationAck,
    RollbackOptions,
    TriggerEvent,
    deployment_problem,
)
from gateway.decisions import (
    deliver_ack,
    deliver_comms,
    deliver_decision,
    deliver_escalation_ack,
)
from gateway.relay import Relay
from gateway.temporal_link import TemporalLink, TemporalUnavailable
from runbook.authority import may_decide
from runbook.matrix import describe_role_sets
from runbook.policy import Policy
from runbook.status import DecisionAction

log = logging.getLogger("gateway.slack")

ACTIONS: dict[str, DecisionAction] = {
    "rollback_approve": "approve",
    "rollback_deny": "deny",
    "rollback_investigating": "investigating",
}
"""Button action ids, as the decision message (activities/slack_messages.py) builds them."""
# Kept equal to activities.slack_messages.APPROVE/DENY/INVESTIGATING (a test checks it).
FOLLOW_UP_ACK = "follow_up_ack"
"""A follow-up notice's Acknowledge button; value `{"workflow_id", "follow_up", "deployment"}`."""
COMMS_ACTIONS: dict[str, Literal["approve", "deny"]] = {
    "comms_approve": "approve",
    "comms_hold": "deny",
}
"""A wording approval request's buttons; value `{"deployment", "audience"}`."""
ESCALATION_ACK = "escalation_ack"
"""An escalation's Acknowledge button; value `{"deployment", "key"}`."""
# Kept equal to activities.slack_messages.FOLLOW_UP_ACK/COMMS_APPROVE/COMMS_HOLD/ESCALATION_ACK
# (tested).
NOT_COUNTED = {
    "decision": "Decisions are taken by the roles named in the message.",
    "ack": "A follow-up is acknowledged by its owner's role or by the escalation path.",
    "comms": "The wording is approved by the roles named in the message.",
    "escalation": "An escalation is acknowledged by a role of the escalation path.",
}

USAGE = (
    "Usage: `/rollback <deployment> <reason>` starts an operational-anomaly rollback "
    "(Sprint DRI only); `/rollback status [deployment]` shows where rollbacks stand."
)


class BadSlackRequest(ValueError):
    pass


@dataclass(frozen=True)
class Clicked:
    """Who clicked, as Slack's signed request says, and the message the button was on."""

    user_id: str
    team: str
    person: str
    response_url: str
    message: str
    """`channel/ts`: the decision the click is for is the one posted there."""


REASON_VIEW = "rollback_reason"
"""The modal asking why a person denies or investigates."""


def reason_view(action: str, metadata: str) -> dict[str, Any]:
    """Slack's modal (Block Kit): one required multi-line input, the click kept in
    `private_metadata` (Slack keeps it; the person cannot change it)."""
    verb = "Deny the rollback" if action == "deny" else "Investigate first"
    return {
        "type": "modal",
        "callback_id": REASON_VIEW,
        "title": {"type": "plain_text", "text": verb[:24]},
        "submit": {"type": "plain_text", "text": "Deny" if action == "deny" else "Extend"},
        "close": {"type": "plain_text", "text": "Cancel"},
        "private_metadata": metadata,
        "blocks": [
            {
                "type": "input",
                "block_id": "reason",
                "label": {
                    "type": "plain_text",
                    "text": "Why? (the record, the report and the channel show it)",
                },
                "element": {"type": "plain_text_input", "action_id": "reason", "multiline": True},
            }
        ],
    }


FollowUp = Callable[[], Coroutine[Any, Any, None]]


@dataclass
class Handled:
    ack: dict[str, Any] | None = None
    """The body of the immediate 200 (None: an empty 200)."""
    later: FollowUp | None = None


@dataclass
class SlackHandler:
    settings: Settings
    policy: Policy
    link: TemporalLink
    http: httpx.AsyncClient = field(default_factory=lambda: httpx.AsyncClient(timeout=5))
    relay: Relay | None = None

    def __post_init__(self) -> None:
        if self.relay is None:
            self.relay = Relay(self.settings)

    # --- interactivity -----------------------------------------------------------------

    def interaction(self, payload: dict[str, Any], made_at: datetime | None = None) -> Handled:
        """`made_at`: when the person clicked (bounded by Slack's signed timestamp); a decision
        is judged against the window's deadline by it, however late a worker sees it."""
        made_at = made_at or datetime.now(UTC)
        if payload.get("type") == "view_submission":
            return self._reasoned(payload, made_at)
        if payload.get("type") != "block_actions":
            return Handled()
        try:
            action = payload["actions"][0]
            action_id = str(action["action_id"])
            value = str(action.get("value") or "")
            user_id = str(payload["user"]["id"])
            response_url = str(payload.get("response_url") or "")
            message_ts = str(
                (payload.get("container") or {}).get("message_ts")
                or (payload.get("message") or {}).get("ts")
                or ""
            )
            channel = str((payload.get("channel") or {}).get("id") or "")
        except (KeyError, IndexError, TypeError, AttributeError) as error:
            raise BadSlackRequest(f"block_actions payload without {error}") from None
        if action_id in ACTIONS:
            kind = "decision"
        elif action_id == FOLLOW_UP_ACK:
            kind = "ack"
        elif action_id in COMMS_ACTIONS:
            kind = "comms"
        elif action_id == ESCALATION_ACK:
            kind = "escalation"
        else:
            return Handled()
        assert self.relay is not None
        team, foreign = self.relay.workspace(payload)
        if foreign is not None:
            return Handled(later=self._reply_later(response_url, f"⛔ {foreign}"))
        person = self.policy.person_by_slack_id(user_id)
        if person is None:
            text = (
                f"<@{user_id}>, you are not in the rollback roster, so your click was not "
                f"counted. {NOT_COUNTED[kind]}"
            )
            return Handled(later=self._reply_later(response_url, text))
        clicked = Clicked(user_id, team, person, response_url, f"{channel}/{message_ts}")
        # A double click (same person, same button, same message) counts once.
        request_id = f"slack:{channel}:{message_ts}:{user_id}:{action_id}"
        if kind == "ack":
            return self._acknowledge(value, clicked, request_id, made_at)
        if kind == "comms":
            return self._approve_comms(value, action_id, clicked, request_id, made_at)
        if kind == "escalation":
            return self._acknowledge_escalation(value, clicked, request_id, made_at)
        problem = deployment_problem(value, "the button's deployment")
        if problem is not None:
            return Handled(later=self._reply_later(response_url, f"⚠️ {problem}: {OUTDATED}"))
        action = ACTIONS[action_id]
        if action != "approve":
            # A deny or an investigation says why before anything counts: a modal asks.
            trigger_id = str(payload.get("trigger_id") or "")
            return Handled(
                later=self._ask_reason(trigger_id, value, action, clicked, request_id, made_at)
            )
        decision = self._decision(value, action, clicked, request_id, made_at, "")

        async def later() -> None:
            text = await deliver_decision(self.link, value, decision)
            await self.respond(response_url, text)

        return Handled(later=later)

    def _decision(
        self,
        deployment: str,
        action: DecisionAction,
        clicked: Clicked,
        request_id: str,
        made_at: datetime,
        reason: str,
    ) -> DecisionInput:
        """The click as the rollback receives it: bound to its message, signed by the gateway."""
        assert self.relay is not None
        return DecisionInput(
            action=action,
            person=clicked.person,
            via="slack",
            request_id=request_id,
            made_at=made_at,
            reason=reason,
            message=clicked.message,
            proof=self.relay.proof(
                "decide",
                person=clicked.person,
                deployment=deployment,
                slack_user=clicked.user_id,
                slack_team=clicked.team,
                made_at=made_at,
                request_id=request_id,
                choice=action,
                reason=reason,
                message=clicked.message,
            ),
        )

    def _ask_reason(
        self,
        trigger_id: str,
        deployment: str,
        action: DecisionAction,
        clicked: Clicked,
        request_id: str,
        made_at: datetime,
    ) -> FollowUp:
        """Slack's modal for the reason (`views.open`, within the click's 3 seconds); the
        decision goes to the rollback when the person submits it (`_reasoned`), judged by when
        they clicked."""
        metadata = json.dumps(
            {
                "deployment": deployment,
                "action": action,
                "user": clicked.user_id,
                "team": clicked.team,
                "message": clicked.message,
                "response_url": clicked.response_url,
                "request_id": request_id,
                "made_at": made_at.isoformat(),
            }
        )

        async def later() -> None:
            opened = await self._slack_api(
                "views.open", {"trigger_id": trigger_id, "view": reason_view(action, metadata)}
            )
            if opened is not None:
                await self.respond(
                    clicked.response_url,
                    f"⚠️ Slack could not ask for your reason ({opened}): nothing was counted. Run "
                    f'`rollback decide -d {deployment} --{action} --reason "…" --as '
                    f"{clicked.person}`.",
                )

        return later

    def _reasoned(self, payload: dict[str, Any], made_at: datetime) -> Handled:
        """The reason modal submitted: the decision, with its reason, to the rollback."""
        view = payload.get("view") or {}
        if view.get("callback_id") != REASON_VIEW:
            return Handled()
        try:
            meta = json.loads(view.get("private_metadata") or "{}")
            reason = str(view["state"]["values"]["reason"]["reason"]["value"] or "").strip()
            user_id = str(payload["user"]["id"])
        except (KeyError, TypeError, ValueError) as error:
            raise BadSlackRequest(f"view_submission without {error}") from None
        if not reason:
            return Handled(ack={"response_action": "errors", "errors": {"reason": "Say why."}})
        assert self.relay is not None
        team, foreign = self.relay.workspace(payload)
        person = self.policy.person_by_slack_id(user_id)
        if foreign is not None or person is None or user_id != meta.get("user"):
            why = foreign or "only the person who clicked can give the reason"
            return Handled(ack={"response_action": "errors", "errors": {"reason": why}})
        deployment = str(meta.get("deployment") or "")
        action = meta.get("action")
        if deployment_problem(deployment) is not None or action not in ("deny", "investigating"):
            raise BadSlackRequest("view_submission: private_metadata is not the gateway's")
        clicked = Clicked(user_id, team, person, str(meta["response_url"]), str(meta["message"]))
        decision = self._decision(
            deployment,
            action,
            clicked,
            str(meta["request_id"]),
            datetime.fromisoformat(str(meta["made_at"])),
            reason,
        )

        async def later() -> None:
            text = await deliver_decision(self.link, deployment, decision)
            await self.respond(clicked.response_url, text)

        return Handled(ack=None, later=later)

    async def _slack_api(self, method: str, body: dict[str, Any]) -> str | None:
        """A Slack Web API call with the bot token; None when it went through, else why not."""
        token = self.settings.slack_bot_token
        if not token:
            return "the gateway has no ROLLBACK_SLACK_BOT_TOKEN"
        base = (self.settings.slack_api_url or "https://slack.com/api").rstrip("/")
        try:
            answer = await self.http.post(
                f"{base}/{method}", json=body, headers={"Authorization": f"Bearer {token}"}
            )
            data = answer.json()
        except (httpx.HTTPError, ValueError) as error:
            return f"{method}: {error}"
        if not isinstance(data, dict) or not data.get("ok"):
            return f"{method}: {data.get('error') if isinstance(data, dict) else data}"
        return None

    def _acknowledge(
        self, value: str, clicked: Clicked, request_id: str, made_at: datetime
    ) -> Handled:
        person, response_url = clicked.person, clicked.response_url
        fields = _button_value(value, "workflow_id", "follow_up")
        target = fields.get("workflow_id", "")
        if not fields or not target.startswith(follow_ups_id("")):
            return Handled(later=self._reply_later(response_url, OUTDATED))
        deployment = fields.get("deployment") or _deployment_of(target)
        problem = deployment_problem(deployment, "the button's deployment")
        if problem is not None or not FOLLOW_UPS_ID.fullmatch(target):
            return Handled(later=self._reply_later(response_url, OUTDATED))
        assert self.relay is not None
        ack = FollowUpAck(
            follow_up=fields["follow_up"],
            person=person,
            via="slack",
            request_id=request_id,
            made_at=made_at,
            proof=self.relay.proof(
                "ack_follow_up",
                person=person,
                deployment=deployment,
                slack_user=clicked.user_id,
                slack_team=clicked.team,
                made_at=made_at,
                request_id=request_id,
                choice="ack",
                window=fields["follow_up"],
                rollback=target,
            ),
        )

        async def later() -> None:
            text = await deliver_ack(self.link, target, deployment, ack)
            await self.respond(response_url, text)

        return Handled(later=later)

    def _acknowledge_escalation(
        self, value: str, clicked: Clicked, request_id: str, made_at: datetime
    ) -> Handled:
        person, response_url = clicked.person, clicked.response_url
        fields = _button_value(value, "deployment", "key")
        if not fields:
            return Handled(later=self._reply_later(response_url, OUTDATED))
        deployment = fields["deployment"]
        problem = deployment_problem(deployment, "the button's deployment")
        if problem is not None:
            return Handled(later=self._reply_later(response_url, f"⚠️ {problem}: {OUTDATED}"))
        assert self.relay is not None
        key = fields["key"][:200]
        ack = EscalationAck(
            key=key,
            person=person,
            via="slack",
            who=self.policy.people[person].name,
            request_id=request_id,
            made_at=made_at,
            proof=self.relay.proof(
                "ack_escalation",
                person=person,
                deployment=deployment,
                slack_user=clicked.user_id,
                slack_team=clicked.team,
                made_at=made_at,
                request_id=request_id,
                choice="ack",
                window=key,
            ),
        )

        async def later() -> None:
            outcome = await deliver_escalation_ack(self.link, deployment, ack)
            await self.respond(response_url, outcome.text)

        return Handled(later=later)

    def _approve_comms(
        self,
        value: str,
        action_id: str,
        clicked: Clicked,
        request_id: str,
        made_at: datetime,
    ) -> Handled:
        person, response_url = clicked.person, clicked.response_url
        fields = _button_value(value, "deployment", "audience")
        if not fields:
            return Handled(later=self._reply_later(response_url, OUTDATED))
        deployment = fields["deployment"]
        problem = deployment_problem(deployment, "the button's deployment")
        if problem is not None:
            return Handled(later=self._reply_later(response_url, f"⚠️ {problem}: {OUTDATED}"))
        assert self.relay is not None
        approval = CommsApprovalInput(
            action=COMMS_ACTIONS[action_id],
            person=person,
            audience=fields["audience"],
            via="slack",
            request_id=request_id,
            made_at=made_at,
            proof=self.relay.proof(
                "comms",
                person=person,
                deployment=deployment,
                slack_user=clicked.user_id,
                slack_team=clicked.team,
                made_at=made_at,
                request_id=request_id,
                choice=COMMS_ACTIONS[action_id],
                window=fields["audience"],
            ),
        )

        async def later() -> None:
            text = await deliver_comms(self.link, deployment, approval)
            await self.respond(response_url, text)

        return Handled(later=later)

    # --- slash commands ----------------------------------------------------------------

    def command(self, fields: dict[str, str], made_at: datetime | None = None) -> Handled:
        made_at = made_at or datetime.now(UTC)
        text = fields.get("text", "").strip()
        user_id = fields.get("user_id", "")
        response_url = fields.get("response_url", "")
        words = text.split()
        if not words or words[0] in ("help", "-h", "--help"):
            return Handled(ack=_ephemeral(USAGE))
        if words[0] == "status":
            deployment = words[1] if len(words) > 1 else None
            problem = deployment_problem(deployment) if deployment is not None else None
            if problem is not None:
                return Handled(ack=_ephemeral(f"⚠️ {problem}. {USAGE}"))
            return Handled(
                ack=_ephemeral("Looking it up…"), later=self._status_later(response_url, deployment)
            )
        deployment, reason = words[0], " ".join(words[1:])
        problem = deployment_problem(deployment)
        if problem is not None:
            return Handled(ack=_ephemeral(f"⚠️ {problem}: nothing was started. {USAGE}"))
        if not reason:
            return Handled(ack=_ephemeral(f"Say why: `/rollback {deployment} <reason>`. {USAGE}"))
        person = self.policy.person_by_slack_id(user_id)
        initiators = self.policy.triggers["operational_anomaly"].initiated_by or []
        if person is None or not may_decide(self.policy, person, initiators):
            who = describe_role_sets(self.policy, initiators)
            return Handled(
                ack=_ephemeral(
                    f"Only a {who} can start an operational-anomaly rollback; you (<@{user_id}>) "
                    "are not one in the roster. Ask one, or raise it as an alert."
                )
            )
        assert self.relay is not None
        team = fields.get("team_id", "")
        if self.relay.team and team != self.relay.team:
            return Handled(
                ack=_ephemeral(
                    f"⛔ This command comes from another Slack workspace ({team or 'unknown'}) "
                    "than the one the rollback engine serves: nothing was started."
                )
            )
        delivery_key = f"slack:command:{user_id}:{fields.get('trigger_id') or made_at}"
        event = TriggerEvent(
            trigger="operational_anomaly",
            reason=reason,
            source="slack",
            raised_by=person,
            received_at=made_at,
            delivery_key=delivery_key,
            proof=self.relay.proof(
                "trigger",
                person=person,
                deployment=deployment,
                slack_user=user_id,
                slack_team=team,
                made_at=made_at,
                request_id=delivery_key,
                choice="operational_anomaly",
                reason=reason,
            ),
        )

        async def later() -> None:
            try:
                client = await self.link.client()
                raised = await operations.raise_trigger(
                    client,
                    task_queue=self.settings.task_queue,
                    policy=self.policy,
                    deployment=deployment,
                    event=event,
                    options=RollbackOptions(ui_metadata=self.settings.ui_metadata),
                )
            except (TemporalUnavailable, RPCError) as error:
                await self.respond(response_url, f"⚠️ NOT started: {error}")
                return
            reply = raised.reply
            if reply is None:
                await self.respond(
                    response_url,
                    f"🕓 Recorded for *{deployment}*: no rollback worker is answering right now, "
                    "so your operational-anomaly trigger was stored durably. The rollback will "
                    "check your authority and act on it when a worker returns.",
                )
            elif not reply.accepted:
                await self.respond(response_url, f"⛔ The rollback refused it: {reply.message}")
            else:
                await self.respond(
                    response_url,
                    f"🚨 <@{user_id}> started the operational-anomaly rollback of "
                    f"*{deployment}*: {reason} ({reply.message})",
                    in_channel=True,
                )

        return Handled(ack=_ephemeral(f"Starting the rollback of {deployment}…"), later=later)

    # --- answering ---------------------------------------------------------------------

    async def respond(self, response_url: str, text: str, in_channel: bool = False) -> None:
        if not response_url:
            log.info("slack reply (no response_url): %s", text)
            return
        body = {
            "text": text,
            "replace_original": False,
            "response_type": "in_channel" if in_channel else "ephemeral",
        }
        try:
            answer = await self.http.post(response_url, json=body)
            answer.raise_for_status()
        except httpx.HTTPError as error:
            log.error("could not answer Slack at its response_url (%s): %s", error, text)

    def _reply_later(self, response_url: str, text: str) -> FollowUp:
        async def later() -> None:
            await self.respond(response_url, text)

        return later

    def _status_later(self, response_url: str, deployment: str | None) -> FollowUp:
        async def later() -> None:
            await self.respond(response_url, await self._status_text(deployment))

        return later

    async def _status_text(self, deployment: str | None) -> str:
        try:
            client = await self.link.client()
            if deployment is None:
                lines = []
                async for wf in client.list_workflows(
                    'WorkflowType = "RollbackWorkflow" AND ExecutionStatus = "Running"', limit=20
                ):
                    lines.append(f"• {wf.id.removeprefix('rollback-')}")
                return (
                    "Running rollbacks:\n" + "\n".join(lines) if lines else "No rollback running."
                )
            current = await operations.status(client, deployment)
        except (TemporalUnavailable, RPCError) as error:
            return f"Could not read the status: {error}"
        decision = ""
        if current.decision is not None:
            who = describe_role_sets(self.policy, current.decision.approvers)
            decision = (
                f"\nDecision by {who} until {current.decision.deadline:%H:%M:%S} UTC, "
                f"then {current.decision.default_action}."
            )
        steps = "\n".join(
            f"• {s.name}: {s.outcome}{' (late)' if s.late else ''}" for s in current.steps
        )
        trigger = f" · {current.trigger} at {current.phase}%" if current.trigger else ""
        return f"*{deployment}*: {current.state}{trigger}{decision}" + (
            f"\n{steps}" if steps else ""
        )


def _ephemeral(text: str) -> dict[str, Any]:
    return {"response_type": "ephemeral", "text": text}


OUTDATED = (
    "⚠️ This button does not name what it is for (an outdated message?): nothing was "
    "recorded. Use the command the message shows instead."
)


def _button_value(value: str, *required: str) -> dict[str, str]:
    """The JSON a button carries (activities/slack_messages.py); {} when it is not that."""
    try:
        fields = json.loads(value)
    except ValueError:
        return {}
    if not isinstance(fields, dict) or not all(
        isinstance(fields.get(name), str) and fields[name] for name in required
    ):
        return {}
    return {k: v for k, v in fields.items() if isinstance(v, str)}


FOLLOW_UPS_ID = re.compile(r"follow-ups-[A-Za-z0-9][A-Za-z0-9._-]{0,62}-\d{8}T\d{6}")
"""A follow-ups workflow's id, as the rollback names it (`<deployment>-<reverted at>`)."""


def _deployment_of(follow_ups: str) -> str:
    """`follow-ups-search-a-20250101T120000` → `search-a`."""
    return follow_ups.removeprefix(follow_ups_id("")).rsplit("-", 1)[0]
