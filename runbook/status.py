"""What a rollback and its follow-ups are at a moment: the status their queries answer, which the
CLI, the report and the channel messages are written from."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel

from runbook.policy import RoleSets

RollbackState = Literal[
    "triggered",
    "awaiting_decision",
    "rolling_back",
    "stabilizing",
    "investigating",
    "following_up",
    "rolled_back",
    "incomplete",
    "continued",
    "rejected",
    "failed",
]
"""`rolled_back` only when every Phase 1 action is confirmed; `incomplete` when one is not (the
status lists which, and why); `rejected` when no trigger of the run was accepted."""


DecisionAction = Literal["approve", "deny", "investigating"]


class TimelineEntry(BaseModel):
    at: datetime
    kind: str
    message: str
    by: str | None = None


class StepRecord(BaseModel):
    id: str
    name: str
    budget_seconds: float
    started_at: datetime
    ended_at: datetime | None = None
    outcome: Literal["running", "ok", "failed"] = "running"
    late: bool = False
    summary: str = ""


ActionState = Literal["pending", "running", "retrying", "confirmed", "refused", "gave_up"]
"""`retrying`: not confirmed within its step's budget, still retried; `refused`: an answer no
retry can fix (401, 403, 404, a malformed body); `gave_up`: still failing when its `retry_for`
ran out."""


class ActionRecord(BaseModel):
    """One Phase 1 action (the split, a service, the early stop, a flag, the cache flush)."""

    id: str
    step: str
    name: str
    command: str
    state: ActionState = "pending"
    started_at: datetime | None = None
    settled_at: datetime | None = None
    """When it was confirmed, refused or given up."""
    detail: str = ""
    """What it did: "stopped", "already off", the split read back."""
    error: str = ""
    """The last failure: the target, the call and its answer."""

    @property
    def confirmed(self) -> bool:
        return self.state == "confirmed"

    @property
    def settled(self) -> bool:
        return self.state in ("confirmed", "refused", "gave_up")


class ResponseTime(BaseModel):
    id: str
    name: str
    seconds: float | None
    target_seconds: float
    met: bool | None
    """None while the end instant has not happened yet."""
    start: str = ""
    end: str = ""
    """The instants it measures (trigger, decision, traffic_reverted, …)."""
    basis: Literal["plan", "trigger"] = "plan"
    """`plan`: one of the plan's generic targets; `trigger`: the trigger's own response target."""
    plan_target_seconds: float | None = None
    """The plan's own target when another applied (`target_seconds`), and `why` it did."""
    why: str = ""


class ExtendedDecision(BaseModel):
    """An investigation extension of the decision window: the plan's own allowance, so the
    targets that end at the decision move with it."""

    until: datetime
    """The window's deadline after the extension (never past the plan's cap)."""
    by: str
    """Who chose to investigate (their name)."""
    phase: int


class OpenDecision(BaseModel):
    triggers: list[str]
    phase: int
    opened_at: datetime
    deadline: datetime
    default_action: Literal["rollback", "continue"]
    approvers: RoleSets
    extend_by_seconds: float | None
    extend_until: datetime | None
    votes: dict[str, DecisionAction] = {}
    proven: dict[str, str] = {}
    """How each voter was proven: "ssh-ed25519 SHA256:…", "Slack U… in T…", "asserted"."""
    reasons: dict[str, str] = {}
    """Why each voter decided as they did (a deny and an investigation always say)."""
    closed_at: datetime | None = None
    outcome: str = ""
    """How it closed: approved, denied, expired with the default applied, superseded."""


class DecisionMessage(BaseModel):
    """Where a decision request was posted (Slack's channel id and message ts)."""

    channel: str
    ts: str | None = None


class PersonAct(BaseModel):
    """One act of a person (a trigger, a vote, an approval, an acknowledgement), with how the
    engine knows who made it: the record of who did what, shown by the status and the report."""

    at: datetime
    act: str
    person: str
    choice: str = ""
    how: Literal["key", "slack", "asserted", "refused"]
    detail: str = ""
    """The key's fingerprint, the Slack user and workspace, "asserted", or why it was refused."""
    reason: str = ""
    accepted: bool = True


class RecoveryMeasure(BaseModel):
    """A recovery target judged from what the rollback measured itself."""

    result: Literal["pass", "fail"]
    evidence: str


class PendingComms(BaseModel):
    """A message held until the authority the policy names approves its wording."""

    audience: str
    name: str
    channel: str
    approvers: RoleSets
    opened_at: datetime
    deadline: datetime
    default: Literal["send", "hold"]
    wording: str
    votes: dict[str, Literal["approve", "deny"]] = {}
    outcome: Literal["pending", "approved", "denied", "expired"] = "pending"
    decided_by: list[str] = []
    sent: bool = False


