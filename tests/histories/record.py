"""Record the histories that `tests/histories/test_replay.py` replays.

    .venv/bin/python -m tests.histories.record RELEASE [SCENARIO …]

Each scenario runs the real workflows on a real Temporal server (the dev server, or the
time-skipping one for the week of follow-ups) with the activity stand-ins, to completion, and
writes the history of each of its runs as JSON under `tests/histories/RELEASE/` (a scenario that
continues as new writes `NAME.json` for its first run and `NAME.next.json` for the next). Run it
at a release's tag, for that release, once; and later only for a *new* scenario, naming it: a
change that breaks a recorded history ships with `workflow.patched` (see the README's "Upgrading
the engine while rollbacks run"), never with a re-recorded file.
"""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import Awaitable, Callable
from datetime import timedelta
from pathlib import Path

from temporalio.client import Client, WorkflowExecutionStatus, WorkflowHandle
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from client import operations
from client.operations import send_blind_spots, start_watch, stop_watch
from contract.follow_ups import ACK_UPDATE, INCIDENT_SIGNAL, FollowUpAck, FollowUpsInput
from contract.rollback import (
    COMMS_UPDATE,
    ESCALATION_ACK_UPDATE,
    CommsApprovalInput,
    DecisionReply,
    EscalationAck,
    RollbackOptions,
    TriggerEvent,
)
from contract.watch import BlindSpotEvent, CanaryReading
from runbook.loading import DEFAULT_POLICY, load_policy
from runbook.policy import Policy
from runbook.status import RollbackStatus
from tests.policies import edited
from tests.workflows.helpers import Rig, rig
from tests.workflows.standins import HEALTHY, StandIns
from worker.binaries import temporal_cli, temporal_test_server
from workflows import search_attributes
from workflows.registry import WORKFLOWS

DEMO_POLICY = DEFAULT_POLICY.parent / "demo.yaml"

HERE = Path(__file__).parent
OUT = HERE
"""Where this recording writes (`tests/histories/RELEASE/`)."""
SHORT = {"decisions.after_rollback_watch": "2s", "decisions.after_deny_watch": "2s"}
"""Watches of 2 s, so that each run completes and its whole history is recorded."""

Scenario = Callable[[Rig], Awaitable[WorkflowHandle[object, RollbackStatus]]]


async def automated(r: Rig) -> WorkflowHandle[object, RollbackStatus]:
    handle = await r.trigger("error_rate", source="alertmanager", reason="error rate 5%")
    await r.until(lambda s: s.state == "following_up")
    await r.trigger("error_rate", source="alertmanager", delivery_key="repeat-1")
    return handle  # type: ignore[return-value]


async def two_person(r: Rig) -> WorkflowHandle[object, RollbackStatus]:
    r.standins.treatment = 50
    handle = await r.trigger("quality_regression", reason="nDCG@10 0.51")
    await r.until(lambda s: s.state == "awaiting_decision")
    assert (await r.decide("approve", "qa-dri")).accepted
    assert (await r.decide("approve", "dri-search")).accepted
    return handle  # type: ignore[return-value]


async def expired_window(r: Rig) -> WorkflowHandle[object, RollbackStatus]:
    handle = await r.trigger("gate_failure", reason="recall gate failed")
    await r.until(lambda s: s.state == "awaiting_decision")
    assert not (await r.decide("approve", "qa-dri")).accepted
    return handle  # type: ignore[return-value]


async def incomplete_step_2(r: Rig) -> WorkflowHandle[object, RollbackStatus]:
    r.standins.action_faults = {"stop_service:hedging-service": "refused", "flag:hedging": 2}
    return await r.trigger("error_rate", source="alertmanager")  # type: ignore[return-value]


async def comms_approval(r: Rig) -> WorkflowHandle[object, RollbackStatus]:
    r.standins.sla_breach = True
    handle = await r.trigger("error_rate", source="alertmanager")
    await r.until(lambda s: bool(s.comms))
    reply = await handle.execute_update(
        COMMS_UPDATE,
        CommsApprovalInput(action="approve", person="sprint-pm"),
        result_type=DecisionReply,
    )
    assert reply.accepted, reply.message
    return handle  # type: ignore[return-value]


