"""Phase 1's actions against the simulator and a real Redis: each one reads first, acts once,
confirms by reading back, and answers a retry with "already"; failures say which target, which
call and what came back, retryable or not."""

from __future__ import annotations

import httpx
import pytest
import redis.asyncio as aioredis
from temporalio.exceptions import ApplicationError

from activities.models import ActionInput, ReadSplitInput
from activities.procedure import RollbackActivities
from activities.targets import Target
from activities.traffic import LoadBalancer
from runbook.actions import phase1_actions
from runbook.policy import Policy
from simulator import SimulatorServer
from tests.activities.helpers import calls_of, ctx, deploy, name, sim_get, sim_post


def inputs(policy: Policy, deployment: str) -> dict[str, ActionInput]:
    return {a.id: ActionInput(ctx=ctx(deployment), action=a) for a in phase1_actions(policy)}


async def run(acts: RollbackActivities, inp: ActionInput) -> object:
    method = getattr(acts.actions, inp.action.kind)
    return await method(inp)


async def test_reads_the_live_split(acts: RollbackActivities, simulator: SimulatorServer) -> None:
    deployment = await deploy(simulator, 10)
    split = await acts.read_traffic_split(ReadSplitInput(deployment=deployment))
    assert (split.treatment, split.control) == (10, 90)


async def test_every_action_acts_once_and_a_retry_changes_nothing(
    acts: RollbackActivities, simulator: SimulatorServer, redis_url: str, policy: Policy
) -> None:
    deployment = await deploy(simulator, 25)
    cache = aioredis.Redis.from_url(redis_url.rsplit("/", 1)[0] + "/1")
    other = aioredis.Redis.from_url(redis_url.rsplit("/", 1)[0] + "/2")
    await cache.mset({f"config:{i}": "v" for i in range(3)})
    await other.set("kept", "yes")
    actions = inputs(policy, deployment)
    assert list(actions) == [
        "traffic_split",
        "stop_service:hedging-service",
        "config:ta_nra_early_stop",
        "flag:hedging",
        "flag:ta_nra_optimization",
        "flush_cache",
    ]

    first = {i: await run(acts, inp) for i, inp in actions.items()}
    again = {i: await run(acts, inp) for i, inp in actions.items()}

    assert {i: r.outcome for i, r in first.items()} == dict.fromkeys(actions, "done")  # type: ignore[attr-defined]
    assert {i: r.outcome for i, r in again.items()} == dict.fromkeys(actions, "already")  # type: ignore[attr-defined]
    assert first["traffic_split"].detail == "read back treatment 0% / control 100%"  # type: ignore[attr-defined]
    flushed = first["flush_cache"]
    assert flushed.integrity is not None and flushed.integrity.result == "pass"  # type: ignore[attr-defined]
    assert await cache.dbsize() == 0 and await other.get("kept") == b"yes"
    await cache.aclose()
    await other.aclose()

    assert (await sim_get(simulator, f"/lb/{deployment}/split"))["treatment"] == 0
    assert (await sim_get(simulator, f"/services/{deployment}/hedging-service"))["status"] == (
        "stopped"
    )
    assert (await sim_get(simulator, f"/config/{deployment}"))["ta_nra_early_stop"] is False
    flags = (await sim_get(simulator, f"/flags/{deployment}"))["flags"]
    assert flags == {"hedging": False, "ta_nra_optimization": False}

    applied = [c for c in await calls_of(simulator, deployment) if c["outcome"] == "applied"]
    assert sorted(c["route"] for c in applied) == [
        "PATCH /config/{d}",
        "POST /services/{d}/hedging-service/stop",
        "PUT /flags/{d}/hedging",
        "PUT /flags/{d}/ta_nra_optimization",
        "PUT /lb/{d}/split",
    ]
    prefix = f"rollback-{deployment}/run-1"
    assert {c["idempotency_key"] for c in applied} == {
        f"{prefix}/emergency_stop/traffic_split",
        f"{prefix}/configuration_revert/stop_service:hedging-service",
        f"{prefix}/configuration_revert/config:ta_nra_early_stop",
        f"{prefix}/configuration_revert/flag:hedging",
        f"{prefix}/configuration_revert/flag:ta_nra_optimization",
    }


@pytest.mark.parametrize(
    ("status", "retryable"), [(503, True), (429, True), (401, False), (403, False), (404, False)]
)
async def test_a_failing_service_control_says_what_and_whether_to_retry(
    acts: RollbackActivities,
    simulator: SimulatorServer,
    policy: Policy,
    status: int,
    retryable: bool,
) -> None:
    deployment = await deploy(simulator, 25)
    await sim_post(
        simulator,
        "/faults/api",
        {"api": "services", "mode": "fail", "count": 1, "status": status, "deployment": deployment},
    )
    with pytest.raises(ApplicationError) as caught:
        await run(acts, inputs(policy, deployment)["stop_service:hedging-service"])
    assert caught.value.non_retryable is not retryable
    assert caught.value.message.startswith(
        f"service control GET {simulator.url}/services/{deployment}/hedging-service "
        f"answered {status}:"
    )


async def test_an_html_answer_is_malformed_and_not_retried() -> None:
    def proxy_page(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, text="<html>Bad gateway</html>")

    async with httpx.AsyncClient(transport=httpx.MockTransport(proxy_page)) as http:
        lb = LoadBalancer(Target(http, "load balancer", "http://lb.test"), "/lb/{deployment}/split")
        with pytest.raises(ApplicationError) as caught:
            await lb.revert("d1", key="k")
    assert caught.value.non_retryable
    assert "answered 200 with no JSON: <html>Bad gateway</html>" in caught.value.message


async def test_an_unknown_deployment_fails_fast_naming_the_call(
    acts: RollbackActivities, simulator: SimulatorServer, policy: Policy
) -> None:
    missing = name()
    with pytest.raises(ApplicationError) as caught:
        await run(acts, inputs(policy, missing)["traffic_split"])
    assert caught.value.non_retryable
    assert caught.value.message.startswith(
        f"load balancer GET {simulator.url}/lb/{missing}/split answered 404:"
    )


async def test_a_split_that_does_not_read_back_is_retried() -> None:
    def stubborn(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={"treatment": 25, "control": 75})

    async with httpx.AsyncClient(transport=httpx.MockTransport(stubborn)) as http:
        lb = LoadBalancer(Target(http, "load balancer", "http://lb.test"), "/lb/{deployment}/split")
        with pytest.raises(ApplicationError) as caught:
            await lb.revert("d1", key="k")
    assert caught.value.type == "NotConfirmed" and not caught.value.non_retryable
    assert "still reports treatment 25% / control 75% for d1" in caught.value.message
