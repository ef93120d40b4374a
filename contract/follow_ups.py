"""The follow-ups workflow's boundary: its names and id, its input and acknowledgements."""

from __future__ import annotations

from datetime import datetime

from pydantic import AwareDatetime, BaseModel, Field

from contract.rollback import RollbackOptions
from runbook.policy import Policy
from runbook.status import FollowUpsStatus

FOLLOW_UPS_WORKFLOW = "FollowUpsWorkflow"
ACK_UPDATE = "acknowledge"


ACK_SIGNAL = "acknowledgement"


INCIDENT_SIGNAL = "incident"


def follow_ups_id(deployment: str) -> str:
    return f"follow-ups-{deployment}"


class FollowUpsInput(BaseModel):
    deployment: str
    policy: Policy
    options: RollbackOptions = RollbackOptions()
    reverted_at: datetime
    rollback_id: str
    carried: FollowUpsStatus | None = None
    """What a run hands to the next when it continues as new (a week of signals stays
    bounded)."""


class FollowUpAck(BaseModel):
    follow_up: str
    person: str
    via: str = "cli"
    note: str = ""
    request_id: str | None = None
    made_at: AwareDatetime | None = Field(
        default=None,
        description="when the person acknowledged, stamped by the CLI or the gateway on receipt",
    )
