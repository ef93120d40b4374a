"""Alert webhook bodies (Alertmanager v4, Grafana v1) and how each alert finds its rollback."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from contract.rollback import TriggerEvent
from runbook.policy import Policy

DEPLOYMENT_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$")


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
    """Alertmanager's webhook (version 4)."""

    version: Literal["4"]
    status: Literal["firing", "resolved"]
    receiver: str
    alerts: list[Alert] = Field(max_length=1000)
    groupKey: str = ""
    truncatedAlerts: int = 0
    groupLabels: dict[str, str] = {}
    commonLabels: dict[str, str] = {}
    commonAnnotations: dict[str, str] = {}
    externalURL: str = ""


class GrafanaWebhook(AlertmanagerWebhook):
    """Grafana's webhook (version 1): Alertmanager's shape plus a title, state and URLs."""

    version: Literal["1"]  # type: ignore[assignment]
    alerts: list[GrafanaAlert] = Field(max_length=1000)  # type: ignore[assignment]
    orgId: int | None = None
    title: str = ""
    state: str = ""
    message: str = ""


class Routed(BaseModel):
    deployment: str
    event: TriggerEvent


class Unrouted(BaseModel):
    reason: str


def route(
    policy: Policy, alert: Alert, source: str, received_at: datetime | None = None
) -> Routed | Unrouted:
    """The (deployment, trigger) of an alert, from its labels or the policy's alert names."""
    routing = policy.alerts
    name = alert.labels.get("alertname", "")
    deployment = alert.labels.get(routing.deployment_label, "")
    if not deployment:
        return Unrouted(reason=f"no {routing.deployment_label!r} label")
    if not DEPLOYMENT_NAME.match(deployment):
        return Unrouted(
            reason=f"label {routing.deployment_label}={deployment!r} is not a deployment name"
        )
    trigger = alert.labels.get(routing.trigger_label) or routing.names.get(name, "")
    if not trigger:
        return Unrouted(
            reason=f"no {routing.trigger_label!r} label and alertname {name!r} is "
            "not in the policy's alerts.names"
        )
    if trigger not in policy.triggers:
        return Unrouted(reason=f"unknown trigger {trigger!r} (known: {', '.join(policy.triggers)})")
    phase = alert.labels.get("phase", "")
    links = [
        u
        for u in (
            alert.generatorURL,
            getattr(alert, "dashboardURL", ""),
            getattr(alert, "panelURL", ""),
        )
        if u
    ]
    evidence = {
        k: v
        for k, v in alert.labels.items()
        if k not in (routing.deployment_label, routing.trigger_label)
    }
    values = getattr(alert, "values", None)
    if values:
        evidence.update({f"value.{k}": f"{v:g}" for k, v in values.items()})
    summary = alert.annotations.get("summary") or alert.annotations.get("description") or name
    starts = alert.startsAt.isoformat() if alert.startsAt else ""
    event = TriggerEvent(
        trigger=trigger,
        phase=int(phase) if phase.isdigit() else None,
        reason=summary,
        source=source,
        status=alert.status,
        alert_id=alert.fingerprint or None,
        delivery_key=f"{source}:{alert.fingerprint or name}:{starts}:{alert.status}",
        evidence=evidence,
        links=links,
        received_at=received_at,
    )
    return Routed(deployment=deployment, event=event)
