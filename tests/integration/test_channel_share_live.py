"""Two activity workers on one task queue each keep half of Slack's pace per channel, by
Temporal's own account of who polls (a real dev server; no coordination store)."""

from __future__ import annotations

import asyncio
import contextlib
from uuid import uuid4

from temporalio import activity
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from activities.channel_pace import ChannelPace
from worker.channel_share import keep_channel_share


@activity.defn
async def nothing() -> None:
    """An activity to poll for: the worker is an activity worker."""


async def until(condition: object, seconds: float = 30.0) -> None:
    async with asyncio.timeout(seconds):
        while not condition():  # type: ignore[operator]
            await asyncio.sleep(0.05)


async def test_two_activity_workers_share_each_channels_pace(
    local_env: WorkflowEnvironment,
) -> None:
    task_queue = f"share-{uuid4()}"
    target = local_env.client.service_client.config.target_host
    namespace = local_env.client.namespace
    one, two = [
        await Client.connect(target, namespace=namespace, identity=f"worker-{n}@test")
        for n in (1, 2)
    ]
    pace = ChannelPace(rate=1.0, burst=3)
    sharing = asyncio.create_task(keep_channel_share(one, task_queue, pace, every=0.1))
    try:
        async with Worker(one, task_queue=task_queue, activities=[nothing]):
            await until(lambda: sharing.done() or pace.workers == 1)
            async with Worker(two, task_queue=task_queue, activities=[nothing]):
                # Seen once each of its pollers has polled (a busy machine: up to a minute).
                await until(lambda: sharing.done() or pace.workers == 2, 90)
                assert not sharing.done()
                assert (pace.own_rate, pace.own_burst) == (0.5, 1)
    finally:
        sharing.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await sharing
