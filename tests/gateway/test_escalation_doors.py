"""An escalation acknowledged through the gateway: the Slack button and PagerDuty's signed v3
webhook, on the real dev server with a worker of stand-ins."""

from __future__ import annotations

import hashlib
import hmac
import json
from typing import Any
from uuid import uuid4

import httpx
import pytest
from temporalio.testing import WorkflowEnvironment

from activities import slack_messages
from activities.models import EscalationInput, StepContext
from client import operations
from contract.rollback import RollbackOptions, TriggerEvent, escalation_dedup_key
from gateway.app import create_app
from gateway.temporal_link import TemporalLink
from runbook.policy import Policy
from runbook.status import EscalationRecord, RollbackStatus
from tests.gateway.conftest import Gateway, make_settings
from tests.gateway.slack_standin import click
from tests.gateway.test_alerts import until
from tests.gateway.test_slack import post_click, replies

PD_SECRET = "pd-webhook-s3cret"
SRE, QA = "U0SREPAGE", "U0QADRI01"
KEY = "incident"
"""The key of a rollback's one incident (every reason joins it)."""


async def escalated(gw: Gateway) -> tuple[str, EscalationRecord]:
    """A rollback whose Step 3 fails: its escalation is open at its first role."""
    gw.standins.unhealthy = True
    deployment = f"search-{uuid4().hex[:6]}"
    await operations.send_trigger(
        gw.client,
        task_queue=gw.settings.task_queue,
        policy=gw.policy,
        deployment=deployment,
        event=TriggerEvent(trigger="error_rate"),
        options=RollbackOptions(ui_metadata=False),
    )
    status: RollbackStatus = await until(
        gw, deployment, lambda s: any(e.key == KEY for e in s.escalations)
    )
    return deployment, next(e for e in status.escalations if e.key == KEY)


def ack_value(deployment: str) -> str:
    message = slack_messages.escalation(
        EscalationInput(
            ctx=StepContext(
                deployment=deployment, rollback_id=f"rollback-{deployment}", channel="#c"
            ),
            reason="Step 3 failed",
            holders=[],
            key=KEY,
        )
    )
    [value] = [
        e["value"]
        for b in message.blocks
        if b["type"] == "actions"
        for e in b["elements"]
        if e["action_id"] == slack_messages.ESCALATION_ACK
    ]
    return str(value)


async def test_the_slack_button_stops_the_climb_and_names_who(gateway: Gateway) -> None:
    deployment, _ = await escalated(gateway)
    url = gateway.response_url
    assert await post_click(gateway, click(QA, "escalation_ack", ack_value(deployment), url)) == 200
    assert (
        await post_click(gateway, click(SRE, "escalation_ack", ack_value(deployment), url)) == 200
    )
    answers = await replies(gateway, 2)
    [refused] = [a for a in answers if a["text"].startswith("⛔")]
    [taken] = [a for a in answers if a["text"].startswith("✅")]
    assert "QA DRI" in refused["text"] and "escalation path" in refused["text"]
    assert KEY in taken["text"]
    status = await gateway.status(deployment)
    [esc] = [e for e in status.escalations if e.key == KEY]
    assert (esc.acked_by, esc.acked_via) == ("sre-oncall", "slack")


def pd_body(dedup_key: str, kind: str = "incident.acknowledged") -> bytes:
    """A v3 webhook as PagerDuty delivers it (trimmed to the fields it always has)."""
    return json.dumps(
        {
            "event": {
                "id": f"01{uuid4().hex[:10].upper()}",
                "event_type": kind,
                "resource_type": "incident",
                "occurred_at": "2026-12-01T10:00:05.000Z",
                "agent": {"id": "PLH1HKV", "summary": "Sam Oncall", "type": "user_reference"},
                "client": None,
                "data": {
                    "id": "PGR0VU2",
                    "type": "incident",
                    "number": 2,
                    "status": "acknowledged",
                    "incident_key": dedup_key,
                    "title": "[search-a] rollback escalation",
                },
            }
        }
    ).encode()


def pd_headers(body: bytes, secret: str = PD_SECRET) -> dict[str, str]:
    digest = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    # While a secret rotates, PagerDuty sends one signature per secret.
    return {"X-PagerDuty-Signature": f"v1=deadbeef,v1={digest}", "Content-Type": "application/json"}


@pytest.fixture
async def pd_gateway(gateway: Gateway, local_env: WorkflowEnvironment, policy: Policy) -> Any:
    settings = gateway.settings.model_copy(update={"pagerduty_webhook_secret": PD_SECRET})
    app = create_app(settings, policy, TemporalLink(settings, local_env.client))
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://gateway"
    ) as http:
        yield http
    await app.state.slack.http.aclose()


