"""Escalation on the time-skipping server: one incident per rollback (one PagerDuty alert, one
Slack thread), its climb along the escalation path and its stop on acknowledgement, later
reasons told (not climbed) to whoever acknowledged, the incident resolved when the rollback is
done, and every clock of the plan escalating once."""

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


def told(r: Rig) -> list[EscalationInput]:
    """Every escalation message: the incident's first, its thread's replies."""
    return [i for n, i in r.standins.calls if n == "escalate"]


def climbs(r: Rig) -> list[EscalationInput]:
    """The messages that tell a role it has the incident now (the climb's stages)."""
    stages = ("acknowledge within", "not acknowledged within", "drill")
    return [i for i in told(r) if i.stage_text.startswith(stages)]


def pages(r: Rig, action: str = "trigger") -> list[PageInput]:
    return [i for n, i in r.standins.calls if n == "page" and i.action == action]


async def sleep(env: WorkflowEnvironment, r: Rig, minutes: float) -> RollbackStatus:
    """Skip the server's clock, then let the worker act on the timers that fired."""
    await env.sleep(timedelta(minutes=minutes))
    return await r.status()


async def test_one_incident_climbs_until_acknowledged_then_later_reasons_are_told(
    skipping_env: WorkflowEnvironment, paged_policy: Policy
) -> None:
    standins = StandIns(treatment=25, unhealthy=True)
    async with rig(skipping_env, paged_policy, standins) as r:
        await r.trigger("error_rate")
        await r.until(lambda s: s.state == "following_up")
        first = told(r)[0]
        assert [h.role for h in first.holders] == ["sre_oncall"] and first.thread_ts is None
        assert "acknowledge within 2m" in first.stage_text
        [page] = [p for p in pages(r) if p.routing_keys == {"sre-oncall": SRE_KEY}][:1]
        dedup = page.dedup_key
        assert dedup.startswith(f"rollback-{r.deployment}|incident|")
        # A second reason (the stabilization target, missed at the procedure's end) joins it:
        # a reply in the incident's thread, and the same PagerDuty alert brought up to date.
        status = await r.until(lambda s: len(s.escalations[0].reasons) >= 2)
        [incident] = status.escalations
        assert [x.key for x in incident.reasons][:2] == [
            "failed:health_validation",
            "target:stabilization",
        ]
        replies = [i for i in told(r)[1:] if i.thread_ts == "esc-" + first_ts(r)]
        assert replies and "joins the open incident" in replies[0].stage_text
        assert {p.dedup_key for p in pages(r)} == {dedup}

        await sleep(skipping_env, r, 2.5)
        await r.until(lambda s: len(climbs(r)) == 2)
        assert [h.role for h in climbs(r)[1].holders] == ["engineering_manager"]
        em_pages = [p for p in pages(r) if p.routing_keys == {"eng-manager": EM_KEY}]
        assert em_pages and em_pages[0].dedup_key == dedup  # one incident, whoever is paged

        # The Engineering Manager has it: the climb stops before the VP.
        reply = await operations.acknowledge_escalation(
            r.client,
            r.deployment,
            EscalationAck(key="all", person="eng-manager", via="cli", made_at=await r.clock()),  # type: ignore[misc]
        )
        assert reply.accepted, reply.message
        await r.until(lambda s: any(p.dedup_key == dedup for p in pages(r, "acknowledge")))
        # A reason after the acknowledgement (the error rate again, treatment at 0 %): told to
        # the Engineering Manager in the thread, not climbed, not paged anew.
        before = len(climbs(r))
        await r.trigger("error_rate", source="alertmanager", delivery_key="again")
        later = await r.until(
            lambda s: any(x.key == "after:error_rate" for x in s.escalations[0].reasons)
        )
        await sleep(skipping_env, r, 10)
        assert len(climbs(r)) == before
        [after] = [
            i for i in told(r) if "after the rollback" in i.reason or "new error_rate" in i.reason
        ]
        assert [h.role for h in after.holders] == ["engineering_manager"]
        assert "told, not climbed again" in after.stage_text and after.thread_ts is not None
        assert len(later.escalations) == 1
        vp = [i for i in climbs(r) if any(h.role == "vp_engineering" for h in i.holders)]
        assert vp == []

        final = await r.result()  # Step 3 failed: open until the run's end, then resolved
        [incident] = final.escalations
        assert incident.resolved_at is not None and incident.acked_by == "eng-manager"
        assert {p.dedup_key for p in pages(r, "resolve")} == {dedup}
        report = build_report(final, generated_at=datetime.now(UTC), policy=paged_policy)
        [esc_report] = [e for e in report.escalations if "Step 3" in e.reason]
        assert esc_report.told == ["SRE On-call", "Engineering Manager"]
        assert esc_report.acknowledged and esc_report.acknowledged.startswith("eng-manager (cli)")


def first_ts(r: Rig) -> str:
    """The stand-in answers the incident's first message with `esc-<n>`."""
    index = next(i for i, (n, _) in enumerate(r.standins.calls) if n == "escalate")
    return str(index + 1)


async def test_unacknowledged_climbs_to_the_top_and_stops_there(
    skipping_env: WorkflowEnvironment, paged_policy: Policy
) -> None:
    async with rig(skipping_env, paged_policy, StandIns(treatment=25, unhealthy=True)) as r:
        await r.trigger("error_rate")
        await r.until(lambda s: s.state == "following_up")
        await sleep(skipping_env, r, 2.5)
        await r.until(lambda s: len(climbs(r)) >= 2)
        await sleep(skipping_env, r, 2.5)
        await r.until(lambda s: len(climbs(r)) >= 3)
        await sleep(skipping_env, r, 10)
        roles = [[h.role for h in i.holders] for i in climbs(r)]
        assert roles == [["sre_oncall"], ["engineering_manager"], ["vp_engineering"]]


