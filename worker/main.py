"""The worker: the rollback workflow and every activity on one task queue."""

from __future__ import annotations

import logging

from temporalio.client import Client
from temporalio.worker import Worker

from activities.procedure import RollbackActivities
from config.settings import Settings
from workflows.registry import WORKFLOWS

log = logging.getLogger(__name__)


def build_worker(client: Client, settings: Settings, activities: RollbackActivities) -> Worker:
    return Worker(
        client,
        task_queue=settings.task_queue,
        workflows=WORKFLOWS,
        activities=activities.activities(),
    )


async def run_worker(client: Client, settings: Settings) -> None:
    activities = RollbackActivities(settings)
    try:
        worker = build_worker(client, settings, activities)
        log.info("worker on task queue %r at %s", settings.task_queue, settings.temporal_address)
        await worker.run()
    finally:
        await activities.aclose()
