"""The worker: the rollback workflow and every activity on one task queue."""

from __future__ import annotations

import asyncio
import compileall
import logging
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from typing import Any

from temporalio.client import Client
from temporalio.worker import (
    PollerBehaviorSimpleMaximum,
    UnsandboxedWorkflowRunner,
    Worker,
    WorkflowRunner,
)
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner

from activities.channel_pace import ChannelPace
from activities.procedure import RollbackActivities
from activities.watch_raise import WatchActivities
from config.settings import Settings
from worker.channel_share import keep_channel_share
from workflows.registry import WORKFLOWS

log = logging.getLogger(__name__)


def build_worker(
    client: Client, settings: Settings, activities: RollbackActivities | None
) -> Worker:
    """A worker that, if it is killed, holds its rollbacks' workflow tasks for seconds only:
    the sticky queue's schedule-to-start timeout (10 s by default) is how long Temporal waits
    for a dead worker before another one takes over the workflow.

    `settings.worker_role`: `all` (workflows and activities), or one of them, so that the
    workflows' CPU-bound tasks and the activities' I/O each have a process (a GIL) of their own.
    """
    role = settings.worker_role
    acts: list[Callable[..., Any]] = []
    if activities is not None:
        acts = [*activities.activities(), *WatchActivities(client).activities()]
    return Worker(
        client,
        task_queue=settings.task_queue,
        workflows=WORKFLOWS if role in ("all", "workflows") else [],
        activities=acts,
        workflow_runner=workflow_runner(settings),
        sticky_queue_schedule_to_start_timeout=timedelta(seconds=settings.sticky_timeout),
        # New rollbacks first: the SDK gives new workflows' first tasks (the normal queue)
        # only a fifth of the pollers by default, so in a storm the running rollbacks' later
        # steps (the sticky queue) would keep new emergency stops waiting for seconds.
        workflow_task_poller_behavior=PollerBehaviorSimpleMaximum(maximum=10),
        nonsticky_to_sticky_poll_ratio=1.0,
        activity_task_poller_behavior=PollerBehaviorSimpleMaximum(maximum=10),
        # Workflow tasks are pure CPU under one GIL: a few threads run them one after the
        # other, each fast, instead of hundreds that slow each other (and the activities'
        # event loop) down. The SDK's default is a thread per concurrent task, up to 500.
        workflow_task_executor=ThreadPoolExecutor(
            max_workers=settings.workflow_threads, thread_name_prefix="workflow-task"
        ),
    )


def workflow_runner(settings: Settings) -> WorkflowRunner:
    """The sandbox holds workflow code to determinism where it is written and tested (every
    test worker and the replay tests run it); a running worker skips its cost unless told
    (`ROLLBACK_WORKFLOW_SANDBOX`). Unsandboxed, the workflow modules are shared by every run:
    `tests/workflows/test_module_state.py` keeps them free of anything a run could change."""
    if settings.workflow_sandbox:
        return SandboxedWorkflowRunner()
    return UnsandboxedWorkflowRunner()


def precompile_workflows() -> None:
    """The workflow sandbox imports each workflow's module afresh for every new run. Without
    a bytecode cache (PYTHONDONTWRITEBYTECODE, a fresh checkout) that is a compile of the
    module's source per new rollback: most of a new workflow's first task in a storm. Write the
    cache once here; a read-only install keeps working, only slower."""
    import workflows

    for folder in workflows.__path__:
        compileall.compile_dir(folder, quiet=2, maxlevels=0)


RETRY_FIRST = 0.5
RETRY_MAX = 10.0
"""Seconds between attempts to reach Temporal: doubling from the first, up to the most."""


def unreachable(error: BaseException) -> bool:
    """Temporal could not be reached (down, restarting, not yet up): wait for it, never exit.
    The SDK says so with a RuntimeError at connect, or at the worker's first call."""
    text = str(error)
    return isinstance(error, RuntimeError) and (
        text.startswith("Failed client connect") or text.startswith("Worker validation failed")
    )


async def reach(connect: Callable[[], Awaitable[Client]], settings: Settings) -> Client:
    """Connect, waiting (with backoff, a log line each time) for as long as Temporal is away."""
    delay = RETRY_FIRST
    while True:
        try:
            return await connect()
        except RuntimeError as error:
            if not unreachable(error):
                raise
            log.warning(
                "cannot reach Temporal at %s (namespace %s): %s; retrying in %.1f s",
                settings.temporal_address,
                settings.temporal_namespace,
                _short(error),
                delay,
            )
            await asyncio.sleep(delay)
            delay = min(delay * 2, RETRY_MAX)


async def run_worker(connect: Callable[[], Awaitable[Client]], settings: Settings) -> None:
    """The worker until it is stopped. Temporal away at the start, or gone and back while it
    runs (a restart, an upgrade of the server), never ends it: it waits, says so, and polls
    again in the same process (running rollbacks go on where they stood)."""
    # One log line per HTTP call to a target is noise in a storm (and costs the worker).
    logging.getLogger("httpx").setLevel(logging.WARNING)
    if settings.worker_role != "activities" and settings.workflow_sandbox:
        precompile_workflows()
    activities = RollbackActivities(settings) if settings.worker_role != "workflows" else None
    sharing: asyncio.Task[None] | None = None
    try:
        client = await reach(connect, settings)
        pace = getattr(activities.notifier, "pace", None) if activities is not None else None
        if isinstance(pace, ChannelPace):
            sharing = asyncio.create_task(keep_channel_share(client, settings.task_queue, pace))
        delay = RETRY_FIRST
        while True:
            worker = build_worker(client, settings, activities)
            log.info(
                "worker (%s) on task queue %r at %s",
                settings.worker_role,
                settings.task_queue,
                settings.temporal_address,
            )
            try:
                await worker.run()
                return
            except RuntimeError as error:
                if not unreachable(error):
                    raise
                log.warning(
                    "Temporal at %s went away (%s): polling again in %.1f s",
                    settings.temporal_address,
                    _short(error),
                    delay,
                )
                await asyncio.sleep(delay)
                delay = min(delay * 2, RETRY_MAX)
    finally:
        if sharing is not None:
            sharing.cancel()
        if activities is not None:
            await activities.aclose()


def _short(error: BaseException) -> str:
    """The SDK's message without the transport's nested detail."""
    text = str(error)
    for cut in (": Status {", ": Server connection error", ": tonic"):
        if cut in text:
            text = text.split(cut, 1)[0]
    return text.replace("Failed client connect", "connection refused or unreachable")
