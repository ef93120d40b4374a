"""Issue 18: a worker rides out Temporal's absence and restart in the same process. Started
while the dev server is down, it waits for it (saying so) instead of exiting; when the server is
killed and started again on the same database, it polls again, and rollbacks go on. Before, a
worker that started while Temporal was unreachable exited ("cannot reach Temporal")."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from uuid import uuid4

import httpx
import pytest
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter

from client import operations
from contract.rollback import RollbackOptions, TriggerEvent
from runbook.policy import Policy
from simulator import SimulatorServer
from tests.activities.servers import free_port
from worker.binaries import temporal_cli
from workflows import search_attributes

pytestmark = pytest.mark.timeout(120)


@contextmanager
def dev_server(port: int, db: Path, log: Path) -> Iterator[subprocess.Popen[bytes]]:
    """The Temporal dev server on its own SQLite file, as `rollback up` runs it."""
    with log.open("ab") as out:
        process = subprocess.Popen(
            [
                temporal_cli(),
                "server",
                "start-dev",
                "--ip",
                "127.0.0.1",
                "--port",
                str(port),
                "--headless",
                "--db-filename",
                str(db),
                "--log-level",
                "error",
                *search_attributes.cli_flags(),
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        yield process
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=10)


async def connected(address: str, within: float = 30) -> Client:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while True:
        try:
            return await Client.connect(address, data_converter=pydantic_data_converter)
        except RuntimeError:
            assert loop.time() < deadline, f"Temporal at {address} never came up"
            await asyncio.sleep(0.2)


async def reverted(simulator: SimulatorServer, deployment: str, within: float = 30) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    async with httpx.AsyncClient(base_url=simulator.url) as http:
        while (await http.get(f"/lb/{deployment}/split")).json()["treatment"] != 0:
            assert loop.time() < deadline, f"{deployment} was not rolled back"
            await asyncio.sleep(0.1)


async def test_the_worker_waits_for_temporal_and_rides_out_a_restart(
    policy: Policy, simulator: SimulatorServer, redis_url: str, tmp_path: Path
) -> None:
    port = free_port()
    address = f"127.0.0.1:{port}"
    db, server_log, worker_log = tmp_path / "t.db", tmp_path / "t.log", tmp_path / "w.log"
    task_queue = f"it-{uuid4()}"
    first, second = (f"search-{uuid4().hex[:8]}" for _ in range(2))
    async with httpx.AsyncClient(base_url=simulator.url) as http:
        for deployment in (first, second):
            await http.post("/deployments", json={"name": deployment, "treatment": 25})
    env = {k: v for k, v in os.environ.items() if not k.startswith("ROLLBACK_")}
    env.update(
        ROLLBACK_TEMPORAL_ADDRESS=address,
        ROLLBACK_TASK_QUEUE=task_queue,
        ROLLBACK_TARGET_URL=simulator.url,
        ROLLBACK_REDIS_URL=redis_url,
        ROLLBACK_HTTP_TIMEOUT="1",
        ROLLBACK_OBSERVE_SCALE="0.02",
    )
    with worker_log.open("ab") as out:
        worker = subprocess.Popen(  # noqa: ASYNC220 (started once, killed in finally)
            [sys.executable, "-m", "cli.main", "worker"],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        # Temporal is not there yet: the worker waits for it, and says so.
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 20
        while "cannot reach Temporal" not in worker_log.read_text():
            assert worker.poll() is None, worker_log.read_text()[-2000:]
            assert loop.time() < deadline, worker_log.read_text()[-2000:]
            await asyncio.sleep(0.1)
        options = RollbackOptions(ui_metadata=True)

        async def roll_back(client: Client, deployment: str) -> None:
            await operations.send_trigger(
                client,
                task_queue=task_queue,
                policy=policy,
                deployment=deployment,
                event=TriggerEvent(trigger="error_rate", source="test"),
                options=options,
            )
            await reverted(simulator, deployment)

        with dev_server(port, db, server_log) as server:
            client = await connected(address)
            await roll_back(client, first)
            server.send_signal(signal.SIGKILL)  # Temporal dies under the running worker
            server.wait(timeout=10)
        await asyncio.sleep(2)  # the worker's polls fail meanwhile
        with dev_server(port, db, server_log):
            client = await connected(address)
            await roll_back(client, second)
            # The first rollback, in flight when Temporal died, goes on to its stability watch.
            for _ in range(600):
                kept = await operations.status(client, first)
                if kept.state == "following_up":
                    break
                await asyncio.sleep(0.1)
            assert kept.state == "following_up" and kept.trigger == "error_rate", kept.state
        assert worker.poll() is None, worker_log.read_text()[-2000:]  # the same process
    finally:
        worker.kill()
        worker.wait(timeout=10)
