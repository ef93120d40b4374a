"""The canary watch's boundary: one `CanaryWatchWorkflow` per deployment watches the canary's
metrics (and records monitoring blind spots, from its own readings or from alerts)."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field

from contract.rollback import RollbackOptions
from runbook.policy import Policy

WATCH_WORKFLOW = "CanaryWatchWorkflow"
BLIND_SPOT_SIGNAL = "blind_spot"
STOP_SIGNAL = "stop"
WATCH_STATUS_QUERY = "status"


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


class WatchInput(BaseModel):
    deployment: str
    policy: Policy
    options: RollbackOptions = RollbackOptions()
    evaluate: bool = True
    """False: started by a blind-spot alert for a deployment the engine does not watch itself;
    it only keeps the blind spot's record and announcement, and ends once readings are back."""
    blind_spot: BlindSpot | None = None
    past_blind_spots: int = 0
    """Carried over when a long watch continues as new."""


class WatchStatus(BaseModel):
    deployment: str
    evaluating: bool
    blind_spot: BlindSpot | None = None
    """The current outage, if any."""
    past_blind_spots: int = 0
