"""Socket Mode envelopes reach the same handlers as HTTP requests."""

from __future__ import annotations

import asyncio
from uuid import uuid4

from slack_sdk.socket_mode.request import SocketModeRequest

from gateway.slack_handler import SlackHandler
from gateway.socket_mode import dispatch
from gateway.temporal_link import TemporalLink
from tests.gateway.conftest import Gateway
from tests.gateway.slack_standin import click


async def test_interactive_and_command_envelopes(gateway: Gateway) -> None:
    handler = SlackHandler(
        gateway.settings, gateway.policy, TemporalLink(gateway.settings, gateway.client)
    )
    deployment = f"search-{uuid4().hex[:6]}"
    command = SocketModeRequest(
        type="slash_commands",
        envelope_id="e1",
        payload={
            "command": "/rollback",
            "text": f"{deployment} odd shard traffic",
            "user_id": "U0DRIBACK",
            "response_url": gateway.response_url,
        },
    )
    handled = dispatch(handler, command)
    assert handled.ack is not None and deployment in handled.ack["text"]
    assert handled.later is not None
    await handled.later()
    for _ in range(100):
        try:
            if (await gateway.status(deployment)).state == "following_up":
                break
        except Exception:
            pass
        await asyncio.sleep(0.05)
    assert (await gateway.status(deployment)).decided_by == ["dri-backend"]

    stranger = SocketModeRequest(
        type="interactive",
        envelope_id="e2",
        payload=click("U0NOBODY1", "rollback_approve", deployment, gateway.response_url),
    )
    handled = dispatch(handler, stranger)
    assert handled.ack is None and handled.later is not None
    await handled.later()
    assert "not in the rollback roster" in gateway.slack.standin.responses[-1]["text"]

    odd = SocketModeRequest(type="events_api", envelope_id="e3", payload={})
    assert dispatch(handler, odd).later is None
    broken = SocketModeRequest(
        type="interactive", envelope_id="e4", payload={"type": "block_actions"}
    )
    assert dispatch(handler, broken).later is None
    await handler.http.aclose()
    await gateway.client.get_workflow_handle(f"rollback-{deployment}").terminate()
