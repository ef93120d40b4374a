"""The rollback workflow's boundary: its names and id, its input, signals, updates and replies."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from runbook.policy import Policy
from runbook.status import DecisionAction, RollbackState

ROLLBACK_WORKFLOW = "RollbackWorkflow"
"""The rollback's workflow type, by name: callers never import the workflow class."""
TRIGGER_SIGNAL = "trigger"


DECIDE_UPDATE = "decide"


DECISION_SIGNAL = "decision"
"""The same decision as a signal: durable even while no worker runs (the gateway's fallback)."""


STATUS_QUERY = "status"


COMMS_UPDATE = "approve_comms"


COMMS_SIGNAL = "comms_approval"


def workflow_id(deployment: str) -> str:
    return f"rollback-{deployment}"


class RollbackOptions(BaseModel):
    ui_metadata: bool = True
    """Search attributes, current details and summaries. Off only on the time-skipping test
    server, which does not know them."""
    drill: bool = False
    channel: str | None = None
    """The deployment's channel; the policy's notification channel when not set."""


class RollbackInput(BaseModel):
    deployment: str
    policy: Policy
    options: RollbackOptions = RollbackOptions()


class TriggerEvent(BaseModel):
    """One trigger or alert, as the gateway, the CLI or a drill sends it."""

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


class DecisionInput(BaseModel):
    action: DecisionAction
    person: str = Field(description="roster person id")
    via: str = "cli"
    note: str = ""
    request_id: str | None = Field(
        default=None, description="the same id twice (a double click) counts once"
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
    request_id: str | None = Field(
        default=None, description="the same id twice (a double click) counts once"
    )
