"""The real parts: the Temporal dev server (`local_env`), the simulator, a redis-server, and a
worker running the real workflows with the real activities on a fresh task queue."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any
from uuid import uuid4

import httpx
import pytest
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from activities.notify import ConsoleNotifier
from activities.procedure import RollbackActivities
from client import operations
from contract.rollback import RollbackOptions, TriggerEvent
from runbook.policy import Policy
from runbook.status import RollbackStatus
from simulator import SimulatorServer
from tests.activities.servers import redis_url, settings_for
from tests.workflows.helpers import terminate_rollback
from workflows.registry import WORKFLOWS

__all__ = ["redis_url"]


@pytest.fixture(scope="module")
def simulator() -> Iterator[SimulatorServer]:
    with SimulatorServer(window_seconds=0.5) as server:
        yield server


@dataclass
class Rig:
    client: Client
    task_queue: str
    policy: Policy
    simulator: SimulatorServer
    notifier: ConsoleNotifier
    deployment: str

    async def trigger(self, trigger: str, phase: int | None = None) -> None:
        await operations.send_trigger(
            self.client,
            task_queue=self.task_queue,
            policy=self.policy,
            deployment=self.deployment,
            event=TriggerEvent(trigger=trigger, phase=phase, source="test"),
            options=RollbackOptions(ui_metadata=True),
        )

    async def until(
        self,
        check: Callable[[RollbackStatus], bool],
        timeout: float = 20.0,  # noqa: ASYNC109
    ) -> RollbackStatus:
        """Assert eventually, on the status query."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        current: RollbackStatus | None = None
        while True:
            try:
                current = await operations.status(self.client, self.deployment)
                if check(current):
                    return current
            except Exception:  # not started yet
                pass
            if loop.time() > deadline:
                raise AssertionError(f"condition not met in {timeout}s; last status: {current}")
            await asyncio.sleep(0.1)

    async def message(self, kind: str, timeout: float = 10.0) -> str:  # noqa: ASYNC109
        """The first message of `kind` the notifier sent (messages run beside the steps)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            for sent in self.notifier.sent:
                if sent.kind == kind:
                    return sent.text
            if loop.time() > deadline:
                raise AssertionError(f"no {kind} message in {timeout}s: {self.notifier.sent}")
            await asyncio.sleep(0.05)

    async def target(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        """A call to the simulator's own API (state, faults, call accounting)."""
        async with httpx.AsyncClient(base_url=self.simulator.url) as http:
            response = await http.request(method, path, json=body)
            response.raise_for_status()
            return response.json()

    async def applied_calls(self) -> dict[str, int]:
        """Mutating calls that took effect on this deployment, by route."""
        data = await self.target("GET", "/calls")
        counts: dict[str, int] = data["by_deployment"].get(self.deployment, {})
        return counts


@asynccontextmanager
async def running_rig(
    env: WorkflowEnvironment,
    policy: Policy,
    simulator: SimulatorServer,
    redis: str,
    treatment: int,
    settings: dict[str, Any] | None = None,
    **faults: float,
) -> AsyncIterator[Rig]:
    """`settings`: overrides of the activities' settings (a Slack stand-in's URL and token: the
    messages then go there, not to the console)."""
    notifier = ConsoleNotifier()
    overrides = settings or {}
    acts = RollbackActivities(
        settings_for(simulator.url, redis, **overrides),
        notifier=None if "slack_bot_token" in overrides else notifier,
    )
    task_queue = f"it-{uuid4()}"
    rig = Rig(env.client, task_queue, policy, simulator, notifier, f"search-{uuid4().hex[:8]}")
    await rig.target("POST", "/deployments", {"name": rig.deployment, "treatment": treatment})
    if faults:
        await rig.target("POST", f"/faults/{rig.deployment}", dict(faults))
    try:
        async with Worker(
            env.client, task_queue=task_queue, workflows=WORKFLOWS, activities=acts.activities()
        ):
            try:
                yield rig
            finally:
                await terminate_rollback(env.client, rig.deployment)
    finally:
        await rig.target("DELETE", "/faults/api")
        await acts.aclose()


@pytest.fixture
def make_rig(
    local_env: WorkflowEnvironment, policy: Policy, simulator: SimulatorServer, redis_url: str
) -> Callable[..., Any]:
    def make(
        treatment: int,
        policy_: Policy | None = None,
        settings: dict[str, Any] | None = None,
        **faults: float,
    ) -> Any:
        return running_rig(
            local_env, policy_ or policy, simulator, redis_url, treatment, settings, **faults
        )

    return make
