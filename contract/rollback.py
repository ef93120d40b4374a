"""The rollback workflow's boundary: its names and id, its input, signals, updates and replies."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Literal

from pydantic import AwareDatetime, BaseModel, Field

from contract.outbox import Outgoing
from runbook.identity import Proof
from runbook.policy import Policy
from runbook.status import DecisionAction, DecisionMessage, RollbackState, RollbackStatus

ROLLBACK_WORKFLOW = "RollbackWorkflow"
"""The rollback's workflow type, by name: callers never import the workflow class."""
TRIGGER_SIGNAL = "trigger"
"""Alerts and the canary watch: a trigger (or a batch of them) joins the rollback."""
RAISE_UPDATE = "raise_trigger"
"""A trigger raised by a person (CLI, Slack): the update answers whether the rollback took it."""
DECIDE_UPDATE = "decide"
DECISION_SIGNAL = "decision"
"""The same decision as a signal: durable even while no worker runs (the gateway's fallback)."""
STATUS_QUERY = "status"
RUN_STATE_QUERY = "run_state"
"""Everything the run would hand to the next one if it continued as new now."""
COMMS_UPDATE = "approve_comms"
COMMS_SIGNAL = "comms_approval"
ESCALATION_ACK_UPDATE = "acknowledge_escalation"
ESCALATION_ACK_SIGNAL = "escalation_acknowledgement"


DEPLOYMENT_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,62}")
"""A deployment's name: it appears in workflow ids, URLs and Slack buttons, so every door
(webhooks, Slack, the CLI, the workflow itself) applies this one rule, to the whole string."""


def deployment_problem(name: str, field: str = "deployment") -> str | None:
    """None for a good name; else what is wrong, naming the field."""
    if DEPLOYMENT_NAME.fullmatch(name):
        return None
    shown = name if len(name) <= 70 else f"{name[:67]}…"
    return (
        f"{field}: {shown!r} is not a deployment name (1 to 63 letters, digits, '.', '_' or '-', "
        "starting with a letter or a digit)"
    )


def workflow_id(deployment: str) -> str:
    return f"rollback-{deployment}"


class RollbackOptions(BaseModel):
    ui_metadata: bool = True
    """Search attributes, current details and summaries. Off only on the time-skipping test
    server, which does not know them."""
    drill: bool = False
    channel: str | None = None
    """The deployment's channel; the policy's notification channel when not set."""
    handover_events: int = Field(default=2_000, ge=20)
    """A run continues as new past this many history events, well before Temporal suggests it
    (4 Ki events by default on the dev server, 10 Ki on a cluster); tests make it small to hand
    over at a moment they choose."""


class TriggerEvent(BaseModel):
    """One trigger or alert, as the gateway, the CLI, the canary watch or a drill sends it."""

    trigger: str
    phase: int | None = Field(
        default=None, description="phase label from the sender; a fallback only"
    )
    reason: str = ""
    source: str = "cli"
    raised_by: str | None = Field(
        default=None, description="person id, for a trigger raised by hand"
    )
    status: Literal["firing", "resolved"] = "firing"
    alert_id: str | None = None
    delivery_key: str | None = Field(
        default=None,
        description="the same key again (a webhook retry, a repeat notification) is recorded once",
    )
    evidence: dict[str, str] = {}
    links: list[str] = []
    received_at: datetime | None = Field(
        default=None,
        description="when the sender received it (the gateway, the CLI); the trigger's instant "
        "when it waited for a worker",
    )
    proof: Proof | None = Field(
        default=None, description="a person's trigger: their signature (runbook/identity.py)"
    )
    breach_started_at: datetime | None = Field(
        default=None,
        description="when the breach began (an alert's startsAt, the watch's first breaching "
        "reading): where the users' impact window starts",
    )


class TriggerBatch(BaseModel):
    """Several triggers in one signal: the alerts of one webhook body for one deployment."""

    events: list[TriggerEvent]


class TriggerReply(BaseModel):
    """The rollback's answer to a trigger a person raised."""

    accepted: bool
    message: str
    state: RollbackState
    next_run: bool = False
    """The run was ending: the trigger was handed to the rollback's next run, which judges it
    (the same trigger sent again is answered with that run's verdict)."""


class DecisionInput(BaseModel):
    action: DecisionAction
    person: str = Field(description="roster person id")
    via: str = "cli"
    note: str = ""
    """Kept for inputs recorded before `reason`; never read."""
    reason: str = Field(default="", description="why: required to deny or to investigate")
    message: str = Field(
        default="", description="Slack: `channel/ts` of the decision message whose button it was"
    )
    proof: Proof | None = Field(
        default=None, description="who decided, proven: their signature, or the gateway's"
    )
    request_id: str | None = Field(
        default=None, description="the same id twice (a double click) counts once"
    )
    made_at: AwareDatetime | None = Field(
        default=None,
        description="when the person decided, stamped by the CLI or the gateway on receipt; a "
        "decision made at or after the window's deadline is refused as late",
    )


