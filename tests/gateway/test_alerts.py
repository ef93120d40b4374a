"""Alert webhooks: real Alertmanager and Grafana shapes, auth, limits, routing, retries."""

from __future__ import annotations

import asyncio
from typing import Any
from uuid import uuid4

import httpx
import pytest
from temporalio.service import RPCError

from gateway.app import create_app
from runbook.policy import Policy
from tests.gateway.conftest import TOKEN, Gateway, make_settings

AUTH = {"Authorization": f"Bearer {TOKEN}"}


def am_alert(
    deployment: str, status: str = "firing", fingerprint: str | None = None, **labels: str
) -> dict[str, Any]:
    return {
        "status": status,
        "labels": {
            "alertname": "SearchCanaryErrorRate",
            "deployment": deployment,
            "severity": "page",
            **labels,
        },
        "annotations": {"summary": f"error rate 2.1% on {deployment}"},
        "startsAt": "2026-11-28T10:02:00.000Z",
        "endsAt": "0001-01-01T00:00:00Z" if status == "firing" else "2026-11-28T10:09:00Z",
        "generatorURL": "http://prometheus:9090/graph?g0.expr=x",
        "fingerprint": fingerprint or uuid4().hex[:16],
    }


def alertmanager(*alerts: dict[str, Any]) -> dict[str, Any]:
    """Alertmanager 0.25's webhook body (version 4)."""
    return {
        "receiver": "rollback-gateway",
        "status": "firing",
        "alerts": list(alerts),
        "groupLabels": {"alertname": "SearchCanaryErrorRate"},
        "commonLabels": {"alertname": "SearchCanaryErrorRate"},
        "commonAnnotations": {},
        "externalURL": "http://alertmanager:9093",
        "version": "4",
        "groupKey": '{}:{alertname="SearchCanaryErrorRate"}',
        "truncatedAlerts": 0,
    }


async def until(gw: Gateway, deployment: str, predicate: Any) -> Any:
    """The status once `predicate` holds (30 s at most: a busy machine is slow, not wrong)."""
    for _ in range(600):
        try:
            current = await gw.status(deployment)
            if predicate(current):
                return current
        except RPCError:
            pass
        await asyncio.sleep(0.05)
    raise AssertionError(f"{deployment}: condition never held")


async def test_token_is_required(gateway: Gateway) -> None:
    body = alertmanager(am_alert("search-x"))
    assert (await gateway.http.post("/alerts/alertmanager", json=body)).status_code == 401
    wrong = {"Authorization": "Bearer nope"}
    assert (
        await gateway.http.post("/alerts/alertmanager", json=body, headers=wrong)
    ).status_code == 401
    assert (await gateway.http.post("/alerts/grafana", json=body)).status_code == 401


async def test_body_over_the_limit_is_413(policy: Policy) -> None:
    app = create_app(make_settings(max_body_bytes=200_000), policy)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://gw"
    ) as http:
        huge = alertmanager(*[am_alert("search-x") for _ in range(1000)])
        answer = await http.post("/alerts/alertmanager", json=huge, headers=AUTH)
        assert answer.status_code == 413


async def test_a_malformed_alert_is_its_own_outcome_a_malformed_body_is_422(
    gateway: Gateway,
) -> None:
    body = alertmanager(am_alert("search-x"))
    del body["alerts"][0]["labels"]
    answer = await gateway.http.post("/alerts/alertmanager", json=body, headers=AUTH)
    assert answer.status_code == 200  # not retried forever for one poison alert
    [outcome] = answer.json()["results"]
    assert outcome["status"] == "invalid" and outcome["reason"] == "labels: Field required"
    body = alertmanager(am_alert("search-x"))
    body["version"] = "3"
    answer = await gateway.http.post("/alerts/alertmanager", json=body, headers=AUTH)
    assert answer.status_code == 422 and answer.json()["detail"][0]["loc"] == ["body", "version"]


async def test_each_alert_goes_to_its_rollback_and_unmapped_ones_are_reported(
    gateway: Gateway,
) -> None:
    a, b = f"search-{uuid4().hex[:6]}", f"search-{uuid4().hex[:6]}"
    body = alertmanager(
        am_alert(a, trigger="error_rate"),
        am_alert(b),  # no trigger label: mapped by alertname
        am_alert("search-z", alertname="SomethingElse"),
        am_alert("bad name!"),
    )
    answer = await gateway.http.post("/alerts/alertmanager", json=body, headers=AUTH)
    assert answer.status_code == 200
    results = answer.json()["results"]
    assert [r["status"] for r in results] == ["sent", "sent", "unmapped", "invalid"]
    assert results[0]["workflow_id"] == f"rollback-{a}" and results[1]["trigger"] == "error_rate"
    assert "alerts.names" in results[2]["reason"]
    assert "not a deployment name" in results[3]["reason"]
    for deployment in (a, b):
        done = await until(gateway, deployment, lambda s: s.state == "following_up")
        assert done.decided_by == ["system"]
        trigger = next(e for e in done.timeline if e.kind == "trigger")
        assert "error rate 2.1%" in trigger.message and trigger.by == "alertmanager"


