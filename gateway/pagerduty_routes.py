"""POST /pagerduty/webhook: PagerDuty's v3 webhooks, so that acknowledging the page in PagerDuty
stops the escalation's climb as the Slack button does.

Only `incident.acknowledged` is acted on, and only for an incident this engine opened: its
`incident_key` is the dedup_key of our events (`contract.rollback.escalation_dedup_key`), which
names the rollback and the escalation. Every delivery is signed (`X-PagerDuty-Signature`, one or
more `v1=` HMAC-SHA256 of the raw body with the subscription's secret, several while a secret
is rotated). 2xx means "taken" (PagerDuty stops retrying); 503 means "not recorded, retry".
"""

from __future__ import annotations

import hashlib
import hmac
import json
from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from config.settings import Settings
from contract.rollback import EscalationAck, deployment_problem, escalation_of
from gateway.decisions import deliver_escalation_ack
from gateway.metrics import GatewayMetrics
from gateway.temporal_link import TemporalLink

SIGNATURE_HEADER = "X-PagerDuty-Signature"
ACKNOWLEDGED = "incident.acknowledged"


class PagerDutyAnswer(BaseModel):
    outcome: str
    """acknowledged, refused (the rollback said why: retrying would not help), stored (no
    worker answered: judged when one does), ignored, not_ours, or not_recorded (retry)."""
    detail: str = ""


def signed(secret: str, body: bytes, header: str | None) -> bool:
    """Whether one of the header's `v1=` signatures is the body's HMAC-SHA256 under `secret`."""
    if not header:
        return False
    expected = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    given = [part.strip()[3:] for part in header.split(",") if part.strip().startswith("v1=")]
    return any(hmac.compare_digest(expected, sig) for sig in given)


def pagerduty_router(settings: Settings, link: TemporalLink, metrics: GatewayMetrics) -> APIRouter:
    router = APIRouter(prefix="/pagerduty", tags=["pagerduty"])

    @router.post("/webhook", response_model=PagerDutyAnswer)
    async def webhook(request: Request) -> JSONResponse:
        """PagerDuty's v3 webhook subscription: `incident.acknowledged` stops the climb."""
        try:
            answer = await judged(request)
        except HTTPException as error:
            metrics.pagerduty.labels("unsigned" if error.status_code == 401 else "invalid").inc()
            raise
        outcome = json.loads(bytes(answer.body))["outcome"]
        metrics.pagerduty.labels(outcome).inc()
        if outcome == "not_recorded":
            metrics.temporal_errors.labels("pagerduty").inc()
        return answer

    async def judged(request: Request) -> JSONResponse:
        secret = settings.pagerduty_webhook_secret
        if not secret:
            raise HTTPException(401, "the gateway has no ROLLBACK_PAGERDUTY_WEBHOOK_SECRET")
        raw = await request.body()
        if not signed(secret, raw, request.headers.get(SIGNATURE_HEADER)):
            raise HTTPException(401, f"missing or wrong {SIGNATURE_HEADER} (v1=HMAC-SHA256)")
        event = _event(raw)
        kind = str(event.get("event_type") or "")
        if kind != ACKNOWLEDGED:
            return _answer("ignored", f"{kind or 'an event without event_type'} is not acted on")
        data = event.get("data")
        incident_key = data.get("incident_key") if isinstance(data, dict) else None
        ours = escalation_of(incident_key) if isinstance(incident_key, str) else None
        if ours is None:
            return _answer("not_ours", "the incident was not opened by a rollback escalation")
        workflow, key = ours
        deployment = workflow.removeprefix("rollback-")
        problem = deployment_problem(deployment, "the incident's deployment")
        if problem is not None:
            return _answer("not_ours", problem)
        agent = event.get("agent")
        who = str(agent.get("summary") or "") if isinstance(agent, dict) else ""
        ack = EscalationAck(
            key=key,
            person=None,
            via="pagerduty",
            who=(who or "someone in PagerDuty")[:200],
            request_id=f"pagerduty:{str(event.get('id') or incident_key)[:200]}",
            made_at=_when(event.get("occurred_at")),
        )
        outcome = await deliver_escalation_ack(link, deployment, ack)
        if not outcome.taken:
            return _answer("not_recorded", outcome.text, status=503)
        if outcome.accepted is False:
            return _answer("refused", outcome.text)
        return _answer("acknowledged" if outcome.accepted else "stored", outcome.text)

    return router


def _event(raw: bytes) -> dict[str, Any]:
    try:
        body = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise HTTPException(400, f"body is not JSON: {error}") from None
    event = body.get("event") if isinstance(body, dict) else None
    if not isinstance(event, dict):
        raise HTTPException(400, "body has no `event` object (a PagerDuty v3 webhook has one)")
    return event


def _when(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        when = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return when if when.tzinfo is not None else when.replace(tzinfo=UTC)  # PagerDuty's is UTC


def _answer(outcome: str, detail: str, status: int = 200) -> JSONResponse:
    return JSONResponse(PagerDutyAnswer(outcome=outcome, detail=detail).model_dump(), status)
