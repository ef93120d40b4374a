"""POST /alerts/alertmanager and /alerts/grafana: each alert to its rollback (or its watch)."""

from __future__ import annotations

import hmac
import time
from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Header, HTTPException, Response
from pydantic import ValidationError

from config.settings import Settings
from gateway.alert_delivery import AlertDelivery, AlertsResponse
from gateway.alerts import AlertmanagerWebhook, GrafanaLegacyWebhook, GrafanaWebhook
from gateway.metrics import GatewayMetrics
from gateway.temporal_link import TemporalLink
from runbook.policy import Policy

CHALLENGE = {"WWW-Authenticate": 'Bearer realm="rollback alerts"'}


def bearer_token(authorization: str | None) -> str | None:
    """The token of an `Authorization: Bearer <token>` header as RFC 6750 has it: the scheme
    is case-insensitive, one or more spaces, then a token that is required."""
    if not authorization:
        return None
    scheme, _, token = authorization.strip().partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token or " " in token:
        return None
    return token


def alerts_router(
    settings: Settings, policy: Policy, link: TemporalLink, metrics: GatewayMetrics
) -> APIRouter:
    router = APIRouter(prefix="/alerts", tags=["alerts"])
    delivery = AlertDelivery(settings, policy, link)

    def authorized(authorization: Annotated[str | None, Header()] = None) -> None:
        expected = settings.alerts_token
        if not expected:
            raise HTTPException(401, "the gateway has no ROLLBACK_ALERTS_TOKEN: alerts are refused")
        given = bearer_token(authorization)
        if given is None:
            raise HTTPException(401, "expected `Authorization: Bearer <token>`", headers=CHALLENGE)
        if not hmac.compare_digest(given.encode(), expected.encode()):
            raise HTTPException(401, "wrong bearer token", headers=CHALLENGE)

    async def answer(raw: list[dict[str, Any]], source: str, response: Response) -> AlertsResponse:
        began = time.perf_counter()
        body, status = await delivery.deliver(raw, source)
        response.status_code = status  # 503: the sender retries; delivered alerts count once
        for outcome in body.results:
            metrics.alerts.labels(source, outcome.status).inc()
        if status == 503:
            metrics.temporal_errors.labels("alerts").inc()
        metrics.webhook_seconds.labels(source, str(status)).observe(time.perf_counter() - began)
        return body

    @router.post("/alertmanager", response_model=AlertsResponse, dependencies=[Depends(authorized)])
    async def alertmanager(body: AlertmanagerWebhook, response: Response) -> AlertsResponse:
        """Prometheus Alertmanager's webhook (version 4)."""
        return await answer(body.alerts, "alertmanager", response)

    @router.post("/grafana", response_model=AlertsResponse, dependencies=[Depends(authorized)])
    async def grafana(
        response: Response, body: Annotated[dict[str, Any], Body()]
    ) -> AlertsResponse:
        """Grafana's webhook contact point: unified alerting (version 1), or legacy alerting
        (no version; `state` alerting, ok or no_data)."""
        return await answer(grafana_alerts(body), "grafana", response)

    router.delivery = delivery  # type: ignore[attr-defined]
    return router


def grafana_alerts(body: dict[str, Any]) -> list[dict[str, Any]]:
    """The alerts of a Grafana body, whichever of its two webhook formats; 422 naming what is
    wrong (and the formats taken) otherwise."""
    legacy = "version" not in body and "alerts" not in body and "state" in body
    try:
        if legacy:
            return GrafanaLegacyWebhook.model_validate(body).alerts()
        return GrafanaWebhook.model_validate(body).alerts
    except ValidationError as error:
        first = error.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "body"
        raise HTTPException(
            422,
            f"{where}: {first['msg']} (taken: Grafana's unified alerting webhook, version 1, "
            "or its legacy alerting webhook, with `state`)",
        ) from None
    except ValueError as error:
        raise HTTPException(422, str(error)) from None