async def test_retried_delivery_is_recorded_once(gateway: Gateway) -> None:
    deployment = f"search-{uuid4().hex[:6]}"
    body = alertmanager(am_alert(deployment, fingerprint="abc123"))
    for _ in range(3):
        answer = await gateway.http.post("/alerts/alertmanager", json=body, headers=AUTH)
        assert answer.status_code == 200
    done = await until(gateway, deployment, lambda s: s.state == "following_up")
    assert sum(1 for e in done.timeline if e.kind == "trigger") == 1
    assert gateway.standins.count("set_traffic_split") == 1


async def test_resolved_alert_is_recorded_and_never_cancels(gateway: Gateway) -> None:
    deployment = f"search-{uuid4().hex[:6]}"
    gateway.standins.treatment = 5
    firing = am_alert(deployment, fingerprint="f1", alertname="SearchCanaryGateFailure")
    await gateway.http.post("/alerts/alertmanager", json=alertmanager(firing), headers=AUTH)
    await until(gateway, deployment, lambda s: s.state == "awaiting_decision")
    resolved = {**firing, "status": "resolved", "endsAt": "2026-11-28T10:09:00Z"}
    answer = await gateway.http.post(
        "/alerts/alertmanager", json=alertmanager(resolved), headers=AUTH
    )
    assert answer.json()["results"][0]["status"] == "recorded"
    waiting = await until(
        gateway, deployment, lambda s: any(e.kind == "alert_resolved" for e in s.timeline)
    )
    assert waiting.state == "awaiting_decision"

    nobody = am_alert(f"search-{uuid4().hex[:6]}", status="resolved")
    answer = await gateway.http.post(
        "/alerts/alertmanager", json=alertmanager(nobody), headers=AUTH
    )
    assert answer.json()["results"][0]["status"] == "ignored"
    await gateway.client.get_workflow_handle(f"rollback-{deployment}").terminate()


async def test_grafana_payload(gateway: Gateway) -> None:
    deployment = f"search-{uuid4().hex[:6]}"
    alert = {
        **am_alert(deployment, alertname="SearchCanaryResourceExhaustion"),
        "silenceURL": "http://grafana/alerting/silence/new",
        "dashboardURL": "http://grafana/d/abc",
        "panelURL": "http://grafana/d/abc?viewPanel=2",
        "values": {"B": 0.97, "C": 1.0},
        "valueString": "[ var='B' value=0.97 ]",
    }
    body = {
        **alertmanager(alert),
        "version": "1",
        "orgId": 1,
        "title": "[FIRING:1] shards",
        "state": "alerting",
        "message": "shard CPU 97%",
    }
    answer = await gateway.http.post("/alerts/grafana", json=body, headers=AUTH)
    assert answer.status_code == 200 and answer.json()["results"][0]["status"] == "sent"
    done = await until(gateway, deployment, lambda s: s.state == "following_up")
    assert done.trigger == "resource_exhaustion"


async def test_temporal_down_is_503_and_unmapped_alerts_still_reported(policy: Policy) -> None:
    settings = make_settings(temporal_address="127.0.0.1:1")
    app = create_app(settings, policy)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://gw"
    ) as http:
        body = alertmanager(am_alert("search-x"), am_alert("search-y", alertname="Nope"))
        answer = await http.post("/alerts/alertmanager", json=body, headers=AUTH)
        assert answer.status_code == 503
        assert [r["status"] for r in answer.json()["results"]] == ["failed", "unmapped"]
        health = await http.get("/healthz")
        assert health.status_code == 503 and health.json()["ok"] is False


async def test_healthz_and_openapi(gateway: Gateway) -> None:
    health = await gateway.http.get("/healthz")
    assert health.status_code == 200 and health.json()["ok"] is True
    spec = (await gateway.http.get("/openapi.json")).json()
    assert {
        "/alerts/alertmanager",
        "/alerts/grafana",
        "/slack/interactions",
        "/slack/commands",
        "/healthz",
    } <= set(spec["paths"])


@pytest.mark.parametrize("path", ["/alerts/alertmanager", "/alerts/grafana"])
async def test_not_json_is_422(gateway: Gateway, path: str) -> None:
    answer = await gateway.http.post(
        path, content=b"{nope", headers={**AUTH, "Content-Type": "application/json"}
    )
    assert answer.status_code == 422


