"""Slack's per-channel pace, shared among the activity workers of a task queue.

Slack's limit (about a message a second per channel) holds for the app, whichever worker
posts. Each worker paces its own posts (`activities.channel_pace`) and keeps `1/n` of the pace,
`n` being the distinct workers Temporal reports polling the task queue for activities: no
coordination store, and a worker that joins or leaves changes everyone's share within `EVERY`.
Between two looks a 429's `Retry-After` still holds the channel in the worker that met it.
"""

from __future__ import annotations

import asyncio
import logging

from temporalio.client import Client
from temporalio.service import RPCError

from activities.channel_pace import ChannelPace
from client.answers import workers

EVERY = 10.0
"""Seconds between two looks at who polls the task queue."""

log = logging.getLogger(__name__)


async def keep_channel_share(
    client: Client, task_queue: str, pace: ChannelPace, every: float = EVERY
) -> None:
    """Until cancelled: this worker's share of each channel's pace follows the number of
    activity workers polling `task_queue` (this one counted even before its first poll)."""
    while True:
        try:
            seen = await workers(client, task_queue, activities=True)
        except (RPCError, RuntimeError) as error:  # Temporal away: keep the share we had
            log.debug("who polls %r: not known now (%s)", task_queue, error)
        except Exception:  # never end silently: the share would freeze
            log.exception("who polls %r: unexpected failure; keeping the share", task_queue)
        else:
            count = max(1, seen.live)
            if count != pace.workers:
                log.info(
                    "%d activity worker(s) on %r: Slack's pace here is %.2f/s per channel",
                    count,
                    task_queue,
                    pace.rate / count,
                )
            pace.share(count)
        await asyncio.sleep(every)
