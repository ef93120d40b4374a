"""One input and one result model per activity. Adding a field never breaks a running rollback."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel

from runbook.actions import ActionSpec
from runbook.policy import DeepValidation, HealthCriterion, Notifications, RoleSets
from runbook.status import (
    DecisionMessage,
    RecoveryMeasure,
    ResponseTime,
    StepRecord,
    TimelineEntry,
)


class StepContext(BaseModel):
    """What every step knows about the rollback it serves."""

    deployment: str
    rollback_id: str
    """`<workflow id>/<run id>`: the prefix of every idempotency key sent to a target."""
    channel: str
    drill: bool = False
    step_name: str = ""


class PersonRef(BaseModel):
    id: str
    name: str
    slack_user_id: str


class RoleHolders(BaseModel):
    role: str
    role_name: str
    people: list[PersonRef]


# --- traffic -----------------------------------------------------------------------------


class TrafficSplit(BaseModel):
    treatment: int
    control: int


class ReadSplitInput(BaseModel):
    deployment: str


class ActionInput(BaseModel):
    """One Phase 1 action (activities/actions.py); its idempotency key comes from both."""

    ctx: StepContext
    action: ActionSpec


class ActionDone(BaseModel):
    outcome: Literal["done", "already"]
    """`already`: nothing to change (a retry, or someone was faster)."""
    detail: str
    split: TrafficSplit | None = None
    """The split as read back (traffic)."""
    before: TrafficSplit | None = None
    """The split as read first, before the change (traffic): the canary's phase."""
    integrity: RecoveryMeasure | None = None
    """Data integrity: the flush touched the configuration cache and nothing else (cache)."""


# --- health ------------------------------------------------------------------------------


class CheckResult(BaseModel):
    id: str
    name: str
    passed: bool
    value: float | None = None
    expected: str = ""
    detail: str = ""
    at: datetime | None = None
    unreadable: bool = False
    """No reading could be had before its deadline (metrics down): neither healthy nor a breach."""


class HealthValidationInput(BaseModel):
    ctx: StepContext
    criteria: list[HealthCriterion]
    reverted_at: datetime
    """Criteria deadlines (`within`) count from this instant."""


class HealthValidationResult(BaseModel):
    healthy: bool
    checks: list[CheckResult]
    summary: str


class DeepValidationInput(BaseModel):
    ctx: StepContext
    validation: DeepValidation
    criteria: list[HealthCriterion] | None = None
    """Health criteria watched over the observation period ("resource monitoring"); None: the
    worker's policy's health_criteria."""


class DeepValidationResult(BaseModel):
    healthy: bool
    checks: list[CheckResult]
    summary: str


# --- people ------------------------------------------------------------------------------


class IncidentSummary(BaseModel):
    """The facts a notification, an RCA or a report is written from."""

    deployment: str
    trigger: str
    trigger_name: str
    phase: int | None
    reason: str
    decided_by: list[str]
    drill: bool
    started_at: datetime | None = None
    instants: dict[str, datetime] = {}
    timeline: list[TimelineEntry] = []
    response_times: list[ResponseTime] = []
    checks: list[CheckResult] = []
    decided_by_names: list[str] = []
    """`decided_by` as people's names ("the system" for an automatic decision)."""
    user_effect: str = ""
    """The trigger's effect on users, in the policy's words."""
    evidence: dict[str, str] = {}
    """The trigger's evidence (an alert's values)."""
    figures_before: dict[str, float | None] = {}
    """The metrics read at the trigger: the "before" of every message."""
    steps: list[StepRecord] = []
    unconfirmed: list[str] | None = None
    """Phase 1 actions not confirmed yet (None: not told, a run from before issue 20). While
    any is, no audience hears "rolled back": they hear what is done and what is still being
    done, and the audiences' own words follow once every action is confirmed."""
    confirmed: list[str] = []
    """Phase 1 actions confirmed so far."""
    failed: list[str] = []
    """Phase 1 actions refused or given up: nothing is being done about them, a person is."""


class ReadFiguresInput(BaseModel):
    deployment: str


class Figures(BaseModel):
    values: dict[str, float | None]
    """Every metric the policy names (None: no reading)."""


class StakeholderNotificationInput(BaseModel):
    ctx: StepContext
    notifications: Notifications
    incident: IncidentSummary


class AudienceResult(BaseModel):
    audience: str
    channel: str
    sent: bool
    reason: str
    sent_at: datetime | None = None
    held_for_approval: bool = False
    """Its wording waits for the authority named by the audience's `approval`."""
    wording: str = ""
    """The message as it would be sent (kept for a held audience)."""
    interim: bool = False
    """Told what is done and what is still being done (Phase 1 not all confirmed): its own
    words follow once every action is confirmed."""


class SendAudienceInput(BaseModel):
    """A held audience's message, sent once its wording was approved (or by default)."""

    ctx: StepContext
    audience: str
    channel: str
    text: str