async def test_the_alerts_startsat_is_where_the_users_impact_began(gateway: Gateway) -> None:
    """Issue 20: the impact window began at the trigger ("Between 12:39 and 12:41" for a fault
    that began at 12:34); the alert's `startsAt` is the breach's start."""
    deployment = f"search-{uuid4().hex[:6]}"
    alert = am_alert(deployment, trigger="error_rate")
    alert["startsAt"] = "2026-11-28T10:02:00+01:00"  # any zone: kept as the instant it names
    answer = await gateway.http.post("/alerts/alertmanager", json=alertmanager(alert), headers=AUTH)
    assert [r["status"] for r in answer.json()["results"]] == ["sent"]
    done = await until(gateway, deployment, lambda s: "traffic_reverted" in s.instants)
    assert done.instants["breach"].isoformat() == "2026-11-28T09:02:00+00:00"
    assert done.instants["breach"] < done.instants["trigger"]


# --- issue 21: no alert lost at the door ------------------------------------------------------


async def test_ten_thousand_alerts_in_one_body_are_answered_one_by_one(gateway: Gateway) -> None:
    """A body of 10,000 alerts was refused whole (422, "at most 1000 items"): Alertmanager does
    not retry a 4xx, so every alert in it was lost."""
    deployments = [f"search-{uuid4().hex[:6]}" for _ in range(3)]
    alerts = [
        {
            "status": "firing",
            "labels": {"alertname": "E", "deployment": deployments[i % 3], "trigger": "error_rate"},
            "fingerprint": f"f{i}",
        }
        for i in range(10_000)
    ]
    alerts[7]["labels"]["deployment"] = "bad name!"
    answer = await gateway.http.post(
        "/alerts/alertmanager", json=alertmanager(*alerts), headers=AUTH
    )
    assert answer.status_code == 200, answer.text[:300]
    body = answer.json()
    assert body["received"] == 10_000 and len(body["results"]) == 10_000
    statuses = {r["status"] for r in body["results"]}
    assert statuses == {"sent", "invalid"}, statuses
    assert body["results"][7]["status"] == "invalid"
    for deployment in deployments:  # coalesced: one rollback each
        done = await until(gateway, deployment, lambda s: s.state == "following_up")
        assert done.trigger == "error_rate"


async def test_an_alert_starting_in_the_future_is_invalid(gateway: Gateway) -> None:
    alert = am_alert(f"search-{uuid4().hex[:6]}", trigger="error_rate")
    alert["startsAt"] = "2027-12-08T00:00:00Z"  # a year ahead
    answer = await gateway.http.post("/alerts/alertmanager", json=alertmanager(alert), headers=AUTH)
    [result] = answer.json()["results"]
    assert result["status"] == "invalid" and "is in the future" in result["reason"], result


def grafana_legacy(deployment: str, state: str) -> dict[str, Any]:
    """Grafana's legacy alerting webhook (Grafana 8 and earlier, no `version`)."""
    return {
        "dashboardId": 1,
        "evalMatches": [{"value": 0.021, "metric": "error_rate", "tags": {}}],
        "message": f"error rate high on {deployment}",
        "orgId": 1,
        "panelId": 2,
        "ruleId": 7,
        "ruleName": "SearchCanaryErrorRate",
        "ruleUrl": "http://grafana/d/abc?viewPanel=2",
        "state": state,
        "tags": {"deployment": deployment, "trigger": "error_rate"},
        "title": f"[Alerting] SearchCanaryErrorRate {deployment}",
    }


async def test_grafana_legacy_alerting_is_taken(gateway: Gateway) -> None:
    """A Grafana legacy-alerting body (`state: alerting`, no `version`) was refused with 422."""
    deployment = f"search-{uuid4().hex[:6]}"
    answer = await gateway.http.post(
        "/alerts/grafana", json=grafana_legacy(deployment, "alerting"), headers=AUTH
    )
    assert answer.status_code == 200, answer.text
    [result] = answer.json()["results"]
    assert result["status"] == "sent" and result["trigger"] == "error_rate", result
    done = await until(gateway, deployment, lambda s: s.state == "following_up")
    assert done.trigger == "error_rate"

    paused = await gateway.http.post(
        "/alerts/grafana", json=grafana_legacy(deployment, "paused"), headers=AUTH
    )
    assert paused.status_code == 422
    assert "alerting, ok, no_data" in paused.json()["detail"]
    no_version = await gateway.http.post("/alerts/grafana", json={"alerts": []}, headers=AUTH)
    assert no_version.status_code == 422 and "version" in no_version.json()["detail"]
