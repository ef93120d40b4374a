"""Issue 19's Slack findings, through the real gateway (Slack's signature), the dev server and
the policy as written (`identity.cli: signed`, the gateway's key in `identity.gateway_keys`):
a click from another workspace is refused; a click on one rollback's message cannot decide
another's window; a deny asks for its reason (a modal) and records it; a decision that claims
to come from Slack without the gateway's signature is refused; and Slack decisions still work
end to end, each proven by the Slack user and workspace the gateway verified."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from uuid import uuid4

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    PublicFormat,
)
from temporalio.testing import WorkflowEnvironment

from client import operations
from contract.rollback import DecisionInput, TriggerEvent
from gateway.app import create_app
from gateway.temporal_link import TemporalLink
from runbook.loading import DEFAULT_POLICY, load_policy
from runbook.status import RollbackStatus
from tests.gateway.conftest import Gateway, make_settings
from tests.gateway.slack_standin import SlackServer, click
from tests.gateway.test_slack import QA, click_with_reason, post_click, replies
from tests.policies import edited
from tests.workflows.standins import StandIns

DRI = "U0DRISRCH"
TEAM = "T0"
"""The workspace the gateway serves (tests.gateway.slack_standin.click's)."""


@pytest.fixture
async def proven(
    local_env: WorkflowEnvironment, slack: SlackServer, tmp_path: Path
) -> AsyncIterator[Gateway]:
    key = Ed25519PrivateKey.generate()
    path = tmp_path / "gateway.key"
    path.write_bytes(key.private_bytes(Encoding.PEM, PrivateFormat.OpenSSH, NoEncryption()))
    public = key.public_key().public_bytes(Encoding.OpenSSH, PublicFormat.OpenSSH).decode()
    policy = edited(load_policy(DEFAULT_POLICY), {"identity.gateway_keys": [public]})
    assert policy.signed()
    settings = make_settings(
        temporal_address=local_env.client.service_client.config.target_host,
        slack_bot_token="xoxb-test",
        slack_api_url=f"{slack.url}/api",
        slack_team_id=TEAM,
        gateway_signing_key=path,
    )
    app = create_app(settings, policy, TemporalLink(settings, local_env.client))
    gw: Gateway | None = None
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://gateway"
    ) as http:
        gw = Gateway(http, settings, local_env.client, slack, StandIns(treatment=50), policy)
        try:
            async with gw.new_worker():
                yield gw
        finally:
            await app.state.slack.http.aclose()


async def window(gw: Gateway, trigger: str, ts: str) -> str:
    """A rollback whose decision message Slack posted at `ts`."""
    deployment = f"search-{uuid4().hex[:6]}"
    gw.standins.decision_ts[deployment] = ts
    await operations.send_trigger(
        gw.client,
        task_queue=gw.settings.task_queue,
        policy=gw.policy,
        deployment=deployment,
        event=TriggerEvent(trigger=trigger, source="alertmanager"),
    )
    await until(gw, deployment, lambda s: s.state == "awaiting_decision")
    return deployment


async def until(gw: Gateway, deployment: str, check: Any) -> RollbackStatus:
    for _ in range(200):
        try:
            current = await gw.status(deployment)
            if check(current):
                return current
        except Exception:  # not started yet
            pass
        await asyncio.sleep(0.05)
    raise AssertionError(f"{deployment}: condition not met")


async def test_clicks_are_bound_to_their_workspace_and_their_message(proven: Gateway) -> None:
    gw = proven
    x1 = await window(gw, "quality_regression", "1700000001.000100")
    q2 = await window(gw, "quality_regression", "1700000002.000100")

    # Another workspace: refused at the gateway, nothing sent.
    foreign = click(QA, "rollback_approve", x1, gw.response_url, "1700000001.000100")
    foreign["team"] = {"id": "T0OTHERWORKSPACE"}
    assert await post_click(gw, foreign) == 200
    [reply] = await replies(gw, 1)
    assert "another Slack workspace" in reply["text"]

    # q2's message, naming x1: refused by x1's rollback (its message is another).
    crossed = click(QA, "rollback_approve", x1, gw.response_url, "1700000002.000100")
    assert await post_click(gw, crossed) == 200
    answers = await replies(gw, 2)
    assert "another message than the open decision's" in answers[1]["text"]
    x1_now = await gw.status(x1)
    assert x1_now.decision is not None and x1_now.decision.votes == {}

    # A client talking to Temporal directly, claiming Slack without the gateway's signature.
    claim = DecisionInput(
        action="approve",
        person="qa-dri",
        via="slack",
        message="C0SPRINT1/1700000001.000100",
        made_at=datetime.now(UTC),
        request_id="not-slack",
    )
    refused = await operations.decide(gw.client, x1, claim)
    assert not refused.accepted and "unsigned" in refused.message

    # Slack end to end: the two seats of x1, on x1's message.
    for user in (QA, DRI):
        ok = click(user, "rollback_approve", x1, gw.response_url, "1700000001.000100")
        assert await post_click(gw, ok) == 200
    done = await until(gw, x1, lambda s: s.state == "following_up")
    # The gateway answers Slack at once and relays each click on its own: either may land first.
    assert sorted(done.decided_by) == ["dri-search", "qa-dri"]
    assert done.last_decision is not None
    assert done.last_decision.proven == {
        "qa-dri": f"Slack {QA} in {TEAM}",
        "dri-search": f"Slack {DRI} in {TEAM}",
    }
    await until(gw, q2, lambda s: s.state == "awaiting_decision")  # untouched
    for deployment in (x1, q2):
        await gw.client.get_workflow_handle(f"rollback-{deployment}").terminate("test over")


async def test_a_deny_from_slack_says_why(proven: Gateway) -> None:
    gw = proven
    gw.standins.treatment = 25  # a gate failure at 25 %: the Sprint DRI decides alone
    deployment = await window(gw, "gate_failure", "1700000003.000100")
    await click_with_reason(
        gw,
        click("U0DRIBACK", "rollback_deny", deployment, gw.response_url, "1700000003.000100"),
        "recall dip is within noise",
    )
    final = await until(gw, deployment, lambda s: s.state == "continued")
    assert final.last_decision is not None
    assert final.last_decision.reasons == {"dri-backend": "recall dip is within noise"}
    assert final.last_decision.proven == {"dri-backend": f"Slack U0DRIBACK in {TEAM}"}
    await gw.client.get_workflow_handle(f"rollback-{deployment}").terminate("test over")
