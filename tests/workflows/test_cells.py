"""Every cell of the decision matrix through the real workflow on the time-skipping server."""

from __future__ import annotations

from datetime import timedelta

import pytest
from temporalio.testing import WorkflowEnvironment

from runbook.policy import Policy
from tests.runbook.test_matrices import DECISIONS
from tests.workflows.helpers import kinds, rig
from tests.workflows.standins import StandIns

AUTHORIZED = {"sprint_dri": "dri-backend", "qa_dri": "qa-dri"}


@pytest.mark.parametrize(("trigger", "phase"), sorted(DECISIONS))
async def test_cell(
    skipping_env: WorkflowEnvironment, policy: Policy, trigger: str, phase: int
) -> None:
    mode, window, approvers, _ = DECISIONS[(trigger, phase)]
    # The live split decides the phase (the label says otherwise on purpose).
    async with rig(skipping_env, policy, StandIns(treatment=phase)) as r:
        if trigger == "operational_anomaly":
            await r.trigger(trigger, phase=5, raised_by="dri-search", reason="odd shard traffic")
            done = await r.until(lambda s: s.state == "following_up")
            assert (done.mode, done.decided_by, done.phase) == ("manual", ["dri-search"], phase)
        elif mode == "auto":
            await r.trigger(trigger, phase=5, source="alertmanager")
            done = await r.until(lambda s: s.state == "following_up")
            assert (done.mode, done.decided_by, done.phase) == ("auto", ["system"], phase)
            assert done.instants["decision"] - done.instants["trigger"] < timedelta(seconds=1)
            assert r.standins.count("request_decision") == 0
            [automated] = [t for t in done.response_times if t.id == "automated_rollback"]
            assert automated.met is True
            assert automated.seconds == done.intervals["trigger_to_traffic_reversion"]
        else:
            await r.trigger(trigger, phase=5)
            waiting = await r.until(lambda s: s.state == "awaiting_decision")
            assert waiting.decision is not None
            assert waiting.phase == phase
            assert waiting.decision.approvers == approvers
            opened = waiting.decision.opened_at
            assert waiting.decision.deadline - opened == timedelta(seconds=window)
            [request] = [inp for name, inp in r.standins.calls if name == "request_decision"]
            assert request.approvers == approvers and request.phase == phase
            assert {p.id for h in request.deciders for p in h.people} >= {
                AUTHORIZED[role] for role in approvers[0]
            }
            # Nobody decides: the window's default. Skip just past the window, not the whole
            # stability watch, so the test server has little to skip through.
            await skipping_env.sleep(timedelta(seconds=window + 1))
            done = await r.until(lambda s: s.state == "following_up")
            assert done.decided_by == ["default"]
            assert done.instants["decision"] - opened == timedelta(seconds=window)
            assert "window_expired" in kinds(done)
            [manual] = [t for t in done.response_times if t.id == "manual_rollback"]
            assert manual.met is True
            assert done.intervals["trigger_to_decision"] == window
            assert set(done.intervals) == {
                "trigger_to_decision",
                "decision_to_traffic_reversion",
                "trigger_to_traffic_reversion",
                "decision_to_stabilization",
                "decision_to_first_notification",
            }
        assert r.standins.count("set_traffic_split") == 1
        steps = [
            n
            for n in r.standins.names()
            if n
            in (
                "set_traffic_split",
                "flush_cache",
                "health_validation",
                "deep_health_validation",
                "stakeholder_notification",
                "root_cause_analysis",
                "recovery_planning",
            )
        ]
        assert steps == [
            "set_traffic_split",
            "flush_cache",
            "health_validation",
            "deep_health_validation",
            "stakeholder_notification",
            "root_cause_analysis",
            "recovery_planning",
        ]


@pytest.mark.parametrize("phase", [5, 25, 50, 100])
async def test_operational_anomaly_needs_a_sprint_dri(
    skipping_env: WorkflowEnvironment, policy: Policy, phase: int
) -> None:
    async with rig(skipping_env, policy, StandIns(treatment=phase)) as r:
        await r.trigger("operational_anomaly", raised_by="qa-dri", reason="weird")
        rejected = await r.until(lambda s: "trigger_rejected" in kinds(s))
        [entry] = [e for e in rejected.timeline if e.kind == "trigger_rejected"]
        assert "must be raised by a Sprint DRI; QA DRI (qa-dri) is not one" in entry.message
        assert r.standins.count("set_traffic_split") == 0
        await r.trigger("operational_anomaly", raised_by="dri-backend", reason="weird")
        done = await r.until(lambda s: s.state == "following_up")
        assert done.decided_by == ["dri-backend"]


async def test_phase_label_is_the_fallback_when_the_split_cannot_be_read(
    skipping_env: WorkflowEnvironment, policy: Policy
) -> None:
    async with rig(skipping_env, policy, StandIns(treatment=None)) as r:
        await r.trigger("gate_failure", phase=25)
        waiting = await r.until(lambda s: s.state == "awaiting_decision")
        assert waiting.phase == 25
        assert "phase_fallback" in kinds(waiting)
        assert waiting.decision is not None
        assert waiting.decision.deadline - waiting.decision.opened_at == timedelta(minutes=2)


async def test_unhealthy_step_escalates(skipping_env: WorkflowEnvironment, policy: Policy) -> None:
    async with rig(skipping_env, policy, StandIns(treatment=25, unhealthy=True)) as r:
        await r.trigger("error_rate")
        done = await r.until(lambda s: s.state == "following_up")
        [health] = [s for s in done.steps if s.id == "health_validation"]
        assert health.outcome == "failed"
        assert any(e.kind == "escalation" and "Step 3" in e.message for e in done.timeline)
        # The first role of the escalation path is told first, with a button to acknowledge.
        first = next(
            inp
            for name, inp in r.standins.calls
            if name == "escalate" and "Step 3" in inp.reason and inp.key == "incident"
        )
        assert [h.role for h in first.holders] == policy.escalation_path[:1]
        assert "stabilized" not in done.instants