async def denied_then_new_run(r: Rig) -> WorkflowHandle[object, RollbackStatus]:
    r.standins.treatment = 5
    handle = await r.trigger("gate_failure")
    await r.until(lambda s: s.state == "awaiting_decision")
    assert (await r.decide("deny", "dri-backend")).accepted
    await r.until(lambda s: s.state == "continued")
    return handle  # type: ignore[return-value]


async def escalation_climb(r: Rig) -> WorkflowHandle[object, RollbackStatus]:
    """Step 3 fails: the escalation pages the SRE on-call, climbs to the Engineering Manager,
    who acknowledges; the end resolves the pages."""
    r.standins.unhealthy = True
    handle = await r.trigger("error_rate", source="alertmanager")
    key = "failed:health_validation"
    # The reason's own record (v0.1.0) or the rollback's one incident it joined (v0.2.0).
    await r.until(
        lambda s: any(e.key in (key, "incident") and len(e.told) >= 2 for e in s.escalations)
    )
    reply = await handle.execute_update(
        ESCALATION_ACK_UPDATE,
        EscalationAck(key=key, person="eng-manager", via="cli", request_id="ack-esc-1"),
        result_type=DecisionReply,
    )
    assert reply.accepted, reply.message
    return handle  # type: ignore[return-value]


async def investigated(r: Rig) -> WorkflowHandle[object, RollbackStatus]:
    """Quality regression at 5 %: the QA DRI investigates (the deadline moves, Slack slow to
    show it), then approves; the close of the message goes out after the extension's change."""
    r.standins.treatment = 5
    r.standins.update_decision_seconds = 0.5
    handle = await r.trigger("quality_regression", reason="nDCG@10 0.51")
    await r.until(lambda s: s.state == "awaiting_decision")
    assert (await r.decide("investigating", "qa-dri")).accepted
    assert (await r.decide("approve", "qa-dri")).accepted
    return handle  # type: ignore[return-value]


async def handed_over_in_window(r: Rig) -> WorkflowHandle[object, RollbackStatus]:
    """Quality regression at 50 %: one seat filled, then a storm of alerts grows the history and
    the run continues as new with the window open; the second seat decides in the next run."""
    r.standins.treatment = 50
    r.handover_events = 60
    handle = await r.trigger("quality_regression", reason="nDCG@10 0.51")
    await r.until(lambda s: s.state == "awaiting_decision")
    assert (await r.decide("approve", "qa-dri", update_id="vote-1")).accepted
    first = handle.result_run_id
    for i in range(20):
        await r.trigger("quality_regression", source="alertmanager", delivery_key=f"storm-{i}")
    await until_handed_over(r, first)
    assert (await r.decide("approve", "dri-search")).accepted
    return handle  # type: ignore[return-value]


async def trigger_at_the_end(r: Rig) -> WorkflowHandle[object, RollbackStatus]:
    """An automatic rollback waits for its channel report at the end; a person's trigger then
    is answered at once and started the next run, which judges it."""
    r.standins.post_report_delay = 3.0
    handle = await r.trigger("error_rate", source="alertmanager")
    await r.until(lambda s: s.state == "rolled_back")
    raised = await operations.raise_trigger(
        r.client,
        task_queue=r.task_queue,
        policy=r.policy,
        deployment=r.deployment,
        event=TriggerEvent(
            trigger="operational_anomaly", raised_by="dri-search", source="cli", reason="odd"
        ),
        options=r.options(),
    )
    assert raised.reply is not None and raised.reply.accepted, raised
    return handle  # type: ignore[return-value]


async def handed_over_after_rollback(r: Rig) -> WorkflowHandle[object, RollbackStatus]:
    """Alerts keep coming during the stability watch (treatment at 0 %): counted, and the long
    history continues as new in the watch."""
    r.handover_events = 60
    handle = await r.trigger("error_rate", source="alertmanager")
    await r.until(lambda s: s.state == "following_up")
    first = handle.result_run_id
    for i in range(20):
        await r.trigger("error_rate", source="alertmanager", delivery_key=f"after-{i}")
    await until_handed_over(r, first)
    return handle  # type: ignore[return-value]


