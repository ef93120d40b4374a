"""Continue-as-new at each workflow's busiest moment carries its whole state: the run state the
old run would hand over (queried on the closed run, which the worker replays) is, field by field,
the state the new run starts from; and what comes after (the second seat, a repeated request, a
repeated trigger) is judged as if no hand-over had happened."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any, TypeVar
from uuid import uuid4

from pydantic import BaseModel
from temporalio.client import Client, WorkflowExecutionStatus, WorkflowHandle
from temporalio.service import RPCError
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from client import operations
from client.operations import send_blind_spots, start_watch
from contract.follow_ups import RUN_STATE_QUERY as FOLLOW_UPS_STATE
from contract.follow_ups import FollowUpAck, FollowUpsInput, FollowUpsRun
from contract.rollback import (
    ESCALATION_ACK_UPDATE,
    RUN_STATE_QUERY,
    DecisionReply,
    EscalationAck,
    RollbackInput,
    RollbackOptions,
    RollbackRun,
    TriggerEvent,
)
from contract.watch import (
    WATCH_RUN_STATE_QUERY,
    BlindSpotEvent,
    CanaryReading,
    WatchInput,
    WatchState,
    watch_id,
)
from runbook.policy import Policy
from tests.policies import edited
from tests.workflows.helpers import rig
from tests.workflows.standins import HEALTHY, StandIns
from workflows.follow_ups import FollowUpsWorkflow
from workflows.registry import WORKFLOWS

M = TypeVar("M", bound=BaseModel)
HANDOVER = 90
QUERY_WAIT = timedelta(seconds=60)
QUERY_ATTEMPT = timedelta(seconds=5)
"""A query on a busy machine waits for its worker: a bound, not a pace."""
"""History events past which a run hands over: reached after a few signals."""
PAGED = {
    "escalation.ack_within": "10m",
    "people.sre-oncall.pagerduty_routing_key": "R" * 32,
}


async def runs(client: Client, workflow_id: str) -> list[str]:
    """The workflow's run ids, oldest first."""
    found = [
        wf.run_id async for wf in client.list_workflows(f'WorkflowId = "{workflow_id}"', limit=20)
    ]
    return list(reversed(found))


async def handed_over(
    env: WorkflowEnvironment, workflow_id: str, first_run: str, within: float = 60
) -> str:
    """Wait for `first_run` to continue as new (the time-skipping server's clock moving on
    meanwhile: a hand-over may wait for a message to settle); the new run's id."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while loop.time() < deadline:
        handle = env.client.get_workflow_handle(workflow_id, run_id=first_run)
        if (await handle.describe()).status == WorkflowExecutionStatus.CONTINUED_AS_NEW:
            # Its own successor (not whichever run is latest by now), once that run has had
            # its first workflow task: a query before it waits on a busy machine's worker.
            last = (await handle.fetch_history()).events[-1]
            new_run = last.workflow_execution_continued_as_new_event_attributes
            await first_task_done(env.client, workflow_id, new_run.new_execution_run_id, deadline)
            return str(new_run.new_execution_run_id)
        await env.sleep(timedelta(seconds=1))
    raise AssertionError(f"{workflow_id} did not continue as new")


async def state_of(
    env: WorkflowEnvironment,
    client: Client,
    workflow_id: str,
    run_id: str,
    query: str,
    model: type[M],
) -> M:
    """A run's state by query, with the clock held: while a query waits for the worker, the
    time-skipping server would otherwise race the new run's timers ahead of it."""
    handle = client.get_workflow_handle(workflow_id, run_id=run_id)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + QUERY_WAIT.total_seconds()
    with env.auto_time_skipping_disabled():
        while True:  # a query the test server loses is asked again within seconds
            try:
                return await handle.query(query, result_type=model, rpc_timeout=QUERY_ATTEMPT)
            except RPCError:
                if loop.time() > deadline:
                    raise


async def first_task_done(client: Client, workflow_id: str, run_id: str, deadline: float) -> None:
    handle = client.get_workflow_handle(workflow_id, run_id=run_id)
    loop = asyncio.get_running_loop()
    while loop.time() < deadline:
        history = await handle.fetch_history()
        if any(e.HasField("workflow_task_completed_event_attributes") for e in history.events):
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"{workflow_id}/{run_id}: its first workflow task never completed")


async def handed_input(client: Client, workflow_id: str, run_id: str, model: type[M]) -> M:
    """The input a run continued as new with (its last event), decoded."""
    handle = client.get_workflow_handle(workflow_id, run_id=run_id)
    history = await handle.fetch_history()
    last = history.events[-1].workflow_execution_continued_as_new_event_attributes
    [value] = await client.data_converter.decode(last.input.payloads, [model])
    return value  # type: ignore[no-any-return]


