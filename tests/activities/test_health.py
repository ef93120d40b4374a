"""Step 3 and the baseline check: criteria polled until they hold or their deadline passes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from temporalio.exceptions import ApplicationError

from activities.models import BaselineCheckInput, EmergencyStopInput, HealthValidationInput
from activities.procedure import RollbackActivities
from runbook.policy import HealthCriterion, Policy
from simulator import SimulatorServer
from tests.activities.helpers import ctx, deploy, sim_delete, sim_post
from tests.activities.servers import activity_env

pytestmark = pytest.mark.timeout(30)


def criterion(**fields: object) -> HealthCriterion:
    values: dict[str, object] = {
        "id": "error_rate",
        "name": "Error rate below 0.1%",
        "metric": "error_rate",
        "comparison": "<",
        "value": 0.001,
        "within": timedelta(seconds=1),
        **fields,
    }
    return HealthCriterion.model_validate(values)


async def test_a_recovering_target_passes_every_criterion(
    acts: RollbackActivities, simulator: SimulatorServer, policy: Policy
) -> None:
    deployment = await deploy(simulator, 25, treatment_error_rate=0.05, shard_cpu=0.97)
    await acts.emergency_stop(EmergencyStopInput(ctx=ctx(deployment)))
    beats: list[object] = []
    env = activity_env()
    env.on_heartbeat = beats.append

    result = await env.run(
        acts.health_validation,
        HealthValidationInput(
            ctx=ctx(deployment), criteria=policy.health_criteria, reverted_at=datetime.now(UTC)
        ),
    )

    assert result.healthy, result.summary
    assert result.summary.startswith("all 5 health criteria held: ")
    assert {c.id: c.passed for c in result.checks} == dict.fromkeys(
        ["error_rate", "p99_latency", "cpu", "memory", "baseline_traffic"], True
    )
    assert beats, "a poll that waits must heartbeat"


async def test_a_criterion_that_never_holds_fails_with_its_last_value(
    acts: RollbackActivities, simulator: SimulatorServer
) -> None:
    deployment = await deploy(simulator, 0)
    impossible = criterion(value=0.0001, name="Error rate below 0.01%")
    result = await activity_env().run(
        acts.health_validation,
        HealthValidationInput(
            ctx=ctx(deployment), criteria=[impossible], reverted_at=datetime.now(UTC)
        ),
    )
    assert not result.healthy
    assert result.summary == (
        "1 of 1 health criteria failed: Error rate below 0.01%: failed, last 0.0005 "
        "(needs < 0.0001; not met within 1s of the traffic reversion)"
    )
    assert result.checks[0].value == pytest.approx(0.0005)


async def test_relative_criteria_compare_with_the_baseline(
    acts: RollbackActivities, simulator: SimulatorServer
) -> None:
    deployment = await deploy(simulator, 100, treatment_p99_latency_seconds=0.41)
    p99 = criterion(
        id="p99_latency",
        name="p99 latency back at baseline",
        metric="p99_latency_seconds",
        comparison="<=",
        value=1.05,
        relative_to_baseline=True,
    )
    result = await activity_env().run(
        acts.health_validation,
        HealthValidationInput(ctx=ctx(deployment), criteria=[p99], reverted_at=datetime.now(UTC)),
    )
    assert not result.healthy
    assert "p99 latency back at baseline: failed, last 0.41 (needs <= 1.05× baseline 0.18; " in (
        result.summary
    )
    assert "2.28× baseline" in result.summary


async def test_polling_stops_before_the_step_budget_ends(
    acts: RollbackActivities, simulator: SimulatorServer
) -> None:
    deployment = await deploy(simulator, 0)
    patient = criterion(value=0.0001, within=timedelta(minutes=5))
    started = datetime.now(UTC)
    result = await activity_env(seconds=2.5).run(
        acts.health_validation,
        HealthValidationInput(ctx=ctx(deployment), criteria=[patient], reverted_at=started),
    )
    assert not result.healthy
    assert "not met before the end of the step's budget" in result.summary
    assert datetime.now(UTC) - started < timedelta(seconds=2.5)


async def test_metrics_that_stay_unreachable_are_an_error_not_a_verdict(
    acts: RollbackActivities, simulator: SimulatorServer
) -> None:
    deployment = await deploy(simulator, 0)
    await sim_post(
        simulator,
        "/faults/api",
        {"api": "metrics", "mode": "fail", "count": -1, "deployment": deployment},
    )
    try:
        with pytest.raises(ApplicationError) as caught:
            await activity_env().run(
                acts.health_validation,
                HealthValidationInput(
                    ctx=ctx(deployment), criteria=[criterion()], reverted_at=datetime.now(UTC)
                ),
            )
    finally:
        await sim_delete(simulator, "/faults/api")
    assert caught.value.type == "TargetUnavailable"
    assert f"/metrics/{deployment} answered 503" in caught.value.message


async def test_a_metrics_hiccup_is_polled_through(
    acts: RollbackActivities, simulator: SimulatorServer
) -> None:
    deployment = await deploy(simulator, 0)
    await sim_post(
        simulator,
        "/faults/api",
        {"api": "metrics", "mode": "fail", "count": 2, "deployment": deployment},
    )
    result = await activity_env().run(
        acts.health_validation,
        HealthValidationInput(
            ctx=ctx(deployment),
            criteria=[criterion(within=timedelta(seconds=5))],
            reverted_at=datetime.now(UTC),
        ),
    )
    assert result.healthy


async def test_baseline_check_reads_once(
    acts: RollbackActivities, simulator: SimulatorServer, policy: Policy
) -> None:
    healthy = await deploy(simulator, 0)
    hot = await deploy(simulator, 50, shard_cpu=0.9)
    ok = await acts.check_baseline(
        BaselineCheckInput(ctx=ctx(healthy), criteria=policy.health_criteria)
    )
    bad = await acts.check_baseline(
        BaselineCheckInput(ctx=ctx(hot), criteria=policy.health_criteria)
    )
    assert ok.healthy and ok.summary.startswith("all 5 baseline criteria held")
    assert not bad.healthy
    assert "CPU utilization normal: failed, last 0.9 (needs < 0.8)" in bad.summary
