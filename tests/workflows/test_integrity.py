"""A rollback that is done, or says exactly what is not (issue 9), on the time-skipping server.

Each test is one finding: an action refused or still retrying, a late click while no worker ran,
a trigger at the end of a run, a new canary after the rollback, a storm in the watch, and a
failure inside a background task after the procedure ended.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
from temporalio.client import WorkflowExecutionStatus
from temporalio.testing import WorkflowEnvironment

from client import operations
from contract.rollback import (
    COMMS_UPDATE,
    DECISION_SIGNAL,
    TRIGGER_SIGNAL,
    CommsApprovalInput,
    DecisionInput,
    DecisionReply,
    RollbackOptions,
    TriggerBatch,
    TriggerEvent,
)
from runbook.policy import Policy
from runbook.status import RollbackStatus
from tests.policies import edited
from tests.workflows.helpers import kinds, rig
from tests.workflows.standins import StandIns

pytestmark = pytest.mark.timeout(60)


def escalations(status: RollbackStatus) -> list[str]:
    return [e.message for e in status.timeline if e.kind == "escalation"]


def step(status: RollbackStatus, step_id: str):  # type: ignore[no-untyped-def]
    return next(s for s in status.steps if s.id == step_id)


async def test_a_refused_action_stops_only_itself_and_the_rollback_is_incomplete(
    skipping_env: WorkflowEnvironment, policy: Policy
) -> None:
    refusing = StandIns(treatment=25, action_faults={"stop_service:hedging-service": "refused"})
    async with rig(skipping_env, policy, refusing) as r:
        await r.trigger("error_rate")
        final = await r.result()

    assert final.state == "incomplete" and final.outcome == "incomplete"
    states = {a.id: a.state for a in final.actions}
    assert states == {
        "traffic_split": "confirmed",
        "stop_service:hedging-service": "refused",
        "config:ta_nra_early_stop": "confirmed",
        "flag:hedging": "confirmed",
        "flag:ta_nra_optimization": "confirmed",
        "flush_cache": "confirmed",
    }
    refusal = "TargetRejected: stop_service:hedging-service: target answered 404"
    assert final.outcome_detail == (
        f"Stop hedging-service (`systemctl stop hedging-service`) refused: {refusal}"
    )
    # Refused at once (one attempt), escalated with the call and the answer; nothing else held.
    assert refusing.count("stop_service") == 1
    assert escalations(final) == [
        f"Step 2: Configuration Revert: `systemctl stop hedging-service` refused by the target "
        f"for {r.deployment}: {refusal}"
    ]
    assert step(final, "configuration_revert").outcome == "failed"
    assert [s.id for s in final.steps][-1] == "recovery_planning"
    [own, generic, *_] = final.response_times
    assert (own.id, own.target_seconds, own.met) == ("trigger:error_rate", 30.0, True)
    assert (generic.id, generic.target_seconds) == ("automated_rollback", 60.0)


async def test_an_action_still_retrying_hands_over_on_time_and_completes_the_rollback_later(
    skipping_env: WorkflowEnvironment, policy: Policy
) -> None:
    flaky = StandIns(treatment=25, action_faults={"flag:hedging": 9})  # 9 answers of 503
    async with rig(skipping_env, policy, flaky) as r:
        await r.trigger("error_rate")
        final = await r.result()

    revert, health = step(final, "configuration_revert"), step(final, "health_validation")
    # Step 3 started when Step 2's budget passed, not when its last action was confirmed.
    handed_over = health.started_at - revert.started_at
    assert timedelta(seconds=20) <= handed_over < timedelta(seconds=20.1)
    assert revert.late and revert.outcome == "ok"
    assert revert.ended_at is not None and revert.ended_at > health.started_at
    assert flaky.count("disable_flag") == 9 + 1 + 1  # hedging's failures and success, the other
    assert escalations(final) == [
        "Step 2: Configuration Revert missed its budget of 20s; still retrying: "
        "`feature-flag --disable hedging` (TargetUnavailable: flag:hedging: target answered 503)"
    ]
    outcomes = [e.message for e in final.timeline if e.kind == "outcome"]
    assert outcomes[0].startswith("outcome: incomplete: Feature flag hedging off")
    assert outcomes[-1].startswith("outcome: rolled back: every Phase 1 action confirmed")
    assert "(after retrying: Feature flag hedging off)" in final.outcome_detail
    assert final.state == "rolled_back"


@pytest.mark.parametrize(
    ("made", "accepted"),
    [(timedelta(seconds=-0.5), True), (timedelta(0), False), (timedelta(seconds=0.4), False)],
)
async def test_a_click_stored_while_no_worker_ran_is_judged_by_when_it_was_made(
    local_env: WorkflowEnvironment, policy: Policy, made: timedelta, accepted: bool
) -> None:
    """The deadline passes while no worker runs; a deny stored meanwhile (as the gateway stores
    a click) counts only if it was made before the deadline. On the dev server: the test server
    stops its clock while a workflow task waits for a worker."""
    quick = edited(policy, {"decision_matrix.gate_failure.25.window": "1s"})
    async with rig(local_env, quick, StandIns(treatment=25), worker=False) as r:
        async with r.worker():
            handle = await r.trigger("gate_failure")
            opened = await r.until(lambda s: s.state == "awaiting_decision")
        assert opened.decision is not None
        deadline = opened.decision.deadline
        await asyncio.sleep(1.5)  # no worker sees the deadline pass
        deny = DecisionInput(
            action="deny",
            person="dri-backend",
            via="slack",
            made_at=deadline + made,
            reason="the dip is noise",
        )
        await handle.signal(DECISION_SIGNAL, deny)
        async with r.worker():
            final = await r.until(lambda s: s.state in ("continued", "following_up"))

    if accepted:
        assert final.state == "continued" and r.standins.count("set_traffic_split") == 0
        assert final.last_decision is not None
        assert final.last_decision.outcome == "denied: canary continues"
    else:
        assert final.state == "following_up" and r.standins.count("set_traffic_split") == 1
        assert final.decided_by == ["default"]
        assert final.instants["decision"] == deadline
        [refused] = [e.message for e in final.timeline if e.kind == "decision_rejected"]
        assert refused.endswith(
            f"rejected: made at {deadline + made:%H:%M:%S} UTC, the window closed at "
            f"{deadline:%H:%M:%S} UTC; the default, rollback, applied"
        )


async def test_a_trigger_that_arrives_while_a_run_ends_starts_a_new_run(
    local_env: WorkflowEnvironment, policy: Policy
) -> None:
    """The deny watch has ended and the run waits for its channel report: an error-rate alert
    then is handed to a new run, which rolls back (on the dev server, in real time)."""
    quick = edited(policy, {"decisions.after_deny_watch": "1s"})
    slow_report = StandIns(treatment=5, post_report_delay=2.0)
    async with rig(local_env, quick, slow_report) as r:
        first = await r.trigger("gate_failure")
        await r.until(lambda s: s.state == "awaiting_decision")
        assert (await r.decide("deny", "dri-backend")).accepted
        await r.until(lambda s: "watch_ended" in kinds(s))
        await r.trigger("error_rate", source="alertmanager")
        rolled = await r.until(lambda s: s.state == "following_up", timeout=20)

        ended = await local_env.client.get_workflow_handle(
            first.id, run_id=first.result_run_id
        ).describe()
        assert ended.status == WorkflowExecutionStatus.CONTINUED_AS_NEW
    assert slow_report.count("set_traffic_split") == 1
    assert rolled.trigger == "error_rate" and rolled.mode == "auto"


async def test_a_new_canary_after_the_rollback_is_rolled_back_again(
    skipping_env: WorkflowEnvironment, policy: Policy
) -> None:
    standins = StandIns(treatment=25)
    async with rig(skipping_env, policy, standins) as r:
        await r.trigger("error_rate")
        await r.until(lambda s: s.state == "following_up" and s.follow_ups_id is not None)
        standins.treatment = 5  # the deployment is put back into canary
        await r.trigger("error_rate", source="alertmanager")
        again = await r.until(lambda s: s.phase == 5 and s.state == "following_up", timeout=20)
    assert standins.count("set_traffic_split") == 2
    assert again.mode == "auto" and again.decided_by == ["system"]


async def test_a_storm_in_the_watch_escalates_each_new_kind_once(
    skipping_env: WorkflowEnvironment, policy: Policy
) -> None:
    async with rig(skipping_env, policy, StandIns(treatment=25)) as r:
        handle = await r.trigger("error_rate")
        await r.until(lambda s: s.state == "following_up" and s.follow_ups_id is not None)
        storm = [
            TriggerEvent(trigger=trigger, source="alertmanager", delivery_key=f"{trigger}:{i}")
            for i in range(100)
            for trigger in ("error_rate", "p99_latency")
        ]
        for batch in range(0, len(storm), 50):
            await handle.signal(TRIGGER_SIGNAL, TriggerBatch(events=storm[batch : batch + 50]))
        status = await r.until(lambda s: s.received.get("p99_latency") == 100)

    assert status.received == {"error_rate": 101, "p99_latency": 100}
    assert [e.split(" trigger")[0] for e in escalations(status)] == [
        "new error_rate",
        "new p99_latency",
    ]
    assert r.standins.count("escalate") == 2
    assert r.standins.count("set_traffic_split") == 1


async def test_a_failure_inside_a_background_task_after_the_procedure_is_awaited(
    skipping_env: WorkflowEnvironment, policy: Policy
) -> None:
    """The approved customer wording fails to send after Phase 3: the escalation it causes is
    still sent before the run completes (a drill ends right after the procedure)."""
    standins = StandIns(treatment=25, sla_breach=True, send_audience_fails=True)
    async with rig(skipping_env, policy, standins) as r:
        await operations.send_trigger(
            skipping_env.client,
            task_queue=r.task_queue,
            policy=policy,
            deployment=r.deployment,
            event=TriggerEvent(trigger="error_rate", source="drill"),
            options=RollbackOptions(ui_metadata=False, drill=True),
        )
        handle = skipping_env.client.get_workflow_handle(f"rollback-{r.deployment}")
        await r.until(lambda s: bool(s.comms))
        reply = await handle.execute_update(
            COMMS_UPDATE,
            CommsApprovalInput(action="approve", person="sprint-pm"),
            result_type=DecisionReply,
        )
        assert reply.accepted, reply.message
        final = await skipping_env.client.get_workflow_handle(
            handle.id, result_type=RollbackStatus
        ).result()

    assert "Customer Comms: the approved message could not be sent" in escalations(final)
    assert standins.count("escalate") == 1


async def test_a_person_raising_a_trigger_gets_the_rollback_verdict(
    local_env: WorkflowEnvironment, policy: Policy
) -> None:
    async with rig(local_env, policy, StandIns(treatment=25), ui_metadata=True) as r:

        async def raise_(person: str) -> operations.Raised:
            return await operations.raise_trigger(
                local_env.client,
                task_queue=r.task_queue,
                policy=policy,
                deployment=r.deployment,
                event=TriggerEvent(
                    trigger="operational_anomaly", reason="odd", source="cli", raised_by=person
                ),
                options=RollbackOptions(ui_metadata=True),
            )

        refused = await raise_("qa-dri")
        assert refused.reply is not None and not refused.reply.accepted
        assert refused.reply.message == (
            "Trigger 6: Operational Anomaly must be raised by a Sprint DRI; QA DRI (qa-dri) "
            "is not one"
        )
        gone = await local_env.client.get_workflow_handle(
            f"rollback-{r.deployment}", result_type=RollbackStatus
        ).result()
        assert gone.state == "rejected" and r.standins.count("set_traffic_split") == 0

        taken = await raise_("dri-backend")
        assert taken.reply is not None and taken.reply.accepted, taken.reply
        assert taken.reply.message.startswith(f"rollback of {r.deployment} started by ")
        await r.until(lambda s: s.state == "following_up")
        assert r.standins.count("set_traffic_split") == 1
        await asyncio.sleep(0)


async def test_a_wording_approval_stored_after_its_deadline_is_refused(
    local_env: WorkflowEnvironment, policy: Policy
) -> None:
    """The customer wording's window closes while no worker runs; an approval made after it
    (stored as the gateway stores a click) is refused and the default (hold) applies."""
    quick = edited(policy, {"notifications.audiences.3.approval_window": "1s"})
    standins = StandIns(treatment=25, sla_breach=True)
    async with rig(local_env, quick, standins, worker=False) as r:
        async with r.worker():
            handle = await r.trigger("error_rate")
            held = await r.until(lambda s: bool(s.comms))
        deadline = held.comms[0].deadline
        await asyncio.sleep(1.5)
        late = CommsApprovalInput(
            action="approve",
            person="sprint-pm",
            via="slack",
            made_at=deadline + timedelta(seconds=0.3),
        )
        await handle.signal("comms_approval", late)
        async with r.worker():
            final = await r.until(lambda s: s.comms[0].outcome != "pending")
            await asyncio.sleep(0.2)
            final = await r.status()

    assert final.comms[0].outcome == "expired" and not final.comms[0].sent
    assert standins.count("send_audience") == 0
    [refused] = [e.message for e in final.timeline if e.kind == "comms_rejected"]
    assert "the approval window closed at" in refused and "the default, hold, applied" in refused
