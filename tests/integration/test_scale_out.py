"""Scale-out on one dev server: two `rollback worker` processes and two `rollback gateway`
processes; alerts for 20 deployments spread over both gateways; one worker killed with SIGKILL
mid-rollback. Every rollback completes, once: one run each, the split changed once each."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path
from uuid import uuid4

import httpx
import pytest
from temporalio.service import RPCError
from temporalio.testing import WorkflowEnvironment

from client import operations
from runbook.policy import Policy
from runbook.status import RollbackStatus
from simulator import SimulatorServer
from tests.activities.servers import free_port
from tests.integration.test_faults_live import QUICK_PHASE_1, worker_process
from tests.policies import edited
from tests.workflows.helpers import terminate_rollback

pytestmark = pytest.mark.timeout(150)

DEPLOYMENTS = 20
TOKEN = "scale-t0ken"


def gateway(env: dict[str, str], port: int, log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "cli.main", "gateway", "--port", str(port)],
            env={**env, "ROLLBACK_ALERTS_TOKEN": TOKEN},
            stdout=out,
            stderr=subprocess.STDOUT,
        )


def stop(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM, a bounded wait, then SIGKILL; reaped either way."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


async def status_of(env: WorkflowEnvironment, deployment: str) -> RollbackStatus:
    """The status, asked again when a query meets the killed worker (its sticky queue:
    "context canceled") or a busy server, within 30 s."""
    deadline = time.monotonic() + 30
    while True:
        try:
            return await operations.status(env.client, deployment, rpc_timeout=timedelta(seconds=5))
        except RPCError:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.2)


def alert(deployment: str) -> dict[str, object]:
    return {
        "version": "4",
        "status": "firing",
        "receiver": "rollback",
        "groupKey": f"{{}}:{{{deployment}}}",
        "alerts": [
            {
                "status": "firing",
                "labels": {"alertname": "E", "deployment": deployment, "trigger": "error_rate"},
                "annotations": {"summary": "errors"},
                "startsAt": "2026-12-01T00:00:00Z",
                "fingerprint": f"{deployment}-1",
            }
        ],
    }


async def test_two_workers_and_two_gateways_complete_every_rollback_once_through_a_kill(
    local_env: WorkflowEnvironment,
    policy: Policy,
    simulator: SimulatorServer,
    redis_url: str,
    tmp_path: Path,
) -> None:
    task_queue = f"scale-{uuid4()}"
    policy = edited(policy, QUICK_PHASE_1)
    policy_file = tmp_path / "policy.json"
    policy_file.write_text(policy.model_dump_json())
    names = [f"scale-{uuid4().hex[:6]}-{i}" for i in range(DEPLOYMENTS)]
    async with httpx.AsyncClient(base_url=simulator.url) as sim:
        for name in names:
            (
                await sim.post("/deployments", json={"name": name, "treatment": 25})
            ).raise_for_status()
        # Slow load balancer calls: rollbacks are still in flight when the worker dies.
        slow = {"api": "lb", "mode": "slow", "delay_seconds": 0.5, "count": 2 * DEPLOYMENTS}
        (await sim.post("/faults/api", json=slow)).raise_for_status()

    with (
        worker_process(local_env, simulator, redis_url, task_queue, tmp_path / "a.log") as a,
        worker_process(local_env, simulator, redis_url, task_queue, tmp_path / "b.log") as b,
    ):
        for w in (a, b):
            w.env = {**w.env, "ROLLBACK_POLICY": str(policy_file)}
            w.start()
        ports = [free_port(), free_port()]
        gateways: list[subprocess.Popen[bytes]] = []
        try:
            for port in ports:
                gateways.append(gateway(a.env, port, tmp_path / f"gw{port}.log"))
            async with httpx.AsyncClient(timeout=10) as http:
                for port in ports:
                    for _ in range(100):
                        try:
                            if (await http.get(f"http://127.0.0.1:{port}/livez")).is_success:
                                break
                        except httpx.HTTPError:
                            pass
                        await asyncio.sleep(0.1)
                headers = {"Authorization": f"Bearer {TOKEN}"}
                answers = await asyncio.gather(
                    *(
                        http.post(
                            f"http://127.0.0.1:{ports[i % 2]}/alerts/alertmanager",
                            json=alert(name),
                            headers=headers,
                        )
                        for i, name in enumerate(names)
                    )
                )
                assert [r.status_code for r in answers] == [200] * DEPLOYMENTS
                await asyncio.sleep(1.0)  # both workers busy with the first rollbacks
                a.kill()
                unfinished = [n for n in names if (await status_of(local_env, n)).outcome is None]
                assert unfinished, "every rollback ended before the kill: nothing was tested"
                deadline = time.monotonic() + 90
                done: dict[str, str] = {}
                while len(done) < DEPLOYMENTS and time.monotonic() < deadline:
                    for name in names:
                        if name in done:
                            continue
                        status = await status_of(local_env, name)
                        if status.outcome is not None:
                            done[name] = status.outcome
                    await asyncio.sleep(0.3)
            assert done == dict.fromkeys(names, "rolled back"), done
            ledger = (await httpx.AsyncClient().get(f"{simulator.url}/calls")).json()
            for name in names:
                applied = ledger["by_deployment"][name]
                assert applied.get("PUT /lb/{d}/split") == 1, (name, applied)
                runs = [
                    wf
                    async for wf in local_env.client.list_workflows(
                        f'WorkflowId = "rollback-{name}"'
                    )
                ]
                assert len(runs) == 1, (name, runs)
        finally:
            for g in gateways:
                stop(g)
            for name in names:
                await terminate_rollback(local_env.client, name)