class RankedHypothesis(BaseModel):
    text: str
    severity: Literal["critical", "high", "medium", "low"]
    area: str


class RootCauseMaterial(BaseModel):
    """Step 6's findings as the status and the report carry them (the fields of the
    root_cause_analysis activity's result that matter to people)."""

    summary: str = ""
    hypotheses: list[str] = []
    ranked: list[RankedHypothesis] = []
    metrics: dict[str, dict[str, float]] = {}
    """Treatment versus control figures over the treatment period, by metric."""
    log_lines: int = 0
    log_excerpt: list[str] = []
    timeline: list[str] = []


class IncidentReason(BaseModel):
    """One reason that joined an incident (a step over budget, a missed target, …)."""

    key: str
    text: str
    at: datetime


class EscalationRecord(BaseModel):
    """One escalation incident: one reason, one rollback; it climbs `escalation_path` until
    someone acknowledges it, and its pages are resolved when the rollback ends."""

    key: str
    reason: str
    opened_at: datetime
    dedup_key: str
    """PagerDuty's: the same for every page of this incident."""
    stage: int = 0
    """The index in `escalation_path` of the last role told."""
    told_at: datetime | None = None
    """When that role was told: it has `ack_within` from then."""
    told: list[str] = []
    """Roles told, in order."""
    paged: list[str] = []
    """People paged (roster ids)."""
    acked_by: str | None = None
    acked_via: str | None = None
    acked_at: datetime | None = None
    resolved_at: datetime | None = None
    reasons: list[IncidentReason] = []
    """Every reason that joined this incident (runs with one incident per rollback)."""
    thread_ts: str | None = None
    """The incident's first Slack message: later reasons are replies in its thread."""


class RollbackStatus(BaseModel):
    deployment: str
    state: RollbackState
    drill: bool
    trigger: str | None
    phase: int | None
    mode: Literal["auto", "manual"] | None
    decision: OpenDecision | None
    decided_by: list[str]
    outcome: str | None
    instants: dict[str, datetime]
    timeline: list[TimelineEntry]
    steps: list[StepRecord]
    response_times: list[ResponseTime]
    intervals: dict[str, float] = {}
    """trigger_to_decision, decision_to_traffic_reversion, … in seconds, as measured so far."""
    follow_ups_id: str | None = None
    """The workflow running the post-rollback follow-ups, once scheduled."""
    recovery: dict[str, RecoveryMeasure] = {}
    """Recovery targets measured during the rollback (`data_integrity`, `user_impact`), by id."""
    comms: list[PendingComms] = []
    """Messages whose wording needs an approval (customer communications)."""
    last_decision: OpenDecision | None = None
    """The last decision window as it stood when it closed (`decision` is None once closed)."""
    root_cause: RootCauseMaterial | None = None
    """Step 6's material, once the root cause analysis has run."""
    actions: list[ActionRecord] = []
    """Phase 1's actions, each confirmed on its own."""
    outcome_detail: str = ""
    """What the outcome rests on: the unconfirmed actions and why, or when the last one was
    confirmed."""
    received: dict[str, int] = {}
    """Firing trigger events received, by trigger id (an alert storm is counted, not stored)."""
    reason: str = ""
    """The adopted trigger's reason (an alert's summary, the person's words)."""
    evidence: dict[str, str] = {}
    """The adopted trigger's evidence (an alert's labels and values)."""
    figures_before: dict[str, float | None] = {}
    """The metrics read when the rollback started: the "before" of every message."""
    escalations: list[EscalationRecord] = []
    acts: list[PersonAct] = []
    """People's acts with how each was proven (the latest, bounded)."""
    folded: int = 0
    """Timeline entries left out of `timeline` to keep it bounded; the workflow's history has
    them all (`rollback report` reads it)."""
    decision_extended: ExtendedDecision | None = None
    """The decision window was extended for an investigation (the latest extension)."""

    def unconfirmed(self) -> list[ActionRecord]:
        return [a for a in self.actions if not a.confirmed]


FollowUpState = Literal["scheduled", "due", "reminded", "escalated", "done", "missed"]


class FollowUpItem(BaseModel):
    id: str
    name: str
    owner: str
    check: str
    due_at: datetime
    state: FollowUpState = "scheduled"
    done_by: str | None = None
    done_at: datetime | None = None
    detail: str = ""
    escalated_at: datetime | None = None


class FollowUpsStatus(BaseModel):
    deployment: str
    reverted_at: datetime
    items: list[FollowUpItem]
    incidents: list[TimelineEntry]
    timeline: list[TimelineEntry]
    incident_count: int = 0
    """Every incident signalled, also those past the ones kept in `incidents`."""
