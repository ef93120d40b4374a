"""Step 3 and the baseline check: criteria polled until they hold or their deadline passes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from activities.models import ActionInput, BaselineCheckInput, CheckResult, HealthValidationInput
from activities.procedure import RollbackActivities
from runbook.actions import phase1_actions
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
    split = phase1_actions(policy)[0]
    await acts.actions.set_traffic_split(ActionInput(ctx=ctx(deployment), action=split))
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
        "(needs < 0.0001; missed: not met within 1s of the traffic reversion)"
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


async def test_metrics_that_stay_unreachable_are_unreadable_never_healthy(
    acts: RollbackActivities, simulator: SimulatorServer
) -> None:
    deployment = await deploy(simulator, 0)
    await sim_post(
        simulator,
        "/faults/api",
        {"api": "metrics", "mode": "fail", "count": -1, "deployment": deployment},
    )
    started = datetime.now(UTC)
    try:
        result = await activity_env().run(
            acts.health_validation,
            HealthValidationInput(ctx=ctx(deployment), criteria=[criterion()], reverted_at=started),
        )
    finally:
        await sim_delete(simulator, "/faults/api")
    assert not result.healthy
    [check] = result.checks
    assert check.unreadable and not check.passed and check.value is None
    assert check.detail.startswith("unreadable: no reading within 1s of the traffic reversion; ")
    assert f"/metrics/{deployment} answered 503" in check.detail
    # Its own deadline, not the step's: retried for the criterion's whole second.
    assert datetime.now(UTC) - started >= timedelta(seconds=1)


async def test_each_criterion_has_its_own_deadline(
    acts: RollbackActivities, simulator: SimulatorServer
) -> None:
    """A quick criterion that holds is settled at once; a slow one that never holds is read
    until its own, later, deadline."""
    deployment = await deploy(simulator, 0)
    quick = criterion(id="quick", within=timedelta(seconds=5))
    slow = criterion(id="slow", value=0.0001, within=timedelta(seconds=1.5))
    result = await activity_env().run(
        acts.health_validation,
        HealthValidationInput(
            ctx=ctx(deployment), criteria=[quick, slow], reverted_at=datetime.now(UTC)
        ),
    )
    held, missed = result.checks
    assert held.passed and "held at " in held.detail
    assert not missed.passed and "missed: not met within 1.5s" in missed.detail.replace(
        "1500ms", "1.5s"
    )


async def test_a_retried_attempt_keeps_what_the_last_one_settled(
    acts: RollbackActivities, simulator: SimulatorServer
) -> None:
    """After a lost worker, criteria held before are not read again past their deadline."""
    deployment = await deploy(simulator, 25, treatment_error_rate=0.05)
    was_held = CheckResult(id="error_rate", name="Error rate below 0.1%", passed=True, value=0.0)
    env = activity_env()
    env.info = env.info.__class__(
        **{**env.info.__dict__, "heartbeat_details": [[was_held.model_dump(mode="json")]]}
    )
    result = await env.run(
        acts.health_validation,
        HealthValidationInput(
            ctx=ctx(deployment),
            criteria=[criterion(within=timedelta(milliseconds=10))],
            reverted_at=datetime.now(UTC) - timedelta(minutes=1),
        ),
    )
    assert result.healthy and result.checks[0].value == 0.0


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
