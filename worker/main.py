"""The worker: the rollback workflow and every activity on one task queue."""

from __future__ import annotations

import logging
from datetime import timedelta

from temporalio.client import Client
from temporalio.worker import Worker

from activities.procedure import RollbackActivities
from config.settings import Settings
from workflows.registry import WORKFLOWS

log = logging.getLogger(__name__)


def build_worker(client: Client, settings: Settings, activities: RollbackActivities) -> Worker:
    """A worker that, if it is killed, holds its rollbacks' workflow tasks for seconds only:
    the sticky queue's schedule-to-start timeout (10 s by default) is how long Temporal waits
    for a dead worker before another one takes over the workflow."""
    return Worker(
        client,
        task_queue=settings.task_queue,
        workflows=WORKFLOWS,
        activities=activities.activities(),
        sticky_queue_schedule_to_start_timeout=timedelta(seconds=settings.sticky_timeout),
    )


async def run_worker(client: Client, settings: Settings) -> None:
    activities = RollbackActivities(settings)
    try:
        worker = build_worker(client, settings, activities)
        log.info("worker on task queue %r at %s", settings.task_queue, settings.temporal_address)
        await worker.run()
    finally:
        await activities.aclose()
