"""Issue 20's burst on the real servers: 10 rollbacks at once post to one channel whose limit the
Slack stand-in enforces (429 with `Retry-After` beyond it). The worker paces the channel, so
almost nothing is refused; every rollback's messages land once each, in the order it made them.
Before, each activity honoured Retry-After alone: 225 of 275 attempts were refused and a
rollback's "Emergency stop" landed after its completion summary."""

from __future__ import annotations

import asyncio
from collections import Counter, defaultdict
from collections.abc import Iterator
from uuid import uuid4

import httpx
import pytest
from temporalio.client import WorkflowExecutionStatus
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from activities.procedure import RollbackActivities
from client import operations
from contract.rollback import RollbackOptions, TriggerEvent
from runbook.policy import Policy
from simulator import SimulatorServer
from tests.activities.servers import settings_for
from tests.gateway.slack_standin import SlackServer, SlackStandIn
from tests.integration.test_faults_live import QUICK_PHASE_1
from tests.policies import edited
from tests.workflows.helpers import terminate_rollback
from workflows.registry import WORKFLOWS

pytestmark = pytest.mark.timeout(150)

ROLLBACKS = 10
RATE = 4.0
"""Slack's limit in the stand-in, per channel (Slack's own is about 1/s: the test runs faster)."""
BURST = 3


@pytest.fixture
def slack() -> Iterator[SlackServer]:
    with SlackServer(SlackStandIn(per_channel=RATE, burst=BURST)) as server:
        yield server


async def test_ten_rollbacks_at_once_keep_the_channels_pace_and_each_ones_order(
    local_env: WorkflowEnvironment,
    policy: Policy,
    simulator: SimulatorServer,
    redis_url: str,
    slack: SlackServer,
) -> None:
    quick = edited(policy, {**QUICK_PHASE_1, "decisions.after_rollback_watch": "1s"})
    acts = RollbackActivities(
        settings_for(
            simulator.url,
            redis_url,
            slack_bot_token="xoxb-test",
            slack_api_url=f"{slack.url}/api",
            slack_rate=RATE * 0.9,  # a little below the limit, as by default
            slack_burst=BURST,
        )
    )
    task_queue = f"pace-{uuid4()}"
    deployments = [f"pace{n}-{uuid4().hex[:6]}" for n in range(ROLLBACKS)]
    async with httpx.AsyncClient(base_url=simulator.url) as http:
        for name in deployments:
            (
                await http.post("/deployments", json={"name": name, "treatment": 25})
            ).raise_for_status()
    client = local_env.client
    try:
        async with Worker(
            client, task_queue=task_queue, workflows=WORKFLOWS, activities=acts.activities()
        ):
            try:
                await asyncio.gather(
                    *(
                        operations.send_trigger(
                            client,
                            task_queue=task_queue,
                            policy=quick,
                            deployment=name,
                            event=TriggerEvent(trigger="error_rate", source="test"),
                            options=RollbackOptions(ui_metadata=True),
                        )
                        for name in deployments
                    )
                )
                for name in deployments:  # every run ends: its messages all settled
                    handle = client.get_workflow_handle(f"rollback-{name}")
                    async with asyncio.timeout(120):
                        await handle.result()
                    assert (await handle.describe()).status == WorkflowExecutionStatus.COMPLETED
                states = [(await operations.status(client, n)).state for n in deployments]
                assert states == ["rolled_back"] * ROLLBACKS
                timelines = {n: (await operations.status(client, n)).timeline for n in deployments}
            finally:  # with the worker still there to answer the status its ending reads
                for name in deployments:
                    await terminate_rollback(client, name)
    finally:
        await acts.aclose()

    posts = [c for c in slack.standin.calls if c.method == "chat.postMessage"]
    refused = [c for c in posts if c.error == "ratelimited"]
    landed = [c for c in posts if c.error is None]
    # No message failed for good, and none was refused more than a few times over the burst.
    assert not [e for t in timelines.values() for e in t if e.kind == "message_failed"]
    assert len(refused) <= max(3, len(landed) // 10), (len(refused), len(landed))

    # Within any second, a channel took no more than its rate plus the burst.
    by_channel: dict[str, list[float]] = defaultdict(list)
    for call in landed:
        by_channel[str(call.body["channel"])].append(call.at)
    for times in by_channel.values():
        times.sort()
        for i, start in enumerate(times):
            within = sum(1 for t in times[i:] if t - start < 1.0)
            assert within <= RATE + BURST, (within, times)

    # Each rollback's messages landed once each, in the order it made them (its timeline's
    # order of steps: the stop is announced before the steps after it and the summary last).
    texts = [str(c.body.get("text", "")) for c in landed]
    twice = [t for t, n in Counter(texts).items() if n > 1]
    assert not twice, twice
    for name in deployments:
        mine = [t for t in texts if name in t]
        assert len(mine) >= 3, mine
        stop = next(i for i, t in enumerate(mine) if "Emergency stop" in t)
        done = [i for i, t in enumerate(mine) if "rolled back" in t.lower()]
        assert done and stop < min(done), mine
        assert mine.index(mine[-1]) == len(mine) - 1
