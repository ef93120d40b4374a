"""The follow-ups workflow's boundary: its names and id, its input and acknowledgements."""

from __future__ import annotations

from datetime import datetime

from pydantic import AwareDatetime, BaseModel, Field

from contract.outbox import Outgoing
from contract.rollback import DecisionReply, RollbackOptions
from runbook.identity import Proof
from runbook.policy import Policy
from runbook.status import FollowUpsStatus

FOLLOW_UPS_WORKFLOW = "FollowUpsWorkflow"
ACK_UPDATE = "acknowledge"
ACK_SIGNAL = "acknowledgement"
INCIDENT_SIGNAL = "incident"
RUN_STATE_QUERY = "run_state"
"""Everything the follow-ups' run would hand to the next one if it continued as new now."""


def follow_ups_id(deployment: str) -> str:
    return f"follow-ups-{deployment}"


class FollowUpsRun(BaseModel):
    """Everything a follow-ups run knows, carried whole when it continues as new (a week of
    signals stays bounded)."""

    status: FollowUpsStatus
    replies: dict[str, DecisionReply] = {}
    """The reply to each acknowledgement, by request id (bounded): a repeat gets it again."""
    outbox: list[Outgoing] = []
    """Messages not sent yet: the next run sends them, in order."""


class FollowUpsInput(BaseModel):
    deployment: str
    policy: Policy
    options: RollbackOptions = RollbackOptions()
    reverted_at: datetime
    rollback_id: str
    carried: FollowUpsRun | None = None
    """What the previous run handed over (None: the first run)."""


class FollowUpAck(BaseModel):
    follow_up: str
    person: str
    via: str = "cli"
    note: str = ""
    proof: Proof | None = None
    request_id: str | None = None
    made_at: AwareDatetime | None = Field(
        default=None,
        description="when the person acknowledged, stamped by the CLI or the gateway on receipt",
    )