class DecisionReply(BaseModel):
    accepted: bool
    message: str
    state: RollbackState


class CommsApprovalInput(BaseModel):
    """An approval (or refusal) of an audience's wording, e.g. the customer notification."""

    action: Literal["approve", "deny"]
    person: str = Field(description="roster person id")
    audience: str = "customer_comms"
    via: str = "cli"
    note: str = ""
    """Kept for inputs recorded before `reason`; never read."""
    reason: str = Field(default="", description="why: required to hold the wording")
    proof: Proof | None = None
    request_id: str | None = Field(
        default=None, description="the same id twice (a double click) counts once"
    )
    made_at: AwareDatetime | None = Field(
        default=None, description="when the person answered; judged against the deadline"
    )


class EscalationAck(BaseModel):
    """Someone has an escalation in hand: it stops climbing `escalation_path`."""

    key: str | None = Field(
        default=None, description="the escalation's key; None: every open escalation"
    )
    person: str | None = Field(
        default=None, description="roster person id (Slack, CLI); None when PagerDuty says so"
    )
    via: str = "cli"
    who: str = ""
    """Who acknowledged, as the sender names them (PagerDuty's agent)."""
    request_id: str | None = None
    made_at: AwareDatetime | None = None
    """When it was made, with its time zone (a naive time cannot be judged against deadlines)."""
    proof: Proof | None = None


class PendingTrigger(BaseModel):
    """A trigger taken in but not judged yet: the next run judges it when this one hands over."""

    event: TriggerEvent
    at: datetime
    """The instant it counts from (when the sender received it, at the latest when it came)."""
    ticket: str | None = None
    """A person waits for its verdict under this key (the event's delivery key)."""


Stage = Literal["start", "verdict", "after_rollback"]
"""Where a run resumes: `start`, a new incident (the previous run ended; only its memory of
requests and its unsent messages come along); `verdict`, taking triggers and deciding (a window
may be open, or the canary continues under watch after a deny); `after_rollback`, the stability
watch."""


class RollbackRun(BaseModel):
    """Everything a rollback run knows, in one structure: the next run starts from it whole when
    this one continues as new (a long history, or a trigger that came as the run ended)."""

    status: RollbackStatus
    stage: Stage = "start"
    watch_until: datetime | None = None
    """The end of the watch after a deny (`verdict`) or after the rollback (`after_rollback`)."""
    inbox: list[PendingTrigger] = []
    held: list[DecisionInput] = []
    """Decisions stored before the first window opened: judged once it is open."""
    accepted: bool = False
    """Whether any trigger of this incident was taken (a run of only refused ones ends)."""
    last_via: str = "unknown"
    """How the last accepted vote came (slack, cli): the decision's `via` metric."""
    phase_label: int | None = None
    """The trigger's phase label, when the phase waits for the emergency stop's read."""
    deliveries: list[str] = []
    """Delivery keys already recorded, oldest first (bounded): a webhook retry counts once."""
    verdicts: dict[str, TriggerReply] = {}
    """The verdict on each trigger a person raised, by its delivery key (bounded): the same
    trigger sent again, to this run or the next, is answered with it."""
    replies: dict[str, DecisionReply] = {}
    """The reply to each decision, approval and acknowledgement, by request id (bounded)."""
    escalated: list[str] = []
    """Escalation keys already sent (each reason escalates once per rollback)."""
    seen_after_rollback: list[str] = []
    """Trigger ids that fired after the rollback (the escalation path heard of each once)."""
    resolved: list[str] = []
    """Triggers whose resolution is on the timeline (a storm of them is recorded once)."""
    runs: list[str] = []
    """This incident's run ids, oldest first (bounded): a signed act names the run it saw."""
    missed_targets: dict[str, datetime] = {}
    """Response targets escalated as missed, with when they were due."""
    decision_message: DecisionMessage | None = None
    """The open decision's Slack message (changed when the deadline moves, closed at the end)."""
    decision_links: list[str] = []
    """The links of the trigger that opened the window (its request shows them)."""
    outbox: list[Outgoing] = []
    """Messages not sent yet: the next run sends them, in order."""


class RollbackInput(BaseModel):
    deployment: str
    policy: Policy
    options: RollbackOptions = RollbackOptions()
    carried: RollbackRun | None = None
    """What the previous run handed over (None: the first run of an incident)."""


def escalation_dedup_key(workflow: str, key: str, opened_at: datetime) -> str:
    """PagerDuty's dedup_key of an escalation: the rollback, the reason, when it opened."""
    return f"{workflow}|{key}|{opened_at:%Y%m%dT%H%M%S}"[:255]


def escalation_of(dedup_key: str) -> tuple[str, str] | None:
    """(workflow id, escalation key) of a dedup_key, or None when it is not one of ours."""
    parts = dedup_key.split("|")
    if len(parts) != 3 or not parts[0].startswith("rollback-"):
        return None
    return parts[0], parts[1]
