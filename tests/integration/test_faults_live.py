"""Issue 9's findings on the real servers: the dev server, the simulator, a real Redis, and
(where a worker is killed) a worker process of its own. The simulator's call ledger shows that
every change took effect exactly once."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from uuid import uuid4

import pytest
import redis.asyncio as aioredis
from temporalio.testing import WorkflowEnvironment

from runbook.policy import Policy
from runbook.status import RollbackStatus
from simulator import SimulatorServer
from tests.activities.servers import free_port, running_redis
from tests.integration.conftest import Rig, running_rig
from tests.policies import edited

pytestmark = pytest.mark.timeout(90)

QUICK_PHASE_1 = {"procedure.0.steps.0.budget": "4s", "procedure.0.steps.1.budget": "4s"}
"""Budgets of 4 s: heartbeats of 1 s, so a killed worker is noticed within a second."""
MUTATIONS = {
    "PUT /lb/{d}/split": 1,
    "POST /services/{d}/hedging-service/stop": 1,
    "PATCH /config/{d}": 1,
    "PUT /flags/{d}/hedging": 1,
    "PUT /flags/{d}/ta_nra_optimization": 1,
}


def escalations(status: RollbackStatus) -> list[str]:
    return [e.message for e in status.timeline if e.kind == "escalation"]


def states(status: RollbackStatus) -> dict[str, str]:
    return {a.id: a.state for a in status.actions}


class WorkerProcess:
    """`rollback worker` as an SRE runs it: a process that can be killed with SIGKILL."""

    def __init__(self, env: dict[str, str], log: Path) -> None:
        self.env = env
        self.log = log
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "cli.main", "worker"],
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)


@contextmanager
def worker_process(
    env: WorkflowEnvironment, simulator: SimulatorServer, redis: str, task_queue: str, log: Path
) -> Iterator[WorkerProcess]:
    address = env.client.service_client.config.target_host
    settings = {
        "ROLLBACK_TEMPORAL_ADDRESS": address,
        "ROLLBACK_TASK_QUEUE": task_queue,
        "ROLLBACK_TARGET_URL": simulator.url,
        "ROLLBACK_REDIS_URL": redis,
        "ROLLBACK_HTTP_TIMEOUT": "1",
        "ROLLBACK_HEALTH_POLL_INTERVAL": "0.1",
        "ROLLBACK_OBSERVE_SCALE": "0.02",
    }
    clean = {k: v for k, v in os.environ.items() if not k.startswith("ROLLBACK_")}
    worker = WorkerProcess({**clean, **settings}, log)
    try:
        yield worker
    finally:
        worker.stop()


async def wait_for(check: Callable[[], Any], timeout: float = 20) -> Any:  # noqa: ASYNC109
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        value = await check()
        if value:
            return value
        assert loop.time() < deadline, "condition not met"
        await asyncio.sleep(0.05)


async def test_a_worker_killed_inside_step_1_and_step_2_loses_nothing(
    local_env: WorkflowEnvironment,
    policy: Policy,
    simulator: SimulatorServer,
    redis_url: str,
    tmp_path: Path,
) -> None:
    """SIGKILL while the split's PUT is in flight, and again while Step 2's four calls are: each
    action is retried within seconds by the next worker, and each change happens once."""
    task_queue = f"kill-{uuid4()}"
    policy = edited(policy, QUICK_PHASE_1)
    rig = Rig(local_env.client, task_queue, policy, simulator, None, f"search-{uuid4().hex[:8]}")  # type: ignore[arg-type]
    d = rig.deployment
    await rig.target("POST", "/deployments", {"name": d, "treatment": 25})
    slow = {"mode": "slow", "delay_seconds": 0.8, "deployment": d}
    # The phase read and the action's read-first, then the PUT: slow, so the worker dies mid-call.
    await rig.target("POST", "/faults/api", {**slow, "api": "lb", "count": 3})

    async def inflight(*calls: str) -> bool:
        """Each of `calls` ("PUT lb") is being served for this deployment right now."""
        now = (await rig.target("GET", "/calls/inflight"))["inflight"]
        serving = {f"{c['method']} {c['api']}" for c in now if c["deployment"] == d}
        return set(calls) <= serving

    with worker_process(local_env, simulator, redis_url, task_queue, tmp_path / "w.log") as worker:
        worker.start()
        await rig.trigger("error_rate")
        await wait_for(lambda: inflight("PUT lb"))
        worker.kill()  # while the split's PUT is on its way
        for api, count in (("services", 2), ("config", 2), ("flags", 4)):
            await rig.target("POST", "/faults/api", {**slow, "api": api, "count": count})
        worker.start()
        await wait_for(lambda: inflight("POST services", "PATCH config", "PUT flags"))
        worker.kill()  # while Step 2's four changes are on their way
        worker.start()
        status = await rig.until(lambda s: s.outcome == "rolled back", timeout=40)

    assert set(states(status).values()) == {"confirmed"}
    assert await rig.applied_calls() == MUTATIONS  # every change took effect once
    ledger = [c for c in (await rig.target("GET", "/calls"))["calls"] if c["deployment"] == d]
    replayed = [c for c in ledger if c["outcome"] == "replayed"]
    assert replayed == []  # each retry read first and found the change done: nothing to send
    revert = next(s for s in status.steps if s.id == "configuration_revert")
    assert revert.ended_at is not None
    # Noticed within seconds (heartbeats, a short sticky timeout), not when a budget ran out
    # with no retry left; the worker process takes about 2 s to start.
    assert (revert.ended_at - revert.started_at).total_seconds() < 10


@pytest.mark.parametrize(
    ("fault", "why"),
    [
        ({"mode": "fail", "status": 404}, "answered 404"),
        ({"mode": "fail", "status": 401}, "answered 401"),
        ({"mode": "html"}, "answered 200 with no JSON: <html>"),
    ],
)
async def test_service_control_refusing_stops_only_its_own_action(
    make_rig: Callable[..., Any], fault: dict[str, Any], why: str
) -> None:
    async with make_rig(25) as rig:
        d = rig.deployment
        await rig.target(
            "POST", "/faults/api", {**fault, "api": "services", "count": -1, "deployment": d}
        )
        await rig.trigger("error_rate")
        status = await rig.until(lambda s: s.state == "following_up", timeout=40)

    assert status.outcome == "incomplete"
    assert states(status)["stop_service:hedging-service"] == "refused"
    assert [a for a, s in states(status).items() if s != "confirmed"] == [
        "stop_service:hedging-service"
    ]
    assert why in status.outcome_detail
    assert f"service control GET {rig.simulator.url}/services/{d}/hedging-service" in (
        status.outcome_detail
    )
    applied = await rig.applied_calls()
    assert "POST /services/{d}/hedging-service/stop" not in applied
    assert {k: v for k, v in MUTATIONS.items() if "services" not in k} == applied
    [escalated] = [e for e in escalations(status) if "refused by the target" in e]
    assert "`systemctl stop hedging-service` refused by the target" in escalated


async def test_service_control_failing_for_a_while_is_retried_until_confirmed(
    make_rig: Callable[..., Any],
) -> None:
    async with make_rig(25) as rig:
        d = rig.deployment
        await rig.target(
            "POST",
            "/faults/api",
            {"api": "services", "mode": "fail", "status": 503, "count": 2, "deployment": d},
        )
        await rig.trigger("error_rate")
        status = await rig.until(lambda s: s.state == "following_up", timeout=40)
    assert status.outcome == "rolled back"
    assert await rig.applied_calls() == MUTATIONS


async def test_redis_down_during_step_2_is_retried_when_it_comes_back(
    local_env: WorkflowEnvironment, policy: Policy, simulator: SimulatorServer, tmp_path: Path
) -> None:
    port = free_port()
    with running_redis(tmp_path / "r1", port=port) as url:
        cache = aioredis.Redis.from_url(url.rsplit("/", 1)[0] + "/1")
        await cache.set("config:x", "1")
        await cache.aclose()
    # Redis is down when the rollback starts.
    async with running_rig(local_env, edited(policy, QUICK_PHASE_1), simulator, url, 25) as rig:
        await rig.trigger("error_rate")
        waiting = await rig.until(
            lambda s: (
                any(a.id == "flush_cache" and a.state in ("running", "retrying") for a in s.actions)
                and "health_validation" in [x.id for x in s.steps]
            ),
            timeout=40,
        )
        assert states(waiting)["flush_cache"] != "confirmed"
        with running_redis(tmp_path / "r2", port=port):
            status = await rig.until(lambda s: s.outcome == "rolled back", timeout=30)
    assert states(status)["flush_cache"] == "confirmed"
    assert status.outcome == "rolled back"
    assert "Redis" in escalations(status)[0] and "unreachable" in escalations(status)[0]


async def test_metrics_down_leaves_criteria_unreadable_and_stakeholders_still_told(
    make_rig: Callable[..., Any], policy: Policy
) -> None:
    quick = edited(
        policy,
        {f"health_criteria.{i}.within": "1s" for i in range(len(policy.health_criteria))},
    )
    async with make_rig(25, quick) as rig:
        d = rig.deployment
        await rig.target(
            "POST", "/faults/api", {"api": "metrics", "mode": "fail", "count": -1, "deployment": d}
        )
        await rig.trigger("error_rate")
        status = await rig.until(
            lambda s: any(x.id == "stakeholder_notification" and x.ended_at for x in s.steps),
            timeout=40,
        )
        told = [
            m
            for m in rig.notifier.sent
            if m.channel == "#sprint-1-channel" and m.text.startswith(f"*Rollback of {d}*")
        ]

    health = next(s for s in status.steps if s.id == "health_validation")
    assert health.outcome == "failed" and "unreadable: no reading within 1s" in health.summary
    notify = next(s for s in status.steps if s.id == "stakeholder_notification")
    assert notify.outcome == "ok", notify.summary
    assert "first_notification" in status.instants
    assert told and "figures unavailable" in told[0].text
    assert states(status) == dict.fromkeys(states(status), "confirmed")  # Phase 1 acted
