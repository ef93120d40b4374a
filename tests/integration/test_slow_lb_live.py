"""Issue 20's slow load balancer on the real servers, with Slack and PagerDuty stand-ins that
enforce their formats: while Step 1 is still failing nobody is told the canary was rolled back
(the audiences hear what is done and what is still being done); once the split is confirmed
they hear their own words; and the whole rollback is one PagerDuty incident, resolved when it
is done. Before: "canary rolled back … for not known yet" 21 s before the reversion, and three
incidents, none resolved for hours."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from temporalio.client import WorkflowExecutionStatus

from runbook.policy import Policy
from tests.activities.pagerduty_standin import PagerDutyServer, PagerDutyStandIn
from tests.gateway.slack_standin import SlackServer, SlackStandIn
from tests.integration.conftest import Rig
from tests.integration.test_faults_live import QUICK_PHASE_1
from tests.integration.test_run_end_live import eventually
from tests.policies import edited

pytestmark = pytest.mark.timeout(120)

KEY = "R0UT1NGKEY0123456789ABCDEFGHIJKL"
UNTRUE_YET = (
    "rolled back",
    "reversed the change",
    "working normally",
    "not yet utc",
    "not known yet",
)


@pytest.fixture
def slack() -> Iterator[SlackServer]:
    with SlackServer(SlackStandIn()) as server:
        yield server


@pytest.fixture
def pagerduty() -> Iterator[PagerDutyServer]:
    with PagerDutyServer(PagerDutyStandIn()) as server:
        yield server


async def test_a_stuck_load_balancer_is_never_announced_rolled_back_and_is_one_incident(
    policy: Policy,
    make_rig: Callable[..., Any],
    slack: SlackServer,
    pagerduty: PagerDutyServer,
) -> None:
    quick = edited(
        policy,
        {
            **QUICK_PHASE_1,
            "procedure.0.steps.2.budget": "3s",
            "decisions.after_rollback_watch": "1s",
            "people.sre-oncall.pagerduty_routing_key": KEY,
        },
    )
    settings = {
        "slack_bot_token": "xoxb-test",
        "slack_api_url": f"{slack.url}/api",
        "pagerduty_events_url": pagerduty.url,
    }
    async with make_rig(25, quick, settings) as r:
        rig: Rig = r
        lb = {"api": "lb", "mode": "fail", "status": 503, "count": -1}
        await rig.target("POST", "/faults/api", {**lb, "deployment": rig.deployment})
        await rig.trigger("error_rate")

        def step_done(step: str) -> Callable[[Any], bool]:
            return lambda s: any(x.id == step and x.ended_at for x in s.steps)

        await rig.until(step_done("stakeholder_notification"), 60)
        status = await rig.until(lambda s: s.state in ("investigating", "following_up"), 30)
        assert any(a.id.startswith("traffic") and not a.confirmed for a in status.actions)

        def posts() -> list[tuple[float, str]]:
            return [
                (c.at, str(c.body.get("text", "")))
                for c in slack.standin.calls
                if c.method == "chat.postMessage" and c.error is None
            ]

        told = {
            str(c.body["channel"])
            for c in slack.standin.calls
            if "rollback under way" in str(c.body.get("text", ""))
        }
        assert {"#sprint-1-channel", "#search-product"} <= told, posts()
        for _, text in posts():
            assert not any(u in text.lower() for u in UNTRUE_YET), text

        cleared = time.monotonic()
        await rig.target("DELETE", "/faults/api")
        handle = rig.client.get_workflow_handle(f"rollback-{rig.deployment}")
        final = await rig.until(lambda s: s.state == "rolled_back", 60)
        assert final.outcome == "rolled back"

        async def ended() -> bool:
            return (await handle.describe()).status != WorkflowExecutionStatus.RUNNING

        await eventually(ended, 30)
        rolled = [(at, text) for at, text in posts() if "canary rolled back" in text]
        assert len(rolled) == 1 and rolled[0][0] > cleared, rolled

        keys = {e["dedup_key"] for e in pagerduty.standin.events}
        assert len(keys) == 1, keys
        actions = pagerduty.standin.actions(keys.pop())
        assert actions[0] == "trigger" and actions[-1] == "resolve", actions
        assert not pagerduty.standin.refused
