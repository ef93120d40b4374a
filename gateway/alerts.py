"""Alert webhook bodies (Alertmanager v4, Grafana v1) and where each alert goes.

Each alert of a body is judged on its own: a malformed one gets its own outcome (naming the
field) and never stops the others, so Alertmanager is never made to retry a whole body forever
for one poison alert.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from contract.rollback import TriggerEvent, deployment_problem
from contract.watch import BlindSpotEvent
from runbook.policy import Policy

PHASE_LABEL = re.compile(r"[0-9]{1,3}")
"""ASCII digits only: `²` is a digit to `str.isdigit()` and not to `int()`."""


class _Lenient(BaseModel):
    """Senders add fields over time; unknown ones are kept, never refused."""

    model_config = ConfigDict(extra="allow")


class Alert(_Lenient):
    status: Literal["firing", "resolved"]
    labels: dict[str, str]
    annotations: dict[str, str] = {}
    startsAt: datetime | None = None
    endsAt: datetime | None = None
    generatorURL: str = ""
    fingerprint: str = ""


class GrafanaAlert(Alert):
    silenceURL: str = ""
    dashboardURL: str = ""
    panelURL: str = ""
    values: dict[str, float] | None = None
    valueString: str = ""


class AlertmanagerWebhook(_Lenient):
    """Alertmanager's webhook (version 4). Each alert is validated on its own (`Alert`)."""

    version: Literal["4"]
    status: Literal["firing", "resolved"]
    receiver: str
    alerts: list[dict[str, Any]] = Field(
        max_length=1000, description="Alertmanager alerts (`Alert`), judged one by one"
    )
    groupKey: str = ""
    truncatedAlerts: int = 0
    groupLabels: dict[str, str] = {}
    commonLabels: dict[str, str] = {}
    commonAnnotations: dict[str, str] = {}
    externalURL: str = ""


class GrafanaWebhook(AlertmanagerWebhook):
    """Grafana's webhook (version 1): Alertmanager's shape plus a title, state and URLs."""

    version: Literal["1"]  # type: ignore[assignment]
    orgId: int | None = None
    title: str = ""
    state: str = ""
    message: str = ""


class Routed(BaseModel):
    deployment: str
    event: TriggerEvent


class Blind(BaseModel):
    """A monitoring blind spot (the metrics could not be read): never a rollback."""

    deployment: str
    event: BlindSpotEvent


class Unrouted(BaseModel):
    reason: str
    invalid: bool = False
    """The alert itself is malformed (as opposed to not meant for this engine)."""


def parse(raw: dict[str, Any], source: str) -> Alert | Unrouted:
    model = GrafanaAlert if source == "grafana" else Alert
    try:
        return model.model_validate(raw)
    except ValidationError as error:
        first = error.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "alert"
        return Unrouted(reason=f"{where}: {first['msg']}", invalid=True)


def route(
    policy: Policy, alert: Alert, source: str, received_at: datetime | None = None
) -> Routed | Blind | Unrouted:
    """Where an alert goes: a trigger of a deployment's rollback, a blind spot of its watch,
    or nowhere (with the reason)."""
    routing = policy.alerts
    name = alert.labels.get("alertname", "")
    deployment = alert.labels.get(routing.deployment_label, "")
    if not deployment:
        return Unrouted(reason=f"no {routing.deployment_label!r} label")
    problem = deployment_problem(deployment, f"label {routing.deployment_label}")
    if problem is not None:
        return Unrouted(reason=problem, invalid=True)
    links = [
        u
        for u in (
            alert.generatorURL,
            getattr(alert, "dashboardURL", ""),
            getattr(alert, "panelURL", ""),
        )
        if u
    ]
    summary = alert.annotations.get("summary") or alert.annotations.get("description") or name
    starts = alert.startsAt.isoformat() if alert.startsAt else ""
    key = f"{source}:{alert.fingerprint or name}:{starts}:{alert.status}"
    if name in routing.blind_spots:
        return Blind(
            deployment=deployment,
            event=BlindSpotEvent(
                source=source,
                alertname=name,
                status=alert.status,
                reason=summary,
                received_at=received_at,
                delivery_key=key,
                links=links,
            ),
        )
    trigger = alert.labels.get(routing.trigger_label) or routing.names.get(name, "")
    if not trigger:
        return Unrouted(
            reason=f"no {routing.trigger_label!r} label and alertname {name!r} is "
            "not in the policy's alerts.names"
        )
    if trigger not in policy.triggers:
        return Unrouted(reason=f"unknown trigger {trigger!r} (known: {', '.join(policy.triggers)})")
    evidence = {
        k: v
        for k, v in alert.labels.items()
        if k not in (routing.deployment_label, routing.trigger_label)
    }
    values = getattr(alert, "values", None)
    if values:
        evidence.update({f"value.{k}": f"{v:g}" for k, v in values.items()})
    phase = alert.labels.get("phase", "")
    event = TriggerEvent(
        trigger=trigger,
        phase=int(phase) if PHASE_LABEL.fullmatch(phase) else None,
        reason=summary,
        source=source,
        status=alert.status,
        alert_id=alert.fingerprint or None,
        delivery_key=key,
        evidence=evidence,
        links=links,
        received_at=received_at,
        breach_started_at=breach_start(alert) if alert.status == "firing" else None,
    )
    return Routed(deployment=deployment, event=event)


def breach_start(alert: Alert) -> datetime | None:
    """The alert's `startsAt` in UTC (a time without zone is read as UTC); None for Go's zero
    time and the like, which say nothing about when the breach began."""
    starts = alert.startsAt
    if starts is None:
        return None
    if starts.tzinfo is None:
        starts = starts.replace(tzinfo=UTC)
    return starts.astimezone(UTC) if starts.year >= 2000 else None
