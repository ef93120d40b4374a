"""Fixtures for the tests that run the embedded stack as a user would."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from uuid import uuid4

import pytest
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from runbook.loading import DEFAULT_POLICY
from tests.cli.stack_helpers import WINDOW_SECONDS, Up, free_ports
from tests.cli.test_cli_live import Live
from tests.conftest import ASSERTED_POLICY
from tests.workflows.standins import StandIns
from workflows.registry import WORKFLOWS


@pytest.fixture
def stack_env(tmp_path: Path) -> dict[str, str]:
    """Free ports, a home of its own, and a policy whose 25 % gate-failure window is short."""
    temporal, ui, redis, target, gateway = free_ports(5)
    policy = tmp_path / "policy.yaml"
    text = DEFAULT_POLICY.read_text()
    text = text.replace(
        "25: {mode: manual, window: 2m, default: rollback}",
        f"25: {{mode: manual, window: {WINDOW_SECONDS}s, default: rollback}}",
        1,
    )
    text = text.replace("  cli: signed\n", "  cli: asserted\n", 1)  # the tests act as anyone
    policy.write_text(text)
    env = {k: v for k, v in os.environ.items() if not k.startswith("ROLLBACK_")}
    env.update(
        ROLLBACK_HOME=str(tmp_path / "home"),
        ROLLBACK_POLICY=str(policy),
        ROLLBACK_TEMPORAL_ADDRESS=f"127.0.0.1:{temporal}",
        ROLLBACK_UI_URL=f"http://127.0.0.1:{ui}",
        ROLLBACK_REDIS_URL=f"redis://127.0.0.1:{redis}/0",
        ROLLBACK_TARGET_URL=f"http://127.0.0.1:{target}",
        ROLLBACK_GATEWAY_PORT=str(gateway),
        ROLLBACK_OBSERVE_SCALE="0.15",
    )
    return env


@pytest.fixture
def up(stack_env: dict[str, str]) -> Iterator[Up]:
    running = Up(stack_env)
    try:
        yield running
    finally:
        running.close()


@pytest.fixture
async def live(local_env: WorkflowEnvironment) -> AsyncIterator[Live]:
    """The real CLI against the dev server, with a worker of stand-in activities."""
    standins = StandIns(treatment=25)
    task_queue = f"tq-{uuid4()}"
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("ROLLBACK_")},
        "ROLLBACK_TEMPORAL_ADDRESS": local_env.client.service_client.config.target_host,
        "ROLLBACK_TASK_QUEUE": task_queue,
        "ROLLBACK_POLICY": str(ASSERTED_POLICY),
    }
    async with Worker(
        local_env.client,
        task_queue=task_queue,
        workflows=WORKFLOWS,
        activities=standins.activities(),
    ):
        yield Live(local_env.client, env, standins)
