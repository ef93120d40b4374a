"""Staged escalation on the time-skipping server: the climb along the escalation path, its stop
on acknowledgement, the pages resolved at the end, and every clock of the plan escalating once.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from temporalio.testing import WorkflowEnvironment

from activities.models import EscalationInput, PageInput
from client import operations
from contract.rollback import DecisionInput, EscalationAck, RollbackOptions, TriggerEvent
from runbook.policy import Policy
from runbook.report import build_report
from runbook.status import RollbackStatus
from tests.policies import edited
from tests.workflows.helpers import Rig, rig
from tests.workflows.standins import StandIns

SRE_KEY = "R" * 32
EM_KEY = "E" * 32


@pytest.fixture
def paged_policy(policy: Policy) -> Policy:
    return edited(
        policy,
        {
            "people.sre-oncall.pagerduty_routing_key": SRE_KEY,
            "people.eng-manager.pagerduty_routing_key": EM_KEY,
            "escalation.ack_within": "2m",
            "decisions.after_rollback_watch": "30m",
        },
    )


def told(r: Rig, key: str) -> list[EscalationInput]:
    return [i for n, i in r.standins.calls if n == "escalate" and i.key == key]


def pages(r: Rig, action: str = "trigger") -> list[PageInput]:
    return [i for n, i in r.standins.calls if n == "page" and i.action == action]


async def sleep(env: WorkflowEnvironment, r: Rig, minutes: float) -> RollbackStatus:
    """Skip the server's clock, then let the worker act on the timers that fired."""
    await env.sleep(timedelta(minutes=minutes))
    return await r.status()


async def test_the_climb_pages_each_role_in_turn_until_acknowledged(
    skipping_env: WorkflowEnvironment, paged_policy: Policy
) -> None:
    async with rig(skipping_env, paged_policy, StandIns(treatment=25, unhealthy=True)) as r:
        await r.trigger("error_rate")
        await r.until(lambda s: s.state == "following_up")
        key = "failed:health_validation"
        [first] = told(r, key)
        assert [h.role for h in first.holders] == ["sre_oncall"]
        assert "acknowledge within 2m" in first.stage_text
        [page] = [p for p in pages(r) if p.routing_keys == {"sre-oncall": SRE_KEY}][:1]
        dedup = page.dedup_key
        assert dedup.startswith(f"rollback-{r.deployment}|{key}|")

        await sleep(skipping_env, r, 2.5)
        await r.until(lambda s: len(told(r, key)) == 2)
        second = told(r, key)[1]
        assert [h.role for h in second.holders] == ["engineering_manager"]
        assert "not acknowledged within 2m" in second.stage_text
        em_pages = [p for p in pages(r) if p.routing_keys == {"eng-manager": EM_KEY}]
        assert em_pages and em_pages[0].dedup_key == dedup  # one incident, whoever is paged

        # The Engineering Manager has it: the climb stops before the VP.
        reply = await operations.acknowledge_escalation(
            r.client,
            r.deployment,
            EscalationAck(key=key, person="eng-manager", via="cli", made_at=await r.clock()),  # type: ignore[misc]
        )
        assert reply.accepted, reply.message
        await sleep(skipping_env, r, 10)
        assert len(told(r, key)) == 2
        status = await r.status()
        [esc] = [e for e in status.escalations if e.key == key]
        assert esc.acked_by == "eng-manager" and esc.acked_via == "cli"
        assert esc.told == ["sre_oncall", "engineering_manager"]
        assert set(esc.paged) == {"sre-oncall", "eng-manager"}
        # PagerDuty hears of the acknowledgement made elsewhere.
        assert any(p.dedup_key == dedup for p in pages(r, "acknowledge"))

        final = await r.result()  # the 30 min watch passes; the end resolves every page
        resolved = {p.dedup_key for p in pages(r, "resolve")}
        assert {e.dedup_key for e in final.escalations if e.paged} <= resolved
        assert all(e.resolved_at is not None for e in final.escalations)
        report = build_report(final, generated_at=datetime.now(UTC), policy=paged_policy)
        [esc_report] = [e for e in report.escalations if "Step 3" in e.reason]
        assert esc_report.told == ["SRE On-call", "Engineering Manager"]
        assert esc_report.acknowledged and esc_report.acknowledged.startswith("eng-manager (cli)")


async def test_unacknowledged_climbs_to_the_top_and_stops_there(
    skipping_env: WorkflowEnvironment, paged_policy: Policy
) -> None:
    async with rig(skipping_env, paged_policy, StandIns(treatment=25, unhealthy=True)) as r:
        await r.trigger("error_rate")
        await r.until(lambda s: s.state == "following_up")
        key = "failed:health_validation"
        await sleep(skipping_env, r, 2.5)
        await r.until(lambda s: len(told(r, key)) >= 2)
        await sleep(skipping_env, r, 2.5)
        await r.until(lambda s: len(told(r, key)) >= 3)
        await sleep(skipping_env, r, 10)
        roles = [[h.role for h in i.holders] for i in told(r, key)]
        assert roles == [["sre_oncall"], ["engineering_manager"], ["vp_engineering"]]