class StakeholderNotificationResult(BaseModel):
    audiences: list[AudienceResult]
    first_sent_at: datetime | None
    summary: str
    affected_share: float | None = None
    """The share of all queries affected over the rollback period (breach start to reversion),
    as measured for business impact."""
    affected_how: str = ""
    """How it was measured, with its inputs (the period, the metric or the estimate's terms)."""


class RootCauseInput(BaseModel):
    ctx: StepContext
    incident: IncidentSummary


class Hypothesis(BaseModel):
    text: str
    severity: Literal["critical", "high", "medium", "low"]
    area: str
    """What it is about: errors, latency, quality, resources, logs."""


class RootCauseResult(BaseModel):
    log_lines: int
    log_excerpt: list[str]
    metrics: dict[str, dict[str, float]]
    hypotheses: list[str]
    summary: str
    ranked: list[Hypothesis] = []
    """The hypotheses with their severity, most severe first (same order as `hypotheses`)."""
    timeline: list[str] = []
    """Events leading to the rollback: the rollback's own timeline and the target's log."""


class RecoveryPlanInput(BaseModel):
    ctx: StepContext
    incident: IncidentSummary
    root_cause: RootCauseResult | None
    owners: list[RoleHolders]


class RecoveryPlanResult(BaseModel):
    markdown: str
    summary: str


class DecisionRequestInput(BaseModel):
    ctx: StepContext
    trigger: str
    trigger_name: str
    phase: int
    reason: str
    evidence: dict[str, str]
    links: list[str]
    approvers: RoleSets
    approver_text: str
    deciders: list[RoleHolders]
    deadline: datetime
    default_action: Literal["rollback", "continue"]
    can_investigate: bool


class DecisionClosedInput(BaseModel):
    ctx: StepContext
    message: DecisionMessage | None
    outcome: str
    decided_by: list[str]
    at: datetime
    deciders: list[PersonRef] = []
    """The roster people among `decided_by`, to mention them with their names."""


class DecisionUpdateInput(BaseModel):
    """The decision request again, with its new deadline (an "Investigating" extension)."""

    request: DecisionRequestInput
    message: DecisionMessage | None
    note: str

    @property
    def ctx(self) -> StepContext:
        return self.request.ctx


class CommsApprovalRequestInput(BaseModel):
    """A held audience's wording put to its approvers: posted in `ctx.channel` (the deployment's
    channel), it names the audience's own `channel` where the message goes once approved."""

    ctx: StepContext
    audience: str
    audience_name: str
    channel: str
    wording: str
    approvers: list[RoleHolders]
    approver_text: str
    """Who may approve, as the policy names them ("Sprint PM", "Engineering Manager")."""
    deadline: datetime
    default: Literal["send", "hold"]
    """What happens when nobody answers by the deadline."""


class ProgressInput(BaseModel):
    ctx: StepContext
    text: str


class EscalationInput(BaseModel):
    ctx: StepContext
    reason: str
    holders: list[RoleHolders]
    """The roles told now (one stage of the escalation path, or all of it)."""
    key: str | None = None
    """The escalation's key: the Acknowledge button names it (None: no button)."""
    stage_text: str = ""
    """Why these roles now: "not acknowledged within 5m: Engineering Manager now"."""
    thread_ts: str | None = None
    """A reply in the incident's thread (its first message's ts)."""


class EscalationResult(BaseModel):
    notified: list[str]
    ts: str | None = None
    """The message's ts (the incident's thread starts at its first)."""


# --- follow-ups ------------------------------------------------------------------------------


class FollowUpNoticeInput(BaseModel):
    ctx: StepContext
    follow_up: str
    name: str
    kind: Literal["due", "reminder", "done", "missed"]
    actions: list[str]
    owners: list[RoleHolders]
    detail: str = ""
    workflow_id: str | None = None
    """The follow-ups workflow that sends it, for the Acknowledge button; the activity fills
    it in from its own info when not given."""


class BaselineCheckInput(BaseModel):
    ctx: StepContext
    criteria: list[HealthCriterion]


class BaselineCheckResult(BaseModel):
    healthy: bool
    checks: list[CheckResult]
    summary: str


class PageInput(BaseModel):
    """A PagerDuty Events API v2 event for each routing key (trigger, acknowledge, resolve)."""

    ctx: StepContext
    action: Literal["trigger", "acknowledge", "resolve"]
    dedup_key: str
    routing_keys: dict[str, str]
    """Person id → routing key (or `${ENV_VAR}` the worker resolves)."""
    summary: str = ""
    severity: Literal["critical", "error", "warning", "info"] = "critical"
    custom_details: dict[str, str] = {}


class PageResult(BaseModel):
    paged: list[str]
    """Person ids whose PagerDuty took the event."""
    skipped: list[str] = []
    """Why some were not paged (PagerDuty not configured, an unset variable)."""
