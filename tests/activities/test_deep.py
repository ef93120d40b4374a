"""Step 4: smoke tests against the search endpoint, quality and an observation period."""

from __future__ import annotations

import pytest

from activities.models import DeepValidationInput
from activities.procedure import RollbackActivities
from runbook.policy import Policy
from simulator import SimulatorServer
from tests.activities.helpers import ctx, deploy, sim_delete, sim_post
from tests.activities.servers import activity_env

pytestmark = pytest.mark.timeout(30)


async def test_a_healthy_deployment_passes_smoke_tests_and_quality(
    acts: RollbackActivities, simulator: SimulatorServer, policy: Policy
) -> None:
    deployment = await deploy(simulator, 0)
    result = await activity_env().run(
        acts.deep_health_validation,
        DeepValidationInput(ctx=ctx(deployment), validation=policy.deep_validation),
    )
    assert result.healthy, result.summary
    assert [c.id for c in result.checks][:4] == [
        "search_basic",
        "search_unicode",
        "ndcg_at_10",
        "sla_recall_at_50",
    ]
    assert "(observed 0.6 s)" in result.summary  # 30 s x ROLLBACK_OBSERVE_SCALE 0.02


async def test_a_search_that_fails_once_is_retried(
    acts: RollbackActivities, simulator: SimulatorServer, policy: Policy
) -> None:
    deployment = await deploy(simulator, 0)
    await sim_post(
        simulator,
        "/faults/api",
        {"api": "search", "mode": "fail", "count": 1, "deployment": deployment},
    )
    result = await activity_env().run(
        acts.deep_health_validation,
        DeepValidationInput(ctx=ctx(deployment), validation=policy.deep_validation, criteria=[]),
    )
    assert result.healthy
    assert "on try 2" in result.checks[0].detail


async def test_a_search_that_keeps_failing_fails_the_step(
    acts: RollbackActivities, simulator: SimulatorServer, policy: Policy
) -> None:
    deployment = await deploy(simulator, 0)
    await sim_post(
        simulator,
        "/faults/api",
        {"api": "search", "mode": "fail", "count": -1, "deployment": deployment},
    )
    try:
        result = await activity_env().run(
            acts.deep_health_validation,
            DeepValidationInput(
                ctx=ctx(deployment), validation=policy.deep_validation, criteria=[]
            ),
        )
    finally:
        await sim_delete(simulator, "/faults/api")
    assert not result.healthy
    assert result.summary.startswith("2 of 4 checks failed: Search answers a simple query: failed")
    assert "answered 503" in result.checks[0].detail and "(3 tries)" in result.checks[0].detail


async def test_quality_below_its_range_fails(
    acts: RollbackActivities, simulator: SimulatorServer, policy: Policy
) -> None:
    deployment = await deploy(simulator, 100, treatment_ndcg_at_10=0.50)
    result = await activity_env().run(
        acts.deep_health_validation,
        DeepValidationInput(ctx=ctx(deployment), validation=policy.deep_validation, criteria=[]),
    )
    assert not result.healthy
    assert "nDCG@10 back in baseline range: failed, last 0.5 (needs >= 0.5184" in result.summary
