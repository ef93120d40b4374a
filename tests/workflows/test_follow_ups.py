"""Post-rollback follow-ups on the time-skipping server: each falls due on time (first hour,
2 h baseline, 4 h no new incident, 24 h RCA, one week); an acknowledged one goes quiet; an
unacknowledged one reminds, then escalates along the escalation path."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from uuid import uuid4

from temporalio.client import WorkflowHandle
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from activities.models import EscalationInput, FollowUpNoticeInput
from contract.follow_ups import ACK_UPDATE, INCIDENT_SIGNAL, FollowUpAck, FollowUpsInput
from contract.rollback import STATUS_QUERY, DecisionReply, RollbackOptions, TriggerEvent
from runbook.policy import Policy
from runbook.status import FollowUpItem, FollowUpsStatus
from tests.workflows.helpers import rig
from tests.workflows.standins import StandIns
from workflows.follow_ups import FollowUpsWorkflow
from workflows.registry import WORKFLOWS

HOUR = timedelta(hours=1)
SECOND = timedelta(seconds=1)


@dataclass
class FollowUps:
    env: WorkflowEnvironment
    handle: WorkflowHandle[FollowUpsWorkflow, FollowUpsStatus]
    standins: StandIns
    reverted_at: datetime

    async def at(self, offset: timedelta) -> None:
        """Let the server's clock run to `offset` after the rollback."""
        gap = self.reverted_at + offset - await self.env.get_current_time()
        if gap > timedelta(0):
            await self.env.sleep(gap)

    async def status(self) -> FollowUpsStatus:
        return await self.handle.query(STATUS_QUERY, result_type=FollowUpsStatus)

    async def until(
        self,
        check: Callable[[FollowUpsStatus], bool],
        timeout: float = 10.0,  # noqa: ASYNC109
    ) -> FollowUpsStatus:
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            current = await self.status()
            if check(current):
                return current
            if asyncio.get_running_loop().time() > deadline:
                raise AssertionError(f"condition not met in {timeout}s; last status: {current}")
            await asyncio.sleep(0.05)

    async def ack(
        self,
        follow_up: str,
        person: str,
        request_id: str | None = None,
        made_at: datetime | None = None,
    ) -> DecisionReply:
        return await self.handle.execute_update(
            ACK_UPDATE,
            FollowUpAck(follow_up=follow_up, person=person, request_id=request_id, made_at=made_at),
            id=request_id,
            result_type=DecisionReply,
        )

    def notices(self) -> list[FollowUpNoticeInput]:
        return [inp for name, inp in self.standins.calls if name == "follow_up_notice"]

    def escalations(self) -> list[EscalationInput]:
        return [inp for name, inp in self.standins.calls if name == "escalate"]


def item(status: FollowUpsStatus, follow_up: str) -> FollowUpItem:
    return next(i for i in status.items if i.id == follow_up)


def state_of(follow_up: str, *states: str) -> Callable[[FollowUpsStatus], bool]:
    return lambda s: item(s, follow_up).state in states


def kinds(status: FollowUpsStatus) -> list[str]:
    return [entry.kind for entry in status.timeline]


@asynccontextmanager
async def follow_ups(
    env: WorkflowEnvironment, policy: Policy, standins: StandIns | None = None
) -> AsyncIterator[FollowUps]:
    standins = standins or StandIns()
    task_queue = f"tq-{uuid4()}"
    deployment = f"search-{uuid4().hex[:8]}"
    reverted = await env.get_current_time()
    async with Worker(
        env.client, task_queue=task_queue, workflows=WORKFLOWS, activities=standins.activities()
    ):
        handle = await env.client.start_workflow(
            FollowUpsWorkflow.run,
            FollowUpsInput(
                deployment=deployment,
                policy=policy,
                options=RollbackOptions(ui_metadata=False),
                reverted_at=reverted,
                rollback_id=f"rollback-{deployment}",
            ),
            id=f"follow-ups-{deployment}-{reverted:%Y%m%dT%H%M%S}",
            task_queue=task_queue,
        )
        try:
            yield FollowUps(env, handle, standins, reverted)
        finally:
            # A workflow left waiting on a timer would hold the time-skipping server's clock.
            with contextlib.suppress(Exception):
                await handle.terminate("test finished")


