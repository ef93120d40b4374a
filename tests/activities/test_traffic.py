"""Step 1 against the simulator's load balancer: revert, confirm, notify, once."""

from __future__ import annotations

import httpx
import pytest
from temporalio.exceptions import ApplicationError

from activities.models import EmergencyStopInput, ReadSplitInput
from activities.notify import ConsoleNotifier
from activities.procedure import RollbackActivities
from activities.targets import Target
from activities.traffic import LoadBalancer
from simulator import SimulatorServer
from tests.activities.helpers import calls_of, ctx, deploy, name, sim_get
from tests.activities.servers import settings_for


async def test_reads_the_live_split(acts: RollbackActivities, simulator: SimulatorServer) -> None:
    deployment = await deploy(simulator, 10)
    split = await acts.read_traffic_split(ReadSplitInput(deployment=deployment))
    assert (split.treatment, split.control) == (10, 90)


async def test_emergency_stop_reverts_confirms_and_notifies(
    acts: RollbackActivities, simulator: SimulatorServer, notifier: ConsoleNotifier
) -> None:
    deployment = await deploy(simulator, 25)
    result = await acts.emergency_stop(EmergencyStopInput(ctx=ctx(deployment)))

    assert (result.split.treatment, result.split.control) == (0, 100)
    assert result.confirmed and result.notified
    assert "traffic-split --treatment 0 --control 100" in result.summary
    assert (await sim_get(simulator, f"/lb/{deployment}/split"))["treatment"] == 0
    [message] = notifier.sent
    assert message.channel == "#sprint-1-channel"
    assert f"Emergency stop of {deployment}" in message.text


async def test_a_repeated_emergency_stop_changes_the_split_once(
    acts: RollbackActivities, simulator: SimulatorServer, notifier: ConsoleNotifier
) -> None:
    deployment = await deploy(simulator, 50)
    inp = EmergencyStopInput(ctx=ctx(deployment))
    await acts.emergency_stop(inp)
    await acts.emergency_stop(inp)  # a retry after a lost answer

    puts = [c for c in await calls_of(simulator, deployment) if c["method"] == "PUT"]
    assert [c["outcome"] for c in puts] == ["applied", "replayed"]
    assert {c["idempotency_key"] for c in puts} == {
        f"rollback-{deployment}/run-1/emergency_stop/set_split"
    }
    assert len(notifier.sent) == 1


async def test_an_unknown_deployment_fails_fast_naming_the_call(
    acts: RollbackActivities, simulator: SimulatorServer
) -> None:
    missing = name()
    with pytest.raises(ApplicationError) as caught:
        await acts.emergency_stop(EmergencyStopInput(ctx=ctx(missing)))
    assert caught.value.non_retryable
    assert caught.value.message.startswith(
        f"load balancer PUT {simulator.url}/lb/{missing}/split answered 404:"
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


async def test_a_failing_channel_does_not_undo_the_stop(
    simulator: SimulatorServer, redis_url: str
) -> None:
    class Broken(ConsoleNotifier):
        async def post(self, channel: str, text: str, *, key: str | None = None) -> str | None:
            raise RuntimeError("slack is down")

    acts = RollbackActivities(settings_for(simulator.url, redis_url), notifier=Broken())
    try:
        deployment = await deploy(simulator, 25)
        result = await acts.emergency_stop(EmergencyStopInput(ctx=ctx(deployment)))
    finally:
        await acts.aclose()
    assert result.confirmed and not result.notified
    assert "channel notification failed: slack is down" in result.summary
