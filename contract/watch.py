"""The canary watch's boundary: one `CanaryWatchWorkflow` per deployment watches the canary's
metrics (and records monitoring blind spots, from its own readings or from alerts)."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field

from contract.outbox import Outgoing
from contract.rollback import RollbackOptions, TriggerEvent
from runbook.policy import Policy
from runbook.watching import Clock, ReadPlan

WATCH_WORKFLOW = "CanaryWatchWorkflow"
BLIND_SPOT_SIGNAL = "blind_spot"
STOP_SIGNAL = "stop"
EVALUATE_SIGNAL = "evaluate"
"""A watch started by a blind-spot alert alone starts judging the canary too."""
WATCH_STATUS_QUERY = "status"
WATCH_RUN_STATE_QUERY = "run_state"
"""Everything the watch's run would hand to the next one if it continued as new now."""


def watch_id(deployment: str) -> str:
    return f"watch-{deployment}"


class BlindSpotEvent(BaseModel):
    """Metrics that cannot be read: an alert that says so (Grafana's `DatasourceNoData`), or
    the watch's own unreadable intervals."""

    source: str
    alertname: str = ""
    status: Literal["firing", "resolved"] = "firing"
    reason: str = ""
    received_at: datetime | None = None
    delivery_key: str | None = Field(
        default=None, description="the same key again (a webhook retry) is recorded once"
    )
    links: list[str] = []


class BlindSpot(BaseModel):
    since: datetime
    source: str
    reason: str
    until: datetime | None = None
    """When readings were back (None while the outage lasts)."""
    announced: bool = False


class Raised(BaseModel):
    """A sustained breach the watch raised into the rollback."""

    at: datetime
    trigger: str
    condition: str
    reason: str
    sent: bool = True
    """False: the rollback could not be reached (raised again at the next reading)."""


class WatchState(BaseModel):
    """Everything a watch knows, carried over continue-as-new and restarts."""

    clocks: dict[str, Clock] = {}
    """By condition id (a trigger id, `gate:<id>`)."""
    captured: dict[str, float] = {}
    """Baselines read when the watch started (`baseline: captured`)."""
    started_at: datetime | None = None
    readings: int = 0
    last_reading_at: datetime | None = None
    last_error: str = ""
    treatment: int | None = None
    healthy_at_full_since: datetime | None = None
    """At 100 % and healthy since (the bake time counts from here)."""
    raised: list[Raised] = []
    """The latest raises (bounded)."""
    ended: str = ""
    evaluate: bool = True
    """Whether it judges the canary (False: it only records a blind spot an alert told of)."""
    blind_spot: BlindSpot | None = None
    """The current outage, if any."""
    past_blind_spots: int = 0
    events: list[BlindSpotEvent] = []
    """Blind-spot events taken in and not handled yet: the next run handles them first."""
    seen: list[str] = []
    """Delivery keys of blind-spot events already taken (bounded): a webhook retry counts once."""
    stopping: bool = False
    """Told to stop (`rollback watch stop`)."""
    verdicts: dict[str, str] = {}
    """Each condition's state at the last reading (healthy, breaching, sustained, …)."""
    figures: dict[str, float | None] = {}
    """The judged figures of the last reading."""
    outbox: list[Outgoing] = []
    """Messages not sent yet: the next run sends them, in order."""


class WatchInput(BaseModel):
    deployment: str
    policy: Policy
    options: RollbackOptions = RollbackOptions()
    evaluate: bool = True
    """False: started by a blind-spot alert for a deployment the engine does not watch itself;
    it only keeps the blind spot's record and announcement, and ends once readings are back."""
    state: WatchState | None = None
    """What the previous run knew, whole (None: a new watch)."""


class ConditionStatus(BaseModel):
    id: str
    name: str
    condition: str
    """ "error_rate > 0.005 for 2m"."""
    value: float | None
    state: str
    """healthy, breaching, sustained, unreadable, idle."""
    sustained_seconds: float
    sustain_seconds: float
    raises: bool = True


class WatchStatus(BaseModel):
    deployment: str
    evaluating: bool
    watching_since: datetime | None = None
    """When it began judging the canary (None: a blind-spot record only)."""
    blind_spot: BlindSpot | None = None
    """The current outage, if any."""
    past_blind_spots: int = 0
    interval_seconds: float = 0.0
    readings: int = 0
    last_reading_at: datetime | None = None
    treatment: int | None = None
    conditions: list[ConditionStatus] = []
    raised: list[Raised] = []
    ended: str = ""
    drill: bool = False
    """A rehearsal's watch: what it raises is a drill rollback."""


class CanaryReadingInput(BaseModel):
    deployment: str
    plan: ReadPlan


class CanaryReading(BaseModel):
    """One reading: raw values keyed as `runbook.watching.raw_key` says (None: no figure), the
    live treatment share, and what went wrong when nothing could be read."""

    values: dict[str, float | None] = {}
    treatment: int | None = None
    error: str = ""


class WatchRaiseInput(BaseModel):
    """A sustained breach, raised into `rollback-<deployment>` as an alert would be."""

    deployment: str
    policy: Policy
    options: RollbackOptions
    event: TriggerEvent
