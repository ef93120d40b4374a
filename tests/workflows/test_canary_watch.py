"""The canary watch on the time-skipping server: every sustain edge, blind spots, the idle canary,
the bake time, the gates, a captured baseline, and sustain clocks carried over continue-as-new.

Readings come from a script (reading number → values) at the plan's 15 s interval; Trigger 1's
sustain is the plan's 2 minutes, so it is sustained at the 9th breaching reading (8 intervals).
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import timedelta
from uuid import uuid4

from temporalio.client import WorkflowHandle
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from client import operations
from contract.rollback import RollbackOptions
from contract.watch import (
    STOP_SIGNAL,
    WATCH_STATUS_QUERY,
    BlindSpotEvent,
    CanaryReading,
    WatchInput,
    WatchRaiseInput,
    WatchStatus,
    watch_id,
)
from runbook.policy import Policy
from tests.policies import edited
from tests.workflows.standins import HEALTHY, StandIns
from workflows.registry import WORKFLOWS

INTERVAL = 15
BREACH = {**HEALTHY, "error_rate": 0.013}
DOWN = CanaryReading(values={}, treatment=None, error="metrics: prometheus unreachable")


def script(
    *spans: tuple[int, dict[str, float | None] | CanaryReading], treatment: int = 25
) -> Callable[[int], CanaryReading]:
    """`(count, values)` spans, in order; healthy after the last."""

    def reading(index: int) -> CanaryReading:
        for count, values in spans:
            if index < count:
                if isinstance(values, CanaryReading):
                    return values
                return CanaryReading(values=values, treatment=treatment)
            index -= count
        return CanaryReading(values=HEALTHY, treatment=treatment)

    return reading


@dataclass
class Watch:
    env: WorkflowEnvironment
    standins: StandIns
    handle: WorkflowHandle[object, WatchStatus]

    async def after(self, readings: int) -> WatchStatus:
        """The status once about `readings` more intervals have passed."""
        await self.env.sleep(timedelta(seconds=INTERVAL * readings))
        return await self.status()

    async def status(self) -> WatchStatus:
        return await self.handle.query(WATCH_STATUS_QUERY, result_type=WatchStatus)

    def raised(self) -> list[WatchRaiseInput]:
        return [inp for name, inp in self.standins.calls if name == "raise_from_watch"]

    def said(self) -> list[str]:
        return [inp.text for name, inp in self.standins.calls if name == "post_progress"]


@asynccontextmanager
async def watching(
    env: WorkflowEnvironment, policy: Policy, standins: StandIns
) -> AsyncIterator[Watch]:
    task_queue = f"tq-{uuid4()}"
    deployment = f"search-{uuid4().hex[:8]}"
    async with Worker(
        env.client, task_queue=task_queue, workflows=WORKFLOWS, activities=standins.activities()
    ):
        handle = await env.client.start_workflow(
            "CanaryWatchWorkflow",
            WatchInput(
                deployment=deployment, policy=policy, options=RollbackOptions(ui_metadata=False)
            ),
            id=watch_id(deployment),
            task_queue=task_queue,
            result_type=WatchStatus,
        )
        try:
            yield Watch(env, standins, handle)
        finally:
            with contextlib.suppress(Exception):  # it may have ended by itself (baked)
                await handle.terminate("test finished")


async def test_one_reading_short_of_the_sustain_never_triggers(
    skipping_env: WorkflowEnvironment, policy: Policy
) -> None:
    # 8 breaching readings span 7 intervals = 105 s < 2 min.
    standins = StandIns(canary=script((8, BREACH)))
    async with watching(skipping_env, policy, standins) as w:
        status = await w.after(20)
        assert not w.raised()
        [rate] = [c for c in status.conditions if c.id == "error_rate"]
        assert rate.state == "healthy" and rate.sustained_seconds == 0


async def test_a_breach_that_lasts_triggers_exactly_at_the_period(
    skipping_env: WorkflowEnvironment, policy: Policy
) -> None:
    standins = StandIns(canary=script((30, BREACH)))
    async with watching(skipping_env, policy, standins) as w:
        await w.after(7.5)  # 8 readings: one short
        assert not w.raised()
        await w.after(1)  # the 9th: 8 intervals = 2 min
        [raised] = w.raised()
        event = raised.event
        assert event.trigger == "error_rate" and event.source == "watch"
        assert event.evidence["value"] == "0.013" and event.evidence["threshold"] == "> 0.005"
        assert event.evidence["sustained"] == "2m"
        assert event.delivery_key and event.delivery_key.startswith(f"watch:{raised.deployment}:")
        assert "sustain 2m" in event.reason
        await w.after(10)  # still breaching: raised once per breach
        assert len(w.raised()) == 1
        [rate] = [c for c in (await w.status()).conditions if c.id == "error_rate"]
        assert rate.state == "breaching"


async def test_a_gap_of_unreadable_readings_neither_counts_nor_resets(
    skipping_env: WorkflowEnvironment, policy: Policy
) -> None:
    """4 breaching (45 s), 2 unreadable (not counted, no reset), then breaching: sustained at
    45 s + 75 s, the 6th breaching reading after the gap (reading 11, not reading 8)."""
    gap = {**BREACH, "error_rate": None}
    standins = StandIns(canary=script((4, BREACH), (2, gap), (30, BREACH)))
    async with watching(skipping_env, policy, standins) as w:
        await w.after(10.5)  # readings 0..10
        assert not w.raised()
        await w.after(1)  # reading 11
        [raised] = w.raised()
        assert raised.event.evidence["sustained"] == "2m"
        assert not any("Monitoring blind spot" in t for t in w.said())  # 2 < 3 intervals


async def test_recovery_before_the_period_ends_restarts_the_clock(
    skipping_env: WorkflowEnvironment, policy: Policy
) -> None:
    standins = StandIns(canary=script((6, BREACH), (1, HEALTHY), (30, BREACH)))
    async with watching(skipping_env, policy, standins) as w:
        await w.after(14.5)  # readings 0..14: the new breach (from 7) has lasted 7 intervals
        assert not w.raised()
        await w.after(1)
        assert len(w.raised()) == 1


async def test_unreadable_readings_are_a_blind_spot_announced_once(
    skipping_env: WorkflowEnvironment, policy: Policy
) -> None:
    standins = StandIns(canary=script((8, DOWN)))
    async with watching(skipping_env, policy, standins) as w:
        status = await w.after(6)
        assert status.blind_spot is not None and status.blind_spot.source == "watch"
        assert "prometheus unreachable" in status.blind_spot.reason
        assert not w.raised()
        status = await w.after(6)
        assert status.blind_spot is None and status.past_blind_spots == 1
        opened = [t for t in w.said() if "Monitoring blind spot" in t]
        back = [t for t in w.said() if "Readings are back" in t]
        assert len(opened) == 1 and len(back) == 1
        assert "rollback trigger -d" in opened[0] and "operational_anomaly" in opened[0]


async def test_no_canary_traffic_is_idle_not_blind(
    skipping_env: WorkflowEnvironment, policy: Policy
) -> None:
    quiet = {**HEALTHY, "treatment:ndcg_at_10": None, "treatment:sla_recall_at_50": None}
    standins = StandIns(canary=script((20, quiet), treatment=0))
    async with watching(skipping_env, policy, standins) as w:
        status = await w.after(10)
        assert status.blind_spot is None
        assert {c.state for c in status.conditions} == {"idle"}


async def test_at_full_traffic_and_healthy_for_the_bake_time_the_watch_ends(
    skipping_env: WorkflowEnvironment, policy: Policy
) -> None:
    baked = edited(policy, {"watch.bake_time": "2m"})
    standins = StandIns(canary=script(treatment=100))
    async with watching(skipping_env, baked, standins) as w:
        final = await w.handle.result()
        assert final.ended == "baked: at 100% and healthy for 2m"
        assert any("the canary watch ends" in t for t in w.said())


async def test_a_failing_primary_gate_raises_gate_failure(
    skipping_env: WorkflowEnvironment, policy: Policy
) -> None:
    failing = {**HEALTHY, "treatment:sla_recall_at_50": 0.91}
    standins = StandIns(canary=script((40, failing)))
    async with watching(skipping_env, policy, standins) as w:
        await w.after(20.5)  # 5 min sustain: 20 intervals
        [raised] = w.raised()
        assert raised.event.trigger == "gate_failure"
        assert raised.event.evidence["condition"] == "gate:sla_recall"
        assert raised.event.evidence["threshold"] == ">= 0.95"


async def test_a_captured_baseline_is_the_figure_at_the_watchs_start(
    skipping_env: WorkflowEnvironment, policy: Policy
) -> None:
    captured = edited(policy, {"watch.derived.p99_latency_increase.baseline": "captured"})
    # The control's p99 rises with the treatment's (shared shards): against the control the
    # canary looks fine, against the figure captured before it grew it is 39 % slower.
    slow = {**HEALTHY, "p99_latency_seconds": 0.25, "control:p99_latency_seconds": 0.25}
    standins = StandIns(canary=script((1, HEALTHY), (40, slow)))
    async with watching(skipping_env, captured, standins) as w:
        await w.after(21.5)  # 5 min sustain from reading 1
        [raised] = w.raised()
        assert raised.event.trigger == "p99_latency"
        assert raised.event.evidence["p99_latency_seconds"] == "0.18"
        assert raised.event.evidence["value"] == "0.388889"
    standins = StandIns(canary=script((1, HEALTHY), (40, slow)))
    async with watching(skipping_env, policy, standins) as w:  # against the control
        await w.after(25)
        assert not w.raised()


async def test_the_sustain_clock_survives_continue_as_new(
    skipping_env: WorkflowEnvironment, policy: Policy
) -> None:
    """READINGS_PER_RUN readings a run: a breach that starts before the handover is raised
    after it, at the same reading as without one."""
    standins = StandIns(canary=script((145, HEALTHY), (30, BREACH)))
    async with watching(skipping_env, policy, standins) as w:
        first_run = (await w.handle.describe()).run_id
        await w.after(152.5)  # readings 0..152: 145..152 breaching = 7 intervals
        assert not w.raised()
        await w.after(1)  # reading 153: 8 intervals
        [raised] = w.raised()
        assert raised.event.evidence["breaching_since"]
        latest = skipping_env.client.get_workflow_handle(w.handle.id)
        assert (await latest.describe()).run_id != first_run
        status = await latest.query(WATCH_STATUS_QUERY, result_type=WatchStatus)
        assert status.readings >= 154 and len(status.raised) == 1


async def test_stop_ends_the_watch(skipping_env: WorkflowEnvironment, policy: Policy) -> None:
    async with watching(skipping_env, policy, StandIns(treatment=25)) as w:
        # Between two readings: the time-skipping server fails a timer cancelled at the very
        # instant it fires ("invalid history builder state"); the real server does not.
        await w.after(2.5)
        await w.handle.signal(STOP_SIGNAL)
        final = await w.handle.result()
        assert final.ended == "stopped" and final.readings >= 2


async def test_a_watch_a_blind_spot_started_announces_itself_when_asked_to_judge(
    skipping_env: WorkflowEnvironment, policy: Policy
) -> None:
    """Grafana's NoData started the watch (a record only); `rollback watch -d D` then asks it
    to judge the canary: the channel hears at once that the canary is watched, and from when."""
    standins = StandIns(treatment=25)
    task_queue, deployment = f"tq-{uuid4()}", f"search-{uuid4().hex[:8]}"
    client = skipping_env.client
    async with Worker(
        client, task_queue=task_queue, workflows=WORKFLOWS, activities=standins.activities()
    ):
        options = RollbackOptions(ui_metadata=False)
        await operations.send_blind_spots(
            client,
            task_queue=task_queue,
            policy=policy,
            deployment=deployment,
            events=[BlindSpotEvent(source="grafana", alertname="DatasourceNoData")],
            options=options,
        )
        handle = client.get_workflow_handle(watch_id(deployment), result_type=WatchStatus)
        w = Watch(skipping_env, standins, handle)
        before = await w.status()
        assert not before.evaluating and before.watching_since is None
        started = await operations.start_watch(
            client, task_queue=task_queue, policy=policy, deployment=deployment, options=options
        )
        assert not started.started  # the running watch was told, not a second one started
        now = await w.after(1)
        assert now.evaluating and now.watching_since is not None
        assert any(text.startswith("👀 Canary watch of") for text in w.said()), w.said()
        await handle.terminate("test finished")