async def confirmed_after_step_5(r: Rig) -> WorkflowHandle[object, RollbackStatus]:
    """The load balancer refuses past Step 1's budget: Step 5 tells the audiences what is done
    and what is still being done; once the split is confirmed their own words go out, and the
    one incident is resolved (issue 20)."""
    r.standins.action_faults = {"traffic_split": 8}
    r.standins.sla_breach = True  # customer wording: asked for only once confirmed
    handle = await r.trigger("error_rate", source="alertmanager")
    await r.until(lambda s: bool(s.comms))
    reply = await handle.execute_update(
        COMMS_UPDATE,
        # The split was not read (it kept failing): the strictest phase, 100 %, whose
        # business-impact authority is the VP.
        CommsApprovalInput(action="approve", person="vp-eng"),
        result_type=DecisionReply,
    )
    assert reply.accepted, reply.message
    return handle  # type: ignore[return-value]


async def until_handed_over(r: Rig, run_id: str | None) -> None:
    for _ in range(400):
        description = await r.client.get_workflow_handle(
            f"rollback-{r.deployment}", run_id=run_id
        ).describe()
        if description.status == WorkflowExecutionStatus.CONTINUED_AS_NEW:
            return
        await asyncio.sleep(0.05)
    raise AssertionError("the run did not continue as new")


PAGED = {
    "escalation.ack_within": "1s",
    "people.sre-oncall.pagerduty_routing_key": "R" * 32,
    "people.eng-manager.pagerduty_routing_key": "E" * 32,
}

SCENARIOS: dict[str, tuple[Scenario, dict[str, str]]] = {
    "automated": (automated, {}),
    "two_person": (two_person, {}),
    "expired_window": (expired_window, {"decision_matrix.gate_failure.25.window": "1s"}),
    "incomplete_step_2": (incomplete_step_2, {}),
    "comms_approval": (comms_approval, {}),
    "denied": (denied_then_new_run, {}),
    "escalation_climb": (escalation_climb, PAGED),
    "investigated": (investigated, {}),
    "handed_over_in_window": (handed_over_in_window, {}),
    "trigger_at_the_end": (trigger_at_the_end, {}),
    "handed_over_after_rollback": (
        handed_over_after_rollback,
        {"decisions.after_rollback_watch": "15s"},
    ),
    "confirmed_after_step_5": (
        confirmed_after_step_5,
        {
            **PAGED,
            "procedure.0.steps.0.budget": "1s",
            "procedure.0.steps.1.budget": "1s",
            "decisions.after_rollback_watch": "5s",
        },
    ),
}


async def record_rollbacks(env: WorkflowEnvironment, policy: Policy, names: list[str]) -> None:
    for name, (scenario, changes) in SCENARIOS.items():
        if names and name not in names:
            continue
        scenario_policy = edited(policy, {**SHORT, **changes})
        async with rig(env, scenario_policy, StandIns(treatment=25), ui_metadata=True) as r:
            handle = await scenario(r)
            await env.client.get_workflow_handle(handle.id).result()
            await write(env.client, name, handle.id, handle.result_run_id)


async def record_follow_ups(env: WorkflowEnvironment, policy: Policy, names: list[str]) -> None:
    """A week of follow-ups on the time-skipping server; `follow_ups_handed_over` with a storm
    of incidents that makes it continue as new."""
    for name, incidents, events in (("follow_ups", 0, 2_000), ("follow_ups_handed_over", 40, 60)):
        if names and name not in names:
            continue
        standins = StandIns(baseline_healthy=False)
        reverted = await env.get_current_time()
        async with Worker(
            env.client, task_queue="record", workflows=WORKFLOWS, activities=standins.activities()
        ):
            handle = await env.client.start_workflow(
                "FollowUpsWorkflow",
                FollowUpsInput(
                    deployment="search-rec",
                    policy=policy,
                    options=RollbackOptions(ui_metadata=False, handover_events=events),
                    reverted_at=reverted,
                    rollback_id="rollback-search-rec",
                ),
                id=f"follow-ups-search-rec-{name}",
                task_queue="record",
            )
            await env.sleep(timedelta(hours=1, minutes=5))
            reply = await handle.execute_update(
                ACK_UPDATE,
                FollowUpAck(follow_up="first_hour", person="dri-backend", request_id="ack-1"),
                result_type=DecisionReply,
            )
            assert reply.accepted, reply.message
            for _ in range(incidents):
                await handle.signal(
                    INCIDENT_SIGNAL, TriggerEvent(trigger="error_rate", source="alertmanager")
                )
            await handle.result()
            await write(env.client, name, handle.id, handle.result_run_id)


