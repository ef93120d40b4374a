"""Alert webhook bodies (Alertmanager v4, Grafana v1) and where each alert goes.

Each alert of a body is judged on its own: a malformed one gets its own outcome (naming the
field) and never stops the others, so Alertmanager is never made to retry a whole body forever
for one poison alert.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from contract.rollback import TriggerEvent, deployment_problem
from contract.watch import BlindSpotEvent
from runbook.policy import Policy

CLOCK_SKEW = timedelta(minutes=5)
"""How far ahead of the gateway's clock an alert's startsAt may be (clocks drift)."""
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
        description="Alertmanager alerts (`Alert`), judged one by one: any number of them "
        "within the gateway's body limit (ROLLBACK_MAX_BODY_BYTES)"
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


LEGACY_STATES = {"alerting": "firing", "ok": "resolved", "no_data": "firing"}
"""Grafana's legacy alerting (before unified alerting; Grafana 8 and earlier) sends one rule's
state per body; `no_data` is a blind spot (alertname `DatasourceNoData`), never a breach."""


class GrafanaLegacyWebhook(_Lenient):
    """Grafana's legacy alerting webhook: no `version`, one rule, `state`, `tags`."""

    state: str
    ruleName: str = ""
    ruleId: int | None = None
    title: str = ""
    message: str = ""
    ruleUrl: str = ""
    tags: dict[str, Any] = {}
    evalMatches: list[dict[str, Any]] = []

    def alerts(self) -> list[dict[str, Any]]:
        """The rule as one alert of Grafana's own (version 1) shape, judged like any other."""
        status = LEGACY_STATES.get(self.state)
        if status is None:
            raise ValueError(
                f"state {self.state!r}: Grafana's legacy webhook is taken with state "
                f"{', '.join(LEGACY_STATES)}"
            )
        name = "DatasourceNoData" if self.state == "no_data" else self.ruleName or self.title
        values = {
            str(m.get("metric", f"m{i}")): m["value"]
            for i, m in enumerate(self.evalMatches)
            if isinstance(m.get("value"), int | float)
        }
        return [
            {
                "status": status,
                "labels": {**{k: str(v) for k, v in self.tags.items()}, "alertname": name},
                "annotations": {"summary": self.message or self.title or name},
                "generatorURL": self.ruleUrl,
                "fingerprint": f"grafana-legacy-{self.ruleId if self.ruleId is not None else name}",
                "values": values or None,
            }
        ]


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
    began = breach_start(alert)
    now = received_at or datetime.now(UTC)
    if began is not None and began > now + CLOCK_SKEW:
        return Unrouted(
            reason=f"startsAt {began:%Y-%m-%dT%H:%M:%SZ} is in the future (received "
            f"{now:%Y-%m-%dT%H:%M:%SZ}): the sender's clock or the alert is wrong",
            invalid=True,
        )
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
