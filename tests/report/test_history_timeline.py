"""The timeline rebuilt from a rollback's history matches what the workflow recorded, and the
report's figures match the run: on the time-skipping server (a window whose default applies
after exactly its length) and on the dev server (UI summaries, the follow-ups child, the end)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest
from temporalio import activity
from temporalio.testing import WorkflowEnvironment

from activities.models import (
    Hypothesis,
    RootCauseInput,
    RootCauseResult,
)
from client import history
from runbook.policy import Policy
from runbook.report import build_report
from tests.report.milestones import from_history, from_status
from tests.workflows.helpers import rig
from tests.workflows.standins import StandIns

pytestmark = pytest.mark.timeout(60)
SAME_INSTANT = timedelta(milliseconds=1)


@dataclass
class WithRootCause(StandIns):
    @activity.defn(name="root_cause_analysis")
    async def root_cause_analysis(self, inp: RootCauseInput) -> RootCauseResult:
        self.calls.append(("root_cause_analysis", inp))
        return RootCauseResult(
            log_lines=2,
            log_excerpt=["10:02:01 ERROR hedging timeout", "10:02:02 ERROR hedging timeout"],
            metrics={"error_rate": {"treatment": 0.02, "control": 0.0005}},
            hypotheses=["treatment error rate 40× control"],
            ranked=[
                Hypothesis(
                    text="treatment error rate 40× control", severity="critical", area="errors"
                )
            ],
            summary="1 hypothesis from 2 log lines",
        )


async def test_window_default_after_exactly_its_length(
    skipping_env: WorkflowEnvironment, policy: Policy
) -> None:
    async with rig(skipping_env, policy, StandIns(treatment=25)) as r:
        handle = await r.trigger(
            "gate_failure",
            reason="recall gate failed",
            raised_by="dri-backend",
            evidence={"recall_at_50": "0.91"},
        )
        await r.until(lambda s: s.state == "awaiting_decision")
        await skipping_env.sleep(timedelta(seconds=30))
        assert not (await r.decide("approve", "qa-dri")).accepted  # QA DRI may not decide
        await skipping_env.sleep(timedelta(seconds=91))
        final = await r.until(lambda s: s.state == "following_up" and s.follow_ups_id is not None)
        read = await history.fetch(handle, skipping_env.client.data_converter)

        assert from_history(read.timeline) == from_status(final, policy)
        assert [kind for kind, _ in from_status(final, policy)] == [
            "trigger",
            "decision",
            "window_expired",
            *["step"] * 7,
        ]
        assert read.policy == policy and read.timeline.close_status is None

        report = build_report(
            final, generated_at=datetime.now(UTC), policy=read.policy, history=read.timeline
        )
        d = report.decision
        assert d.default_applied and d.decided_by == ["default"]
        assert d.seconds_after_trigger == 120.0  # the 25 % gate-failure window, to the microsecond
        assert d.window_seconds == 120.0 and d.within_window is True
        assert d.deadline == final.instants["trigger"] + timedelta(minutes=2)
        assert d.rejected_attempts == 1 and d.approvers == "Sprint DRI"
        t = report.trigger
        assert (t.id, t.phase, t.raised_by, t.reason) == (
            "gate_failure",
            25,
            "dri-backend",
            "recall gate failed",
        )
        assert t.evidence == {"recall_at_50": "0.91"} and t.at == final.instants["trigger"]
        for step, record in zip(report.steps, final.steps, strict=True):
            assert record.ended_at is not None
            assert step.duration_seconds == (record.ended_at - record.started_at).total_seconds()
            assert step.budget_seconds == policy.step(record.id).budget.total_seconds()
            assert step.within_budget is True and step.outcome == "ok"
        times = {rt.id: rt for rt in report.response_times}
        assert set(times) == {
            "trigger:gate_failure",
            "manual_rollback",
            "stabilization",
            "communication",
        }
        assert times["trigger:gate_failure"].seconds == 120.0  # "5 minutes to decide": met
        reverted = final.instants["traffic_reverted"] - final.instants["decision"]
        assert times["manual_rollback"].seconds == reverted.total_seconds()
        assert {rt.result for rt in report.response_times} == {"pass"}


async def test_a_failed_step_and_its_escalation_are_in_both_timelines(
    local_env: WorkflowEnvironment, policy: Policy
) -> None:
    """On the dev server: its history has the workflow's clock, which orders a Phase 1 step's
    end (its last action) after what its earlier actions escalated, as the status does."""
    refusing = StandIns(treatment=5, action_faults={"config:ta_nra_early_stop": "refused"})
    async with rig(local_env, policy, refusing) as r:
        handle = await r.trigger("error_rate", source="alertmanager")
        final = await r.until(lambda s: s.state == "following_up" and s.follow_ups_id is not None)
        read = await history.fetch(handle, local_env.client.data_converter)
        assert final.outcome == "incomplete"

        milestones = from_history(read.timeline)
        assert milestones == from_status(final, policy)
        assert ("step", "configuration_revert: failed") in milestones
        failed = read.timeline.of_kind("activity_failed")
        refusal = "TargetRejected: config:ta_nra_early_stop: target answered 404"
        assert [e.message for e in failed] == [
            f"Step 2: Configuration Revert: `config-update --disable-early-stop` failed: {refusal}"
        ]
        assert [e.unit for e in failed] == ["config:ta_nra_early_stop"]
        assert [e.message for e in read.timeline.of_kind("escalation")] == [
            "Step 2: Configuration Revert: `config-update --disable-early-stop` refused by the "
            f"target for {r.deployment}: {refusal}"
        ]
        report = build_report(
            final, generated_at=datetime.now(UTC), policy=policy, history=read.timeline
        )
        assert report.decision.mode == "auto" and report.decision.window_seconds is None
        assert [s.outcome for s in report.steps][:2] == ["ok", "failed"]
        assert report.recovery.escalations == 1


async def test_dev_server_history_with_summaries_follow_ups_and_the_end(
    local_env: WorkflowEnvironment, policy: Policy
) -> None:
    client = local_env.client
    async with rig(local_env, policy, WithRootCause(treatment=5), ui_metadata=True) as r:
        handle = await r.trigger(
            "gate_failure", reason="gate", raised_by="dri-backend", links=["http://grafana/x"]
        )
        await r.until(lambda s: s.state == "awaiting_decision")
        assert not (await r.decide("approve", "qa-dri")).accepted
        assert (await r.decide("approve", "dri-backend")).accepted
        await r.until(lambda s: s.state == "following_up" and s.follow_ups_id is not None)
        await r.trigger("error_rate", source="alertmanager")  # a new incident after the rollback
        final = await r.until(lambda s: any(e.kind == "escalation" for e in s.timeline))
        read = await history.fetch(handle, client.data_converter)

        assert from_history(read.timeline) == from_status(final, policy)
        timeline = read.timeline
        assert (timeline.workflow_type, timeline.deployment, timeline.drill) == (
            "RollbackWorkflow",
            r.deployment,
            False,
        )
        # Each step's activity was scheduled and ended on the workflow's own clock.
        scheduled = {e.step: e for e in timeline.of_kind("activity_scheduled") if e.step}
        ended = {e.step: e for e in timeline.of_kind("activity_completed") if e.step}
        for record in final.steps:
            start, end = scheduled[record.id], ended[record.id]
            assert start.workflow_time and end.workflow_time and record.ended_at
            assert abs(start.workflow_time - record.started_at) <= SAME_INSTANT
            assert abs(end.workflow_time - record.ended_at) <= SAME_INSTANT
            assert start.step_name == record.name
            assert start.summary and start.summary.startswith(record.name)
        assert scheduled["emergency_stop"].summary == (
            "Step 1: Emergency Stop: traffic-split --treatment 0 --control 100"
        )
        assert [e.name for e in timeline.of_kind("child_started")] == [final.follow_ups_id]
        window = next(e for e in timeline.of_kind("timer_started") if e.step is None)
        assert window.summary and window.summary.startswith("decision window until")

        report = build_report(
            final, generated_at=datetime.now(UTC), policy=read.policy, history=timeline
        )
        # The workflow keeps Step 6's material in its status; the history is the fallback.
        assert report.root_cause is not None and report.root_cause.source == "status"
        assert report.root_cause.material.ranked[0].severity == "critical"
        assert report.trigger.links == ["http://grafana/x"]
        assert report.trigger.others == ["error_rate"] and report.trigger.received == 2
        assert report.escalations[0].reason.startswith("new error_rate trigger")
        follow_ups_id = final.follow_ups_id

    # The rig terminated the rollback and its follow-ups: the history tells how it ended.
    closed = await history.fetch(client.get_workflow_handle(handle.id), client.data_converter)
    assert closed.timeline.close_status == "terminated"
    assert closed.timeline.entries[-1].message.startswith("RollbackWorkflow terminated: ")
    assert closed.timeline.entries[-1].message.endswith("(test finished)")
    assert follow_ups_id is not None
    child = await history.fetch(client.get_workflow_handle(follow_ups_id), client.data_converter)
    assert child.timeline.workflow_type == "FollowUpsWorkflow"
    assert child.timeline.close_status == "terminated"
    assert [e.trigger for e in child.timeline.of_kind("signal")] == ["error_rate"]
