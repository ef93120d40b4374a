"""Whole rollbacks on the dev server, against the simulator and a real Redis.

The workflow is not awaited: after Phase 3 it watches the deployment for hours
(state `following_up`), so the tests poll its status query instead.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
import redis.asyncio as aioredis

from runbook.policy import Policy
from runbook.status import RollbackStatus

pytestmark = pytest.mark.timeout(60)

STEPS = [
    "emergency_stop",
    "configuration_revert",
    "health_validation",
    "deep_health_validation",
    "stakeholder_notification",
    "root_cause_analysis",
    "recovery_planning",
]
CHANGES = {
    "PUT /lb/{d}/split": 1,
    "POST /services/{d}/hedging-service/stop": 1,
    "PATCH /config/{d}": 1,
    "PUT /flags/{d}/hedging": 1,
    "PUT /flags/{d}/ta_nra_optimization": 1,
}


def following_up(status: RollbackStatus) -> bool:
    return status.state == "following_up"


def step(status: RollbackStatus, step_id: str) -> Any:
    return next(s for s in status.steps if s.id == step_id)


def reversion_seconds(status: RollbackStatus) -> float:
    return (status.instants["traffic_reverted"] - status.instants["trigger"]).total_seconds()


def escalations(status: RollbackStatus) -> list[str]:
    return [e.message for e in status.timeline if e.kind == "escalation"]


async def redis_db(url: str, db: int) -> aioredis.Redis:
    return aioredis.Redis.from_url(url.rsplit("/", 1)[0] + f"/{db}")


async def test_automated_rollback_from_trigger_to_phase_2(
    make_rig: Callable[..., Any], redis_url: str
) -> None:
    cache, other = await redis_db(redis_url, 1), await redis_db(redis_url, 3)
    await cache.set("config:ranking", "ta_nra")
    await other.set("sessions:1", "kept")
    async with make_rig(25, treatment_error_rate=0.05) as rig:
        await rig.trigger("error_rate")
        status = await rig.until(following_up, timeout=30)

        assert status.phase == 25 and status.mode == "auto"
        assert [s.id for s in status.steps] == STEPS
        assert [(s.outcome, s.late) for s in status.steps] == [("ok", False)] * len(STEPS)
        assert escalations(status) == []
        assert reversion_seconds(status) < 10
        assert "traffic-split --treatment 0 --control 100" in step(status, "emergency_stop").summary

        d = rig.deployment
        assert await rig.target("GET", f"/lb/{d}/split") == {
            "deployment": d,
            "treatment": 0,
            "control": 100,
        }
        assert (await rig.target("GET", f"/services/{d}/hedging-service"))["status"] == "stopped"
        assert (await rig.target("GET", f"/config/{d}"))["ta_nra_early_stop"] is False
        assert (await rig.target("GET", f"/flags/{d}"))["flags"] == {
            "hedging": False,
            "ta_nra_optimization": False,
        }
        assert await cache.dbsize() == 0
        assert await other.get("sessions:1") == b"kept"
        assert await rig.applied_calls() == CHANGES

        texts = rig.notifier.texts()
        assert any(f"Emergency stop of {d}" in t for t in texts)
        assert any(t.startswith(f"Recovery plan: {d}") for t in texts)
        assert {m.channel for m in rig.notifier.sent} >= {"#sprint-1-channel", "#eng-leadership"}
    await cache.aclose()
    await other.aclose()


async def test_load_balancer_failing_at_first_still_reverts_within_budget(
    make_rig: Callable[..., Any],
) -> None:
    async with make_rig(25, treatment_error_rate=0.05) as rig:
        # Error rate is automatic at every phase: Step 1 starts at once (its read-first gives
        # the phase) and retries through the failures.
        fault = {"api": "lb", "mode": "fail", "count": 4, "deployment": rig.deployment}
        await rig.target("POST", "/faults/api", fault)
        await rig.trigger("error_rate", phase=25)
        status = await rig.until(lambda s: "traffic_reverted" in s.instants)

        stop = step(status, "emergency_stop")
        assert stop.outcome == "ok" and not stop.late
        assert "(attempt 5)" in stop.summary
        assert reversion_seconds(status) < 10
        calls = (await rig.target("GET", "/calls"))["calls"]
        failed = [
            c for c in calls if c["deployment"] == rig.deployment and c["outcome"] == "failed"
        ]
        # The action reads the split before it sets it: the failures met the reads.
        assert len(failed) == 4 and {c["method"] for c in failed} == {"GET"}
        assert (await rig.applied_calls())["PUT /lb/{d}/split"] == 1


async def test_load_balancer_down_past_the_budget_escalates_then_reverts(
    make_rig: Callable[..., Any],
) -> None:
    async with make_rig(25) as rig:
        fault = {"api": "lb", "mode": "fail", "count": -1, "deployment": rig.deployment}
        await rig.target("POST", "/faults/api", fault)
        await rig.trigger("error_rate", phase=25)
        late = await rig.until(lambda s: bool(escalations(s)), timeout=20)
        assert (
            "Step 1: Emergency Stop missed its budget of 10s; still retrying"
            in (escalations(late)[0])
        )
        assert "traffic_reverted" not in late.instants

        await rig.target("DELETE", "/faults/api")
        status = await rig.until(lambda s: "traffic_reverted" in s.instants, timeout=20)
        stop = step(status, "emergency_stop")
        assert stop.outcome == "ok" and stop.late
        assert (await rig.target("GET", f"/lb/{rig.deployment}/split"))["treatment"] == 0

        escalation = await rig.message("escalation")
        assert "Step 1: Emergency Stop missed its budget" in escalation
        # The first role of the escalation path first; the next only if nobody acknowledges.
        assert "Told: SRE On-call (pager) (acknowledge within 5m" in escalation
        assert "Engineering Manager" not in escalation.split("Told:")[1].split("(")[0]


async def test_a_health_criterion_that_never_holds_fails_step_3_and_escalates(
    make_rig: Callable[..., Any], policy: Policy
) -> None:
    strict = policy.health_criteria[0].model_copy(
        update={"value": 0.0001, "within": timedelta(seconds=2)}
    )
    impossible = policy.model_copy(
        update={"health_criteria": [strict, *policy.health_criteria[1:]]}
    )
    async with make_rig(25, impossible, treatment_error_rate=0.05) as rig:
        await rig.trigger("error_rate")
        status = await rig.until(
            lambda s: any(x.id == "health_validation" and x.ended_at for x in s.steps), timeout=30
        )
        health = step(status, "health_validation")
        assert health.outcome == "failed"
        assert "Error rate below 0.1%: failed, last 0.0005 (needs < 0.0001" in health.summary
        assert any(
            m.startswith("Step 3: Health Validation failed: 1 of 5 health criteria failed")
            for m in escalations(status)
        )


async def test_the_phase_comes_from_the_live_split(make_rig: Callable[..., Any]) -> None:
    async with make_rig(10) as rig:
        await rig.trigger("gate_failure", phase=5)
        status = await rig.until(lambda s: s.state == "awaiting_decision")
        assert status.phase == 25
        assert status.decision is not None
        assert status.decision.deadline - status.decision.opened_at == timedelta(minutes=2)
        request = await rig.message("decision_request")
        assert "Trigger 4: Success Gate Failure at 25% canary" in request
        assert "Who may decide: Sprint DRI (Sprint DRI (Backend), Sprint DRI (Search))" in (request)


async def test_an_unreadable_load_balancer_falls_back_to_the_label(
    make_rig: Callable[..., Any],
) -> None:
    async with make_rig(10) as rig:
        fault = {"api": "lb", "mode": "fail", "count": -1, "deployment": rig.deployment}
        await rig.target("POST", "/faults/api", fault)
        await rig.trigger("gate_failure", phase=5)
        status = await rig.until(lambda s: s.state == "awaiting_decision")
        assert status.phase == 5
        assert status.decision is not None
        assert status.decision.deadline - status.decision.opened_at == timedelta(minutes=5)
        [fallback] = [e.message for e in status.timeline if e.kind == "phase_fallback"]
        assert "load balancer unreadable (TargetUnavailable: load balancer GET " in fallback
        assert f"/lb/{rig.deployment}/split answered 503" in fallback
        assert "phase assumed from the trigger's phase label, 5%" in fallback
        assert "its authority are those of 5%, not a phase read" in fallback