async def test_acknowledgement_needs_a_role_of_the_escalation_path(
    skipping_env: WorkflowEnvironment, paged_policy: Policy
) -> None:
    async with rig(skipping_env, paged_policy, StandIns(treatment=25, unhealthy=True)) as r:
        await r.trigger("error_rate")
        await r.until(lambda s: bool(s.escalations) and bool(s.escalations[0].paged))
        refused = await operations.acknowledge_escalation(
            r.client, r.deployment, EscalationAck(key=None, person="qa-dri", via="cli")
        )
        assert not refused.accepted
        assert "QA DRI" in refused.message and "escalation path" in refused.message
        unknown = await operations.acknowledge_escalation(
            r.client, r.deployment, EscalationAck(key="nope", person="sre-oncall", via="cli")
        )
        assert not unknown.accepted and "failed:health_validation" in unknown.message
        # PagerDuty's word (verified by the gateway) acknowledges the incident; every paged
        # key hears it (PagerDuty takes a repeat as a no-op).
        taken = await operations.acknowledge_escalation(
            r.client,
            r.deployment,
            EscalationAck(key="incident", person=None, via="pagerduty", who="Jane (PagerDuty)"),
        )
        assert taken.accepted
        [incident] = (await r.status()).escalations
        assert incident.acked_via == "pagerduty"
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
        first = told(r)[0]
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
        [incident] = status.escalations  # every reason in one incident
        keys = {x.key for x in incident.reasons}
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
        # One PagerDuty alert, updated with each reason; resolved once the procedure ended with
        # every action confirmed and no step failed, within a minute of it (not at the run's
        # end, a stability watch later).
        assert len({p.dedup_key for p in pages(r)}) == 1
        settled = max(a.settled_at for a in status.actions if a.settled_at is not None)
        ended = max(status.steps[-1].ended_at or settled, settled)  # done, every action confirmed
        assert incident.resolved_at is not None
        assert incident.resolved_at - ended < timedelta(minutes=1)
        updates = [p for p in pages(r) if p.custom_details.get("reason_count", "1") != "1"]
        assert updates, "later reasons bring the alert up to date"


async def test_an_acknowledgement_that_overtakes_the_page_still_reaches_pagerduty(
    skipping_env: WorkflowEnvironment, paged_policy: Policy
) -> None:
    """Acknowledged in Slack while the page is on its way: once PagerDuty has the incident, the
    engine acknowledges it there too (else it would keep paging the on-call)."""
    standins = StandIns(treatment=25, unhealthy=True, page_seconds=1.5)
    async with rig(skipping_env, paged_policy, standins) as r:
        await r.trigger("error_rate")
        key = "failed:health_validation"
        await r.until(lambda s: bool(s.escalations))
        await r.until(lambda s: bool(pages(r, "trigger")))  # sent, not answered yet
        reply = await operations.acknowledge_escalation(
            r.client, r.deployment, EscalationAck(key=key, person="sre-oncall", via="slack")
        )
        assert reply.accepted, reply.message
        [sent] = pages(r, "trigger")[:1]
        await r.until(lambda s: any(p.dedup_key == sent.dedup_key for p in pages(r, "acknowledge")))
        status = await r.status()
        [esc] = status.escalations
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
        assert not (await r.status()).escalations
        await sleep(skipping_env, r, 0.2)
        status = await r.until(lambda s: bool(s.escalations))
        [esc] = status.escalations
        assert [x.key for x in esc.reasons] == ["target:trigger:quality_regression"]
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
        assert not final.escalations


async def test_a_reason_the_policy_names_climbs_again_after_the_acknowledgement(
    skipping_env: WorkflowEnvironment, paged_policy: Policy
) -> None:
    """`escalation.climb_again_for` (by default `action`: a Phase 1 action refused or given up
    may leave traffic on the canary): such a reason after someone took the incident makes the
    path hear it again from its first role; here the policy names `after` (a new trigger after
    the rollback)."""
    policy = edited(paged_policy, {"escalation.climb_again_for": ["after"]})
    async with rig(skipping_env, policy, StandIns(treatment=25, unhealthy=True)) as r:
        await r.trigger("error_rate")
        await r.until(lambda s: s.state == "following_up" and bool(s.escalations))
        reply = await operations.acknowledge_escalation(
            r.client, r.deployment, EscalationAck(key="all", person="sre-oncall", via="cli")
        )
        assert reply.accepted, reply.message
        stages = len(climbs(r))
        await r.trigger("p99_latency", source="alertmanager", delivery_key="again")
        status = await r.until(lambda s: s.escalations[0].acked_at is None)
        assert any("incident climbs again: after is a reason" in e.message for e in status.timeline)
        await r.until(lambda s: len(climbs(r)) == stages + 1)
        assert [h.role for h in climbs(r)[-1].holders] == ["sre_oncall"]


async def test_a_storm_over_one_deployment_is_one_incident(
    skipping_env: WorkflowEnvironment, paged_policy: Policy
) -> None:
    async with rig(skipping_env, paged_policy, StandIns(treatment=25, unhealthy=True)) as r:
        await r.trigger("error_rate")
        await r.until(lambda s: s.state == "following_up")
        for i in range(60):
            trigger = ("error_rate", "p99_latency", "resource_exhaustion")[i % 3]
            await r.trigger(trigger, source="alertmanager", delivery_key=f"storm-{i}")
        status = await r.until(
            lambda s: sum(x.key.startswith("after:") for x in s.escalations[0].reasons) == 3
        )
        assert len(status.escalations) == 1
        assert len({p.dedup_key for p in pages(r)}) == 1