async def test_a_pagerduty_acknowledgement_stops_the_climb(
    gateway: Gateway, pd_gateway: httpx.AsyncClient
) -> None:
    deployment, esc = await escalated(gateway)
    body = pd_body(esc.dedup_key)
    answer = await pd_gateway.post("/pagerduty/webhook", content=body, headers=pd_headers(body))
    assert answer.status_code == 200, answer.text
    assert answer.json()["outcome"] == "acknowledged"
    again = await pd_gateway.post("/pagerduty/webhook", content=body, headers=pd_headers(body))
    assert again.status_code == 200  # a redelivery counts once
    status = await gateway.status(deployment)
    [acked] = [e for e in status.escalations if e.key == KEY]
    assert (acked.acked_by, acked.acked_via) == ("Sam Oncall", "pagerduty")
    assert [e.kind for e in status.timeline].count("escalation_ack") == 1


async def test_pagerduty_webhooks_are_verified_and_only_ours_are_taken(
    gateway: Gateway, pd_gateway: httpx.AsyncClient
) -> None:
    deployment, esc = await escalated(gateway)
    body = pd_body(esc.dedup_key)
    forged = await pd_gateway.post(
        "/pagerduty/webhook", content=body, headers=pd_headers(body, "wrong-secret")
    )
    assert forged.status_code == 401
    unsigned = await pd_gateway.post("/pagerduty/webhook", content=body)
    assert unsigned.status_code == 401
    garbage = b"{not json"
    bad = await pd_gateway.post("/pagerduty/webhook", content=garbage, headers=pd_headers(garbage))
    assert bad.status_code == 400 and "JSON" in bad.text
    resolved = pd_body(esc.dedup_key, "incident.resolved")
    other = await pd_gateway.post(
        "/pagerduty/webhook", content=resolved, headers=pd_headers(resolved)
    )
    assert other.json()["outcome"] == "ignored"
    foreign = pd_body("d3640fbd41094207a1a11a3b5f5fd2c9")
    not_ours = await pd_gateway.post(
        "/pagerduty/webhook", content=foreign, headers=pd_headers(foreign)
    )
    assert not_ours.json()["outcome"] == "not_ours"
    traversal = pd_body(escalation_dedup_key("rollback-../etc", KEY, esc.opened_at))
    refused = await pd_gateway.post(
        "/pagerduty/webhook", content=traversal, headers=pd_headers(traversal)
    )
    assert refused.json()["outcome"] == "not_ours"
    status = await gateway.status(deployment)
    assert all(e.acked_at is None for e in status.escalations)


async def test_without_a_secret_pagerduty_is_refused(gateway: Gateway) -> None:
    body = pd_body("rollback-search-a|k|20260101T000000")
    answer = await gateway.http.post("/pagerduty/webhook", content=body, headers=pd_headers(body))
    assert answer.status_code == 401 and "ROLLBACK_PAGERDUTY_WEBHOOK_SECRET" in answer.text


async def test_temporal_down_answers_503_so_pagerduty_retries(policy: Policy) -> None:
    settings = make_settings(temporal_address="127.0.0.1:1", pagerduty_webhook_secret=PD_SECRET)
    app = create_app(settings, policy)
    body = pd_body("rollback-search-a|failed:health_validation|20260101T000000")
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://gateway"
    ) as http:
        answer = await http.post("/pagerduty/webhook", content=body, headers=pd_headers(body))
    await app.state.slack.http.aclose()
    assert answer.status_code == 503
    assert answer.json()["outcome"] == "not_recorded"


async def test_pagerdutys_echo_of_our_own_acknowledgement_is_taken_and_a_stranger_refused(
    gateway: Gateway, pd_gateway: httpx.AsyncClient
) -> None:
    """Acknowledged in Slack, the engine acknowledges the page; PagerDuty then tells the webhook
    of that acknowledgement: a no-op, not a refusal. An escalation the rollback never opened is
    refused, said as such (200: PagerDuty must not retry it)."""
    deployment, esc = await escalated(gateway)
    url = gateway.response_url
    assert (
        await post_click(gateway, click(SRE, "escalation_ack", ack_value(deployment), url)) == 200
    )
    await replies(gateway, 1)
    body = pd_body(esc.dedup_key)
    echo = await pd_gateway.post("/pagerduty/webhook", content=body, headers=pd_headers(body))
    assert echo.status_code == 200
    assert echo.json()["outcome"] == "acknowledged", echo.json()
    assert "already acknowledged" in echo.json()["detail"] and "slack" in echo.json()["detail"]
    status = await gateway.status(deployment)
    assert not [e for e in status.timeline if e.kind == "escalation_ack_refused"]
    [acked] = [e for e in status.escalations if e.key == KEY]
    assert acked.acked_via == "slack"  # the first acknowledgement stands
    stranger = pd_body(escalation_dedup_key(f"rollback-{deployment}", "step:nope", esc.opened_at))
    refused = await pd_gateway.post(
        "/pagerduty/webhook", content=stranger, headers=pd_headers(stranger)
    )
    assert refused.status_code == 200
    assert refused.json()["outcome"] == "refused", refused.json()