async def test_acknowledgement_needs_a_role_of_the_escalation_path(
    skipping_env: WorkflowEnvironment, paged_policy: Policy
) -> None:
    async with rig(skipping_env, paged_policy, StandIns(treatment=25, unhealthy=True)) as r:
        await r.trigger("error_rate")
        await r.until(lambda s: any(e.key == "failed:health_validation" for e in s.escalations))
        refused = await operations.acknowledge_escalation(
            r.client, r.deployment, EscalationAck(key=None, person="qa-dri", via="cli")
        )
        assert not refused.accepted
        assert "QA DRI" in refused.message and "escalation path" in refused.message
        unknown = await operations.acknowledge_escalation(
            r.client, r.deployment, EscalationAck(key="nope", person="sre-oncall", via="cli")
        )
        assert not unknown.accepted and "failed:health_validation" in unknown.message
        # PagerDuty's word (verified by the gateway) acknowledges every open one (a reason
        # that opens after it, as time skips on, is not one of them).
        before = {e.key for e in (await r.status()).escalations}
        taken = await operations.acknowledge_escalation(
            r.client,
            r.deployment,
            EscalationAck(key=None, person=None, via="pagerduty", who="Jane (PagerDuty)"),
        )
        assert taken.accepted
        status = await r.status()
        assert all(e.acked_via == "pagerduty" for e in status.escalations if e.key in before)
        # One person's PagerDuty incident is acknowledged; the others' (one per routing key)
        # are acknowledged by the engine: every paged key hears it, a repeat is a no-op there.
        paged = {p.dedup_key: set(p.routing_keys) for p in pages(r, "trigger")}
        await r.until(lambda s: len(pages(r, "acknowledge")) == len(paged))
        assert {p.dedup_key: set(p.routing_keys) for p in pages(r, "acknowledge")} == paged


async def test_a_drill_tells_the_first_role_and_pages_nobody(
    skipping_env: WorkflowEnvironment, paged_policy: Policy
) -> None:
    standins = StandIns(treatment=25, unhealthy=True)
    async with rig(skipping_env, paged_policy, standins) as r:
        await operations.send_trigger(
            r.client,
            task_queue=r.task_queue,
            policy=r.policy,
            deployment=r.deployment,
            event=TriggerEvent(trigger="error_rate"),
            options=RollbackOptions(ui_metadata=False, drill=True),
        )
        await r.until(lambda s: s.state in ("rolled_back", "incomplete"))
        await sleep(skipping_env, r, 10)
        [first] = told(r, "failed:health_validation")
        assert [h.role for h in first.holders] == ["sre_oncall"]
        assert "drill" in first.stage_text
        assert not pages(r)


async def test_the_accountable_role_of_an_automatic_cell_is_told_and_paged(
    skipping_env: WorkflowEnvironment, paged_policy: Policy
) -> None:
    policy = edited(paged_policy, {"escalation.page_accountable": True})
    async with rig(skipping_env, policy, StandIns(treatment=50)) as r:
        await r.trigger("gate_failure", reason="recall gate failed")
        await r.until(lambda s: s.state == "following_up")
        [notice] = [i for n, i in r.standins.calls if n == "tell_accountable"]
        assert [h.role for h in notice.holders] == ["engineering_manager"]
        assert "Engineering Manager" in notice.reason and "50%" in notice.reason
        assert any(p.routing_keys == {"eng-manager": EM_KEY} for p in pages(r))


async def test_automated_rollbacks_tell_no_accountable_person(
    skipping_env: WorkflowEnvironment, paged_policy: Policy
) -> None:
    async with rig(skipping_env, paged_policy, StandIns(treatment=50)) as r:
        await r.trigger("error_rate")
        await r.until(lambda s: s.state == "following_up")
        assert r.standins.count("tell_accountable") == 0


async def test_a_slow_stop_misses_the_triggers_target_and_says_by_how_much(
    skipping_env: WorkflowEnvironment, paged_policy: Policy
) -> None:
    """The load balancer answering 503 for a while: Step 1's budget, the error-rate trigger's
    own 30 s target, Phase 1's 60 s and the plan's 60 s automated target each escalate once;
    once the split is confirmed, each says by how much it was missed."""
    standins = StandIns(treatment=25, action_faults={"traffic_split": 40})
    policy = edited(paged_policy, {"decisions.after_rollback_watch": "1m"})
    async with rig(skipping_env, policy, standins) as r:
        await r.trigger("error_rate")
        status = await r.result()  # the server skips the retries' backoff
        keys = {e.key for e in status.escalations}
        took = (status.instants["traffic_reverted"] - status.instants["trigger"]).total_seconds()
        assert took > 60, took
        assert status.outcome == "rolled back"
        assert {
            "budget:emergency_stop",
            "target:trigger:error_rate",
            "target:automated_rollback",
            "phase:traffic_reversion",
        } <= keys
        late = [e.message for e in status.timeline if e.kind in ("target_late", "phase_late")]
        assert any("Trigger 1" in m and "over its target of 30s" in m for m in late), late
        assert any("Phase 1" in m and "over its budget of 1m" in m for m in late), late
        # Each reason once, however long it took; each message says what was missed.
        escalations = [e.message for e in status.timeline if e.kind == "escalation"]
        assert len(escalations) == len(set(escalations))
        assert any("no traffic reversion 30s after the trigger" in m for m in escalations)
        assert any("Phase 1: Traffic Reversion over its budget of 1m" in m for m in escalations)