async def test_each_follow_up_falls_due_on_time(
    skipping_env: WorkflowEnvironment, policy: Policy
) -> None:
    async with follow_ups(skipping_env, policy) as f:
        start = await f.status()
        assert [i.id for i in start.items] == [
            "first_hour",
            "performance_2h",
            "stability_4h",
            "short_term_24h",
            "long_term_week",
        ]
        assert all(i.state == "scheduled" for i in start.items)
        expected = {
            "first_hour": (HOUR, "due"),
            "performance_2h": (2 * HOUR, "done"),
            "stability_4h": (4 * HOUR, "done"),
            "short_term_24h": (24 * HOUR, "due"),
            "long_term_week": (timedelta(days=7), "due"),
        }
        owners = {spec.id: spec.owner for spec in policy.follow_ups}
        for follow_up, (after, state) in expected.items():
            assert item(start, follow_up).due_at == f.reverted_at + after
            await f.at(after - SECOND)
            assert item(await f.status(), follow_up).state == "scheduled", follow_up
            await f.at(after + SECOND)
            now = await f.until(state_of(follow_up, state))
            if state == "due":
                notice = f.notices()[-1]
                assert (notice.follow_up, notice.kind) == (follow_up, "due")
                assert [o.role for o in notice.owners] == [owners[follow_up]]
                owner = "dri-backend"
                reply = await f.ack(follow_up, owner)
                assert reply.accepted, reply.message
                assert item(await f.status(), follow_up).done_by == owner
            else:
                assert item(now, follow_up).done_by == "system"

        final = await f.handle.result()
        assert all(i.state == "done" for i in final.items)
        assert f.standins.count("check_baseline") == 1
        assert [n.follow_up for n in f.notices()] == [
            "first_hour",
            "short_term_24h",
            "long_term_week",
        ]
        assert f.escalations() == [] and "escalation" not in kinds(final)


async def test_acknowledged_follow_up_neither_reminds_nor_escalates(
    skipping_env: WorkflowEnvironment, policy: Policy
) -> None:
    async with follow_ups(skipping_env, policy) as f:
        early = await f.ack("first_hour", "dri-backend")
        assert not early.accepted and "is not due before" in early.message

        await f.at(HOUR + SECOND)
        await f.until(state_of("first_hour", "due"))
        stranger = await f.ack("first_hour", "someone-else")
        assert not stranger.accepted and "not in the roster" in stranger.message
        qa = await f.ack("first_hour", "qa-dri")
        assert not qa.accepted and "may not acknowledge" in qa.message
        assert "Sprint DRI" in qa.message and "SRE On-call" in qa.message

        first = await f.ack("first_hour", "dri-search", request_id="click-1")
        again = await f.ack("first_hour", "dri-search", request_id="click-1")
        assert first.accepted and first == again
        done = await f.status()
        assert item(done, "first_hour").state == "done"
        assert kinds(done).count("follow_up_done") == 1
        assert kinds(done).count("ack_rejected") == 3

        await f.at(2 * HOUR + SECOND)  # past its reminder (1 h 30) and escalation (2 h)
        await f.until(state_of("performance_2h", "done"))
        assert [n.kind for n in f.notices()] == ["due"]
        assert f.escalations() == []
        later = await f.ack("first_hour", "dri-backend")
        assert not later.accepted and "already done" in later.message


async def test_unacknowledged_follow_up_reminds_then_escalates(
    skipping_env: WorkflowEnvironment, policy: Policy
) -> None:
    async with follow_ups(skipping_env, policy) as f:
        await f.at(HOUR + SECOND)
        await f.until(state_of("first_hour", "due"))

        await f.at(HOUR + 30 * timedelta(minutes=1) - SECOND)
        assert item(await f.status(), "first_hour").state == "due"
        await f.at(HOUR + 30 * timedelta(minutes=1) + SECOND)
        reminded = await f.until(state_of("first_hour", "reminded"))
        assert [(n.follow_up, n.kind) for n in f.notices()] == [
            ("first_hour", "due"),
            ("first_hour", "reminder"),
        ]
        assert "follow_up_reminder" in kinds(reminded)

        await f.at(2 * HOUR - SECOND)
        assert f.escalations() == []
        await f.at(2 * HOUR + SECOND)
        escalated = await f.until(state_of("first_hour", "escalated"))
        [escalation] = f.escalations()
        assert "not acknowledged 1 h after it was due" in escalation.reason
        assert [h.role for h in escalation.holders] == policy.escalation_path
        assert any(
            e.kind == "escalation" and "Immediate actions (first hour)" in e.message
            for e in escalated.timeline
        )

        # Someone on the escalation path can still close it.
        late = await f.ack("first_hour", "eng-manager", request_id="late")
        assert late.accepted, late.message
        closed = item(await f.status(), "first_hour")
        assert closed.state == "done" and "after escalation" in closed.detail