def differences(before: BaseModel, after: BaseModel, allowed: set[str]) -> dict[str, Any]:
    """Field by field, what differs (but the fields a hand-over itself changes)."""
    left, right = before.model_dump(mode="json"), after.model_dump(mode="json")
    return {
        k: (left[k], right.get(k)) for k in left if k not in allowed and left[k] != right.get(k)
    }


async def test_a_rollback_handed_over_in_an_open_window_keeps_everything(
    skipping_env: WorkflowEnvironment, policy: Policy
) -> None:
    paged = edited(policy, PAGED)
    standins = StandIns(treatment=50, request_decision_fails=True)
    async with rig(skipping_env, paged, standins, handover_events=HANDOVER) as r:
        handle = await r.trigger("quality_regression", reason="nDCG@10 0.51")
        await r.until(lambda s: s.state == "awaiting_decision" and bool(s.escalations))
        vote = await r.decide("approve", "qa-dri", update_id="vote-1")
        assert vote.accepted and "waiting for" in vote.message  # one seat of two
        standins.slack_down = True  # the acknowledgement's message stays unsent, handed over
        ack = await handle.execute_update(
            ESCALATION_ACK_UPDATE,
            EscalationAck(key="decision_request", person="sre-oncall", request_id="ack-1"),
            result_type=DecisionReply,
        )
        assert ack.accepted, ack.message
        raised = await operations.raise_trigger(
            r.client,
            task_queue=r.task_queue,
            policy=paged,
            deployment=r.deployment,
            event=TriggerEvent(
                trigger="quality_regression",
                raised_by="qa-dri",
                source="cli",
                delivery_key="raise-1",
            ),
            options=r.options(),
        )
        assert raised.reply is not None and raised.reply.accepted
        await r.until(lambda s: s.escalations[0].acked_at is not None)

        before = await r.client.get_workflow_handle(handle.id).query(
            RUN_STATE_QUERY, result_type=RollbackRun, rpc_timeout=QUERY_WAIT
        )
        first_run = (await r.client.get_workflow_handle(handle.id).describe()).run_id
        assert first_run == handle.result_run_id, "handed over too early for this test"
        for i in range(30):  # repeats join the window, and grow the history
            await r.trigger("quality_regression", source="alertmanager", delivery_key=f"a{i}")
        await skipping_env.sleep(timedelta(seconds=31))  # the hand-over waits for messages
        new_run = await handed_over(skipping_env, handle.id, first_run)

        old = await state_of(
            skipping_env, r.client, handle.id, first_run, RUN_STATE_QUERY, RollbackRun
        )
        new = await state_of(
            skipping_env, r.client, handle.id, new_run, RUN_STATE_QUERY, RollbackRun
        )
        assert old.stage == new.stage == "verdict"
        assert old.status.decision is not None and old.status.decision.votes == {
            "qa-dri": "approve"
        }
        assert {"vote-1", "ack-1"} <= set(old.replies) and "raise-1" in old.verdicts
        assert old.outbox, "a message was still on its way"
        assert len(old.deliveries) > len(before.deliveries)
        handed = await handed_input(r.client, handle.id, first_run, RollbackInput)
        # The whole state, as the old run knew it (the difference printed if not).
        assert handed.carried == old, differences(handed.carried, old, set())
        # The new run started from it: it has since judged the alerts carried in its inbox
        # (joined to the window, counted) and recorded the hand-over.
        assert old.inbox and not new.inbox
        assert differences(old, new, {"status", "inbox", "runs"}) == {}
        assert new.runs == [*old.runs, new_run]
        assert differences(old.status, new.status, {"timeline", "received"}) == {}
        assert new.status.timeline[: len(old.status.timeline)] == old.status.timeline
        assert sum(new.status.received.values()) == sum(old.status.received.values()) + len(
            old.inbox
        )

        # After it: a repeat is answered as a repeat, the second seat completes the decision.
        again = await r.decide("approve", "qa-dri", update_id="vote-1")
        assert again == vote
        standins.slack_down = False
        repeat = await operations.raise_trigger(
            r.client,
            task_queue=r.task_queue,
            policy=paged,
            deployment=r.deployment,
            event=TriggerEvent(
                trigger="quality_regression",
                raised_by="qa-dri",
                source="cli",
                delivery_key="raise-1",
            ),
            options=r.options(),
        )
        assert repeat.reply == raised.reply
        done = await r.decide("approve", "dri-search")
        assert done.accepted, done.message
        # The clock held while the status is polled: the time-skipping server otherwise races
        # the new run's timers (its 4-hour stability watch) against the queries.
        with skipping_env.auto_time_skipping_disabled():
            rolled = await r.until(lambda s: s.state == "following_up")
        assert rolled.decided_by == ["qa-dri", "dri-search"]
        assert standins.count("set_traffic_split") == 1


