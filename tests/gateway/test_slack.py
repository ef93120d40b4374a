"""Slack interactivity and slash commands, signed exactly as Slack signs them."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any
from uuid import uuid4

from client import operations
from contract.rollback import DecisionInput, TriggerEvent
from gateway.decisions import deliver_decision
from gateway.temporal_link import TemporalLink
from tests.gateway.conftest import SECRET, Gateway
from tests.gateway.slack_standin import click, interaction_body, signed

QA, DRI, EM, STRANGER = "U0QADRI01", "U0DRISRCH", "U0ENGMGR1", "U0NOBODY1"


async def open_window(gw: Gateway, trigger: str = "quality_regression") -> str:
    deployment = f"search-{uuid4().hex[:6]}"
    await operations.send_trigger(
        gw.client,
        task_queue=gw.settings.task_queue,
        policy=gw.policy,
        deployment=deployment,
        event=TriggerEvent(trigger=trigger, source="test"),
    )
    for _ in range(100):
        try:
            if (await gw.status(deployment)).state == "awaiting_decision":
                return deployment
        except Exception:
            pass
        await asyncio.sleep(0.05)
    raise AssertionError("no decision window opened")


async def post_click(gw: Gateway, payload: dict[str, Any], **sign: Any) -> int:
    body = interaction_body(payload)
    answer = await gw.http.post(
        "/slack/interactions", content=body, headers=signed(SECRET, body, **sign)
    )
    return answer.status_code


async def click_with_reason(gw: Gateway, payload: dict[str, Any], reason: str) -> None:
    """A Deny or Investigating click: Slack opens the gateway's reason modal (views.open), the
    person types why and submits it (view_submission, signed like every Slack request)."""
    opened = len(gw.slack.standin.method_calls("views.open"))
    assert await post_click(gw, payload) == 200
    for _ in range(100):
        views = gw.slack.standin.method_calls("views.open")
        if len(views) > opened:
            break
        await asyncio.sleep(0.05)
    else:
        raise AssertionError("the gateway did not open the reason modal")
    view = views[-1]["view"]
    if isinstance(view, str):
        view = json.loads(view)
    assert views[-1]["trigger_id"] == payload["trigger_id"]
    submission = {
        "type": "view_submission",
        "user": payload["user"],
        "team": payload["team"],
        "view": {
            "callback_id": view["callback_id"],
            "private_metadata": view["private_metadata"],
            "state": {
                "values": {"reason": {"reason": {"type": "plain_text_input", "value": reason}}}
            },
        },
    }
    assert await post_click(gw, submission) == 200


async def replies(gw: Gateway, count: int) -> list[dict[str, Any]]:
    for _ in range(100):
        if len(gw.slack.standin.responses) >= count:
            return gw.slack.standin.responses
        await asyncio.sleep(0.05)
    raise AssertionError(f"expected {count} replies, got {gw.slack.standin.responses}")


async def test_forged_and_replayed_requests_are_401(gateway: Gateway) -> None:
    payload = click(QA, "rollback_approve", "search-x", gateway.response_url)
    body = interaction_body(payload)
    forged = signed("not-the-secret", body)
    assert (
        await gateway.http.post("/slack/interactions", content=body, headers=forged)
    ).status_code == 401
    assert await post_click(gateway, payload, timestamp=int(time.time()) - 6 * 60) == 401
    tampered = signed(SECRET, body)
    assert (
        await gateway.http.post("/slack/interactions", content=body + b"x", headers=tampered)
    ).status_code == 401
    assert gateway.slack.standin.responses == []


async def test_two_person_approval_from_slack_with_double_click(gateway: Gateway) -> None:
    deployment = await open_window(gateway)  # at 50 %: QA DRI + Sprint DRI
    url = gateway.response_url
    started = time.perf_counter()
    assert await post_click(gateway, click(QA, "rollback_approve", deployment, url)) == 200
    assert time.perf_counter() - started < 3  # Slack's acknowledgement deadline
    assert await post_click(gateway, click(QA, "rollback_approve", deployment, url)) == 200
    first, second = (await replies(gateway, 2))[:2]
    assert "waiting for Sprint DRI" in first["text"] and first["response_type"] == "ephemeral"
    assert second["text"] == first["text"]  # the double click counted once
    status = await gateway.status(deployment)
    assert sum(1 for e in status.timeline if e.kind == "decision_vote") == 1

    assert await post_click(gateway, click(DRI, "rollback_approve", deployment, url)) == 200
    third = (await replies(gateway, 3))[2]
    assert third["text"].startswith("✅") and "approved rollback" in third["text"]
    await gateway.client.get_workflow_handle(f"rollback-{deployment}").terminate()


async def test_person_without_authority_is_told_who_may_decide(gateway: Gateway) -> None:
    deployment = await open_window(gateway)
    url = gateway.response_url
    assert await post_click(gateway, click(EM, "rollback_approve", deployment, url)) == 200
    assert await post_click(gateway, click(STRANGER, "rollback_deny", deployment, url)) == 200
    answers = await replies(gateway, 2)
    [em] = [a for a in answers if "roster" not in a["text"]]
    [stranger] = [a for a in answers if "roster" in a["text"]]
    assert em["text"].startswith("⛔") and "QA DRI + Sprint DRI" in em["text"]
    assert "not in the rollback roster" in stranger["text"]
    assert (await gateway.status(deployment)).state == "awaiting_decision"
    await gateway.client.get_workflow_handle(f"rollback-{deployment}").terminate()


async def test_click_while_no_worker_runs_is_stored_and_applied_later(
    gateway_no_worker: Gateway,
) -> None:
    gw = gateway_no_worker
    gw.standins.treatment = 5  # gate failure at 5 %: the Sprint DRI decides
    async with gw.new_worker():
        deployment = await open_window(gw, "gate_failure")
    # The worker is gone now.
    await click_with_reason(
        gw, click(DRI, "rollback_deny", deployment, gw.response_url), "recall dip is noise"
    )
    [reply] = await replies(gw, 1)
    assert "stored durably" in reply["text"]
    async with gw.new_worker():
        for _ in range(100):
            status = await gw.status(deployment)
            if status.state == "continued":
                break
            await asyncio.sleep(0.05)
        assert status.state == "continued"
        assert status.decided_by == [] and any(e.kind == "decision" for e in status.timeline)
    await gw.client.get_workflow_handle(f"rollback-{deployment}").terminate()


async def test_slash_command_starts_operational_anomaly_for_a_sprint_dri(
    gateway: Gateway,
) -> None:
    deployment = f"search-{uuid4().hex[:6]}"

    async def command(user: str, text: str) -> dict[str, Any]:
        form = (
            f"command=%2Frollback&text={text.replace(' ', '+')}&user_id={user}"
            f"&channel_id=C0SPRINT1&response_url={gateway.response_url}"
        ).encode()
        answer = await gateway.http.post(
            "/slack/commands", content=form, headers=signed(SECRET, form)
        )
        assert answer.status_code == 200
        return answer.json()  # type: ignore[no-any-return]

    refused = await command(QA, f"{deployment} shards look odd")
    assert "Only a Sprint DRI" in refused["text"]
    assert (await command(DRI, ""))["text"].startswith("Usage")
    ack = await command(DRI, f"{deployment} shards look odd")
    assert ack["response_type"] == "ephemeral"
    [started] = await replies(gateway, 1)
    assert started["response_type"] == "in_channel" and deployment in started["text"]
    for _ in range(100):
        try:
            if (await gateway.status(deployment)).state == "following_up":
                break
        except Exception:
            pass
        await asyncio.sleep(0.05)
    status = await gateway.status(deployment)
    assert status.decided_by == ["dri-search"] and status.trigger == "operational_anomaly"
    await command(DRI, f"status {deployment}")
    [_, answer] = await replies(gateway, 2)
    assert "following_up" in answer["text"] and "Step 1: Emergency Stop" in answer["text"]
    await gateway.client.get_workflow_handle(f"rollback-{deployment}").terminate()


async def test_temporal_down_decision_is_plainly_not_recorded(gateway: Gateway) -> None:
    dead = TemporalLink(gateway.settings.model_copy(update={"temporal_address": "127.0.0.1:1"}))
    text = await deliver_decision(
        dead, "search-x", DecisionInput(action="approve", person="qa-dri")
    )
    assert "NOT recorded" in text and "rollback decide" in text