async def test_baseline_out_of_range_at_two_hours_escalates(
    skipping_env: WorkflowEnvironment, policy: Policy
) -> None:
    async with follow_ups(skipping_env, policy, StandIns(baseline_healthy=False)) as f:
        await f.at(2 * HOUR + SECOND)
        missed = await f.until(state_of("performance_2h", "missed"))
        assert "p99 latency 1.4× baseline" in item(missed, "performance_2h").detail
        reasons = [e.reason for e in f.escalations()]
        assert any("Performance restoration check" in r and "p99" in r for r in reasons)


async def test_an_incident_within_four_hours_escalates(
    skipping_env: WorkflowEnvironment, policy: Policy
) -> None:
    async with follow_ups(skipping_env, policy) as f:
        await f.at(3 * HOUR)
        await f.handle.signal(
            INCIDENT_SIGNAL, TriggerEvent(trigger="error_rate", source="alertmanager")
        )
        await f.until(lambda s: len(s.incidents) == 1)
        await f.at(4 * HOUR + SECOND)
        missed = await f.until(state_of("stability_4h", "missed"))
        assert "1 incident(s) since the rollback" in item(missed, "stability_4h").detail
        assert any("incidents since the rollback" in e.reason for e in f.escalations())


async def test_a_new_trigger_after_the_rollback_reaches_the_follow_ups(
    skipping_env: WorkflowEnvironment, policy: Policy
) -> None:
    async with rig(skipping_env, policy, StandIns(treatment=25)) as r:
        await r.trigger("error_rate", phase=25)
        rolled_back = await r.until(lambda s: s.follow_ups_id is not None)
        assert rolled_back.follow_ups_id is not None
        assert rolled_back.follow_ups_id.startswith(f"follow-ups-{r.deployment}-")
        handle = skipping_env.client.get_workflow_handle(rolled_back.follow_ups_id)
        try:
            await skipping_env.sleep(HOUR + 5 * timedelta(minutes=1))
            await r.trigger("error_rate", phase=25)
            for _ in range(200):
                seen = await handle.query(STATUS_QUERY, result_type=FollowUpsStatus)
                if seen.incidents:
                    break
                await asyncio.sleep(0.05)
            assert len(seen.incidents) == 1 and "error_rate" in seen.incidents[0].message

            await skipping_env.sleep(3 * HOUR)
            for _ in range(200):
                seen = await handle.query(STATUS_QUERY, result_type=FollowUpsStatus)
                if item(seen, "stability_4h").state == "missed":
                    break
                await asyncio.sleep(0.05)
            assert item(seen, "stability_4h").state == "missed"
            assert "escalation" in kinds(seen)
        finally:
            with contextlib.suppress(Exception):
                await handle.terminate("test finished")


async def test_an_acknowledgement_is_judged_by_when_it_was_made(
    skipping_env: WorkflowEnvironment, policy: Policy
) -> None:
    """Made before the escalation (stored while no worker ran), seen after it: on time. Made
    before the follow-up was due: refused."""
    async with follow_ups(skipping_env, policy) as f:
        early = await f.ack("first_hour", "dri-backend", made_at=f.reverted_at + 30 * 60 * SECOND)
        assert not early.accepted and "is not due before" in early.message
        await f.at(2 * HOUR + SECOND)
        await f.until(state_of("first_hour", "escalated"))
        made = f.reverted_at + HOUR + 10 * 60 * SECOND  # after it was due, before the escalation
        on_time = await f.ack("first_hour", "dri-backend", request_id="stored", made_at=made)
        assert on_time.accepted, on_time.message
        closed = item(await f.status(), "first_hour")
        assert closed.state == "done" and "after escalation" not in closed.detail
        assert closed.escalated_at is not None
