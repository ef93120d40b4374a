"""Record the histories that `tests/histories/test_replay.py` replays.

    .venv/bin/python -m tests.histories.record [SCENARIO …]

Each scenario runs the real workflows on a real Temporal server (the dev server, or the
time-skipping one for the week of follow-ups) with the activity stand-ins, to completion, and
writes its history as JSON beside this file. Run it only for a *new* scenario, naming it: a
change that breaks an existing history must ship with `workflow.patched` (see the README's
"Changing a workflow while rollbacks run"), never with a re-recorded file.
"""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import Awaitable, Callable
from datetime import timedelta
from pathlib import Path

from temporalio.client import Client, WorkflowHandle
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment

from contract.follow_ups import ACK_UPDATE, FollowUpAck, FollowUpsInput
from contract.rollback import (
    COMMS_UPDATE,
    ESCALATION_ACK_UPDATE,
    CommsApprovalInput,
    DecisionReply,
    EscalationAck,
    RollbackOptions,
)
from runbook.loading import DEFAULT_POLICY, load_policy
from runbook.policy import Policy
from runbook.status import RollbackStatus
from tests.policies import edited
from tests.workflows.helpers import Rig, rig
from tests.workflows.standins import StandIns
from worker.binaries import temporal_cli, temporal_test_server
from workflows import search_attributes

HERE = Path(__file__).parent
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
    await r.until(lambda s: any(e.key == key and len(e.told) >= 2 for e in s.escalations))
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
}
"""`investigated_unordered.json` was recorded at 05c46ba, before the ordered decision messages
(the same steps as `investigated`, without the slow Slack): it replays the unpatched path."""


async def record_rollbacks(env: WorkflowEnvironment, policy: Policy, names: list[str]) -> None:
    for name, (scenario, changes) in SCENARIOS.items():
        if names and name not in names:
            continue
        scenario_policy = edited(policy, {**SHORT, **changes})
        async with rig(env, scenario_policy, StandIns(treatment=25), ui_metadata=True) as r:
            handle = await scenario(r)
            await env.client.get_workflow_handle(handle.id).result()
            await write(env.client, name, handle.id, first_run=handle.result_run_id)


async def record_follow_ups(env: WorkflowEnvironment, policy: Policy) -> None:
    from temporalio.worker import Worker

    from workflows.registry import WORKFLOWS

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
                options=RollbackOptions(ui_metadata=False),
                reverted_at=reverted,
                rollback_id="rollback-search-rec",
            ),
            id="follow-ups-search-rec",
            task_queue="record",
        )
        await env.sleep(timedelta(hours=1, minutes=5))
        reply = await handle.execute_update(
            ACK_UPDATE,
            FollowUpAck(follow_up="first_hour", person="dri-backend", request_id="ack-1"),
            result_type=DecisionReply,
        )
        assert reply.accepted, reply.message
        await handle.result()
        await write(env.client, "follow_ups", handle.id)


async def write(client: Client, name: str, workflow_id: str, first_run: str | None = None) -> None:
    """The first run's history (a scenario that continues as new keeps its first run)."""
    history = await client.get_workflow_handle(workflow_id, run_id=first_run).fetch_history()
    path = HERE / f"{name}.json"
    path.write_text(history.to_json() + "\n")
    print(f"{path.relative_to(HERE.parent.parent)}: {len(history.events)} events")


async def main(names: list[str]) -> None:
    unknown = set(names) - set(SCENARIOS) - {"follow_ups"}
    if unknown:
        raise SystemExit(f"unknown scenario(s) {sorted(unknown)}; known: {sorted(SCENARIOS)}")
    policy = load_policy(DEFAULT_POLICY)
    async with await WorkflowEnvironment.start_local(
        data_converter=pydantic_data_converter,
        dev_server_existing_path=temporal_cli(),
        search_attributes=search_attributes.ALL,
    ) as env:
        await record_rollbacks(env, policy, names)
    if names and "follow_ups" not in names:
        return
    async with await WorkflowEnvironment.start_time_skipping(
        data_converter=pydantic_data_converter, test_server_existing_path=temporal_test_server()
    ) as env:
        await record_follow_ups(env, policy)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1:]))
    sys.stdout.flush()
    os._exit(0)  # the Temporal runtime's threads can crash the interpreter's exit (sdk-python#300)