async def test_a_watch_handed_over_mid_sustain_keeps_its_clocks_blind_spot_and_events(
    skipping_env: WorkflowEnvironment, policy: Policy
) -> None:
    breaching = {**HEALTHY, "error_rate": 0.05}

    def reading(index: int) -> CanaryReading:
        return CanaryReading(values=breaching, treatment=25)

    standins = StandIns(treatment=25, canary=reading)
    task_queue = f"tq-{uuid4()}"
    deployment = f"search-{uuid4().hex[:8]}"
    options = RollbackOptions(ui_metadata=False, handover_events=30)  # a few readings
    client = skipping_env.client
    async with Worker(
        client, task_queue=task_queue, workflows=WORKFLOWS, activities=standins.activities()
    ):
        started = await start_watch(
            client, task_queue=task_queue, policy=policy, deployment=deployment, options=options
        )
        handle: WorkflowHandle[Any, Any] = client.get_workflow_handle(started.workflow_id)
        first_run = (await handle.describe()).run_id
        await send_blind_spots(
            client,
            task_queue=task_queue,
            policy=policy,
            deployment=deployment,
            events=[
                BlindSpotEvent(source="grafana", alertname="DatasourceNoData", delivery_key="g1")
            ],
            options=options,
        )
        await skipping_env.sleep(timedelta(seconds=75))  # readings every 15 s, 2 m to sustain
        new_run = await handed_over(skipping_env, watch_id(deployment), first_run)
        old = await state_of(
            skipping_env, client, handle.id, first_run, WATCH_RUN_STATE_QUERY, WatchState
        )
        new = await state_of(
            skipping_env, client, handle.id, new_run, WATCH_RUN_STATE_QUERY, WatchState
        )
        assert old.blind_spot is not None and old.seen == ["g1"]
        assert old.clocks["error_rate"].breaching_since is not None
        handed = await handed_input(client, handle.id, first_run, WatchInput)
        assert handed.state == old
        assert differences(old, new, {"clocks", "readings", "last_reading_at", "figures"}) == {}
        await handle.terminate("test over")


async def test_follow_ups_handed_over_keep_acknowledgements_and_incidents(
    skipping_env: WorkflowEnvironment, policy: Policy
) -> None:
    standins = StandIns()
    task_queue = f"tq-{uuid4()}"
    deployment = f"search-{uuid4().hex[:8]}"
    client = skipping_env.client
    reverted = await skipping_env.get_current_time()
    async with Worker(
        client, task_queue=task_queue, workflows=WORKFLOWS, activities=standins.activities()
    ):
        handle = await client.start_workflow(
            FollowUpsWorkflow.run,
            FollowUpsInput(
                deployment=deployment,
                policy=policy,
                options=RollbackOptions(ui_metadata=False, handover_events=HANDOVER),
                reverted_at=reverted,
                rollback_id=f"rollback-{deployment}",
            ),
            id=f"follow-ups-{deployment}",
            task_queue=task_queue,
        )
        first_run = handle.result_run_id
        assert first_run is not None
        await skipping_env.sleep(timedelta(hours=1, minutes=1))
        ack = await operations.acknowledge_follow_up(
            client,
            handle.id,
            FollowUpAck(
                follow_up=policy.follow_ups[0].id,
                person="sre-oncall",
                request_id="ack-1",
                made_at=await skipping_env.get_current_time(),
            ),
            update_id="ack-1",
        )
        for i in range(30):
            await handle.signal(
                "incident", TriggerEvent(trigger="error_rate", source="alertmanager", reason=str(i))
            )
        second = await operations.acknowledge_follow_up(
            client,
            handle.id,
            FollowUpAck(
                follow_up=policy.follow_ups[0].id,
                person="sre-oncall",
                request_id="ack-2",
                made_at=await skipping_env.get_current_time(),
            ),
        )
        assert not second.accepted  # already done
        new_run = await handed_over(skipping_env, handle.id, first_run)
        old = await state_of(
            skipping_env, client, handle.id, first_run, FOLLOW_UPS_STATE, FollowUpsRun
        )
        new = await state_of(
            skipping_env, client, handle.id, new_run, FOLLOW_UPS_STATE, FollowUpsRun
        )
        assert "ack-1" in old.replies and old.status.incident_count == 30
        handed = await handed_input(client, handle.id, first_run, FollowUpsInput)
        assert handed.carried == old  # the hand-over itself: the whole state, exactly
        # The new run may have moved on already (its clock skipped ahead while the test waited
        # for the hand-over: a follow-up fell due), so its state is compared on what it keeps.
        kept = {request: reply for request, reply in new.replies.items() if request in old.replies}
        assert kept == old.replies, differences(old, new, set())
        assert new.status.incident_count == old.status.incident_count
        again = await operations.acknowledge_follow_up(
            client,
            handle.id,
            FollowUpAck(follow_up=policy.follow_ups[0].id, person="sre-oncall", request_id="ack-1"),
            update_id="ack-1",
        )
        assert again == ack  # a repeat after the hand-over is answered as one
        await client.get_workflow_handle(handle.id).terminate("test over")