async def record_watches(env: WorkflowEnvironment, names: list[str]) -> None:
    """The canary watch on the demo's short periods: a breach sustained and raised, a blind spot
    from Grafana told and closed, then stopped; `canary_watch_handed_over` continues as new on
    its way."""
    policy = load_policy(DEMO_POLICY)
    for name, events in (("canary_watch", 2_000), ("canary_watch_handed_over", 40)):
        if names and name not in names:
            continue

        def reading(index: int) -> CanaryReading:
            breaching = {**HEALTHY, "error_rate": 0.05} if 2 <= index < 12 else HEALTHY
            return CanaryReading(values=breaching, treatment=25)

        standins = StandIns(treatment=25, canary=reading)
        deployment = f"search-{name.replace('_', '-')}"
        options = RollbackOptions(ui_metadata=True, handover_events=events)
        async with Worker(
            env.client, task_queue="record", workflows=WORKFLOWS, activities=standins.activities()
        ):
            started = await start_watch(
                env.client,
                task_queue="record",
                policy=policy,
                deployment=deployment,
                options=options,
            )
            handle = env.client.get_workflow_handle(started.workflow_id)
            first = (await handle.describe()).run_id
            await send_blind_spots(
                env.client,
                task_queue="record",
                policy=policy,
                deployment=deployment,
                events=[BlindSpotEvent(source="grafana", alertname="DatasourceNoData")],
                options=options,
            )
            while standins.canary_readings < 14:
                await asyncio.sleep(0.2)
            await send_blind_spots(
                env.client,
                task_queue="record",
                policy=policy,
                deployment=deployment,
                events=[
                    BlindSpotEvent(
                        source="grafana", alertname="DatasourceNoData", status="resolved"
                    )
                ],
                options=options,
            )
            assert any(c[0] == "raise_from_watch" for c in standins.calls)
            await stop_watch(env.client, deployment)
            await handle.result()
            await write(env.client, name, handle.id, first)


async def write(client: Client, name: str, workflow_id: str, first_run: str | None) -> None:
    """Every run's history, from the first: `NAME.json`, then `NAME.next.json`."""
    run_id, suffix = first_run, ""
    while True:
        history = await client.get_workflow_handle(workflow_id, run_id=run_id).fetch_history()
        path = OUT / f"{name}{suffix}.json"
        path.write_text(history.to_json() + "\n")
        print(f"{path.relative_to(HERE.parent.parent)}: {len(history.events)} events")
        last = history.events[-1]
        if not last.HasField("workflow_execution_continued_as_new_event_attributes"):
            return
        run_id = last.workflow_execution_continued_as_new_event_attributes.new_execution_run_id
        suffix += ".next"


OTHERS = ("follow_ups", "follow_ups_handed_over", "canary_watch", "canary_watch_handed_over")


async def main(release: str, names: list[str]) -> None:
    global OUT
    unknown = set(names) - set(SCENARIOS) - set(OTHERS)
    if unknown:
        raise SystemExit(f"unknown scenario(s) {sorted(unknown)}; known: {sorted(SCENARIOS)}")
    OUT = HERE / release
    OUT.mkdir(exist_ok=True)
    # Identities taken as said: the scenarios act as anyone (test_identity*.py sign).
    policy = load_policy(DEFAULT_POLICY.parent / "asserted.yaml")
    async with await WorkflowEnvironment.start_local(
        data_converter=pydantic_data_converter,
        dev_server_existing_path=temporal_cli(),
        search_attributes=search_attributes.ALL,
    ) as env:
        await record_rollbacks(env, policy, names)
        await record_watches(env, names)
    async with await WorkflowEnvironment.start_time_skipping(
        data_converter=pydantic_data_converter, test_server_existing_path=temporal_test_server()
    ) as env:
        await record_follow_ups(env, policy, names)


if __name__ == "__main__":
    if len(sys.argv) < 2 or not sys.argv[1].startswith("v"):
        raise SystemExit(__doc__)
    asyncio.run(main(sys.argv[1], sys.argv[2:]))
    sys.stdout.flush()
    os._exit(0)  # the Temporal runtime's threads can crash the interpreter's exit (sdk-python#300)