async def test_an_acknowledgement_that_overtakes_the_page_still_reaches_pagerduty(
    skipping_env: WorkflowEnvironment, paged_policy: Policy
) -> None:
    """Acknowledged in Slack while the page is on its way: once PagerDuty has the incident, the
    engine acknowledges it there too (else it would keep paging the on-call)."""
    standins = StandIns(treatment=25, unhealthy=True, page_seconds=1.5)
    async with rig(skipping_env, paged_policy, standins) as r:
        await r.trigger("error_rate")
        key = "failed:health_validation"
        await r.until(lambda s: any(e.key == key for e in s.escalations))
        await r.until(lambda s: bool(pages(r, "trigger")))  # sent, not answered yet
        reply = await operations.acknowledge_escalation(
            r.client, r.deployment, EscalationAck(key=key, person="sre-oncall", via="slack")
        )
        assert reply.accepted, reply.message
        [sent] = [p for p in pages(r, "trigger") if key in p.dedup_key]
        await r.until(lambda s: any(p.dedup_key == sent.dedup_key for p in pages(r, "acknowledge")))
        status = await r.status()
        [esc] = [e for e in status.escalations if e.key == key]
        assert esc.acked_via == "slack" and esc.paged == ["sre-oncall"]


async def test_a_target_that_ends_at_the_decision_escalates_while_the_window_is_open(
    skipping_env: WorkflowEnvironment, policy: Policy
) -> None:
    """Trigger 5 must be decided within 10 minutes; a 12-minute window at 5 % outlasts it: the
    target escalates at 10 minutes, and the decision, when it comes, says by how much."""
    longer = edited(
        policy,
        {"decision_matrix.quality_regression.5.window": "12m", "escalation.ack_within": "30m"},
    )
    async with rig(skipping_env, longer, StandIns(treatment=5)) as r:
        await r.trigger("quality_regression", raised_by="qa-dri", reason="nDCG down")
        await r.until(lambda s: s.state == "awaiting_decision")
        await sleep(skipping_env, r, 9.9)
        assert not [e for e in (await r.status()).escalations if e.key.startswith("target:")]
        await sleep(skipping_env, r, 0.2)
        status = await r.until(
            lambda s: any(e.key == "target:trigger:quality_regression" for e in s.escalations)
        )
        [esc] = [e for e in status.escalations if e.key == "target:trigger:quality_regression"]
        assert "no decision 10m after the trigger" in esc.reason
        reply = await operations.decide(
            r.client, r.deployment, DecisionInput(action="approve", person="qa-dri", note="ok")
        )
        assert reply.accepted, reply.message
        late = await r.until(
            lambda s: any(
                e.kind == "target_late" and "trigger to decision" in e.message for e in s.timeline
            )
        )
        [text] = [
            e.message
            for e in late.timeline
            if e.kind == "target_late" and "trigger to decision" in e.message
        ]
        assert "trigger to decision: reached after" in text and "over its target of 10m" in text


async def test_a_drill_decided_at_once_ends_without_waiting_for_the_decision_target(
    skipping_env: WorkflowEnvironment, policy: Policy
) -> None:
    """The decision target's clock (10 minutes) never holds a run that has nothing left to do:
    a drill approved at once ends within its procedure, not 10 minutes after the trigger."""
    standins = StandIns(treatment=5)
    async with rig(skipping_env, policy, standins) as r:
        handle = await operations.send_trigger(
            r.client,
            task_queue=r.task_queue,
            policy=policy,
            deployment=r.deployment,
            event=TriggerEvent(trigger="quality_regression", raised_by="qa-dri", reason="drill"),
            options=RollbackOptions(ui_metadata=False, drill=True),
        )
        await r.until(lambda s: s.state == "awaiting_decision")
        reply = await operations.decide(
            r.client, r.deployment, DecisionInput(action="approve", person="qa-dri", note="ok")
        )
        assert reply.accepted, reply.message
        final = await handle.result()
        assert final.drill and final.state == "rolled_back"
        described = await handle.describe()
        assert described.close_time is not None and described.start_time is not None
        assert described.close_time - described.start_time < timedelta(minutes=5)
        assert not [e for e in final.escalations if e.key.startswith("target:")]
