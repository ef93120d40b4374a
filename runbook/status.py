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
    "continued",
    "failed",
]


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


class ResponseTime(BaseModel):
    id: str
    name: str
    seconds: float | None
    target_seconds: float
    met: bool | None
    """None while the end instant has not happened yet."""


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


class FollowUpsStatus(BaseModel):
    deployment: str
    reverted_at: datetime
    items: list[FollowUpItem]
    incidents: list[TimelineEntry]
    timeline: list[TimelineEntry]
