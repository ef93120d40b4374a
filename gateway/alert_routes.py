"""POST /alerts/alertmanager and /alerts/grafana: each firing alert to its rollback."""

from __future__ import annotations

import hmac
import logging
from datetime import UTC, datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Header, HTTPException, Response
from pydantic import BaseModel
from temporalio.service import RPCError, RPCStatusCode

from client import operations
from config.settings import Settings
from contract.rollback import TRIGGER_SIGNAL, RollbackOptions, workflow_id
from gateway.alerts import Alert, AlertmanagerWebhook, GrafanaWebhook, Routed, route
from gateway.temporal_link import TemporalLink, TemporalUnavailable
from runbook.policy import Policy

log = logging.getLogger("gateway.alerts")


class AlertOutcome(BaseModel):
    index: int
    alertname: str
    status: Literal["sent", "recorded", "ignored", "unmapped", "failed"]
    deployment: str | None = None
    trigger: str | None = None
    workflow_id: str | None = None
    reason: str = ""


class AlertsResponse(BaseModel):
    received: int
    results: list[AlertOutcome]


def alerts_router(settings: Settings, policy: Policy, link: TemporalLink) -> APIRouter:
    router = APIRouter(prefix="/alerts", tags=["alerts"])

    def authorized(authorization: Annotated[str | None, Header()] = None) -> None:
        expected = settings.alerts_token
        if not expected:
            raise HTTPException(401, "the gateway has no ROLLBACK_ALERTS_TOKEN: alerts are refused")
        given = (authorization or "").removeprefix("Bearer ").strip()
        if not authorization or not hmac.compare_digest(given.encode(), expected.encode()):
            raise HTTPException(
                401, "missing or wrong bearer token", headers={"WWW-Authenticate": "Bearer"}
            )

    async def deliver(alerts: list[Alert], source: str, response: Response) -> AlertsResponse:
        results = []
        received_at = datetime.now(UTC)
        for index, alert in enumerate(alerts):
            outcome = await _one(index, alert, source, received_at)
            if outcome.status in ("unmapped", "failed"):
                log.warning(
                    "%s alert %d (%s): %s %s",
                    source,
                    index,
                    outcome.alertname,
                    outcome.status,
                    outcome.reason,
                )
            results.append(outcome)
        if any(r.status == "failed" for r in results):
            response.status_code = 503  # Alertmanager retries; recorded alerts are deduplicated
        return AlertsResponse(received=len(alerts), results=results)

    async def _one(index: int, alert: Alert, source: str, received_at: datetime) -> AlertOutcome:
        name = alert.labels.get("alertname", "")
        routed = route(policy, alert, source, received_at)
        if not isinstance(routed, Routed):
            return AlertOutcome(
                index=index, alertname=name, status="unmapped", reason=routed.reason
            )
        base = AlertOutcome(
            index=index,
            alertname=name,
            status="sent",
            deployment=routed.deployment,
            trigger=routed.event.trigger,
            workflow_id=workflow_id(routed.deployment),
        )
        try:
            client = await link.client()
            if alert.status == "resolved":
                # A resolved alert is recorded on a running rollback and never starts one.
                handle = client.get_workflow_handle(workflow_id(routed.deployment))
                await handle.signal(TRIGGER_SIGNAL, routed.event)
                return base.model_copy(update={"status": "recorded"})
            await operations.send_trigger(
                client,
                task_queue=settings.task_queue,
                policy=policy,
                deployment=routed.deployment,
                event=routed.event,
                options=RollbackOptions(ui_metadata=settings.ui_metadata),
            )
            return base
        except RPCError as error:
            if alert.status == "resolved" and error.status == RPCStatusCode.NOT_FOUND:
                return base.model_copy(
                    update={"status": "ignored", "reason": "resolved, and no rollback is running"}
                )
            return base.model_copy(update={"status": "failed", "reason": error.message})
        except TemporalUnavailable as error:
            return base.model_copy(update={"status": "failed", "reason": str(error)})

    @router.post("/alertmanager", response_model=AlertsResponse, dependencies=[Depends(authorized)])
    async def alertmanager(body: AlertmanagerWebhook, response: Response) -> AlertsResponse:
        """Prometheus Alertmanager's webhook (version 4)."""
        return await deliver(list(body.alerts), "alertmanager", response)

    @router.post("/grafana", response_model=AlertsResponse, dependencies=[Depends(authorized)])
    async def grafana(body: GrafanaWebhook, response: Response) -> AlertsResponse:
        """Grafana's webhook contact point (version 1)."""
        return await deliver(list(body.alerts), "grafana", response)

    return router
