"""Decision windows on the time-skipping server: edges, deny, authority, two-person, extension."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from temporalio.testing import WorkflowEnvironment

from runbook.policy import Policy
from tests.workflows.helpers import kinds, rig
from tests.workflows.standins import StandIns


async def test_window_edge_one_second_before_nothing_after_the_default(
    skipping_env: WorkflowEnvironment, policy: Policy
) -> None:
    async with rig(skipping_env, policy) as r:
        await r.trigger("gate_failure", phase=25)  # Manual (2 min)
        await r.until(lambda s: s.state == "awaiting_decision")
        await skipping_env.sleep(timedelta(minutes=2) - timedelta(seconds=1))
        before = await r.status()
        assert before.state == "awaiting_decision"
        assert r.standins.count("set_traffic_split") == 0

        await skipping_env.sleep(timedelta(seconds=2))
        after = await r.until(lambda s: s.state == "following_up")
        assert after.decided_by == ["default"]
        assert after.instants["decision"] - after.instants["trigger"] == timedelta(minutes=2)
        assert r.standins.count("set_traffic_split") == 1
        assert "window_expired" in kinds(after)


async def test_deny_continues_the_canary_and_watches(
    skipping_env: WorkflowEnvironment, policy: Policy
) -> None:
    async with rig(skipping_env, policy) as r:
        await r.trigger("gate_failure", phase=5)
        await r.until(lambda s: s.state == "awaiting_decision")
        reply = await r.decide("deny", "dri-backend")
        assert reply.accepted, reply.message
        await r.until(lambda s: s.state == "continued")

        # Within the watch a new trigger opens a new window.
        await skipping_env.sleep(timedelta(minutes=20))
        await r.trigger("gate_failure", phase=5)
        await r.until(lambda s: s.state == "awaiting_decision")
        assert (await r.decide("deny", "dri-search")).accepted

        final = await r.result()
        assert final.state == "continued"
        assert r.standins.count("set_traffic_split") == 0
        assert r.standins.count("request_decision") == 2
        closed = [inp for name, inp in r.standins.calls if name == "close_decision"]
        assert [c.outcome for c in closed] == ["denied: canary continues"] * 2
        assert kinds(final)[-3:] == ["watch_ended", "state", "state"] or "watch_ended" in kinds(
            final
        )


async def test_unauthorized_decision_is_rejected_recorded_and_changes_nothing(
    skipping_env: WorkflowEnvironment, policy: Policy
) -> None:
    async with rig(skipping_env, policy) as r:
        await r.trigger("gate_failure", phase=5)  # Sprint DRI decides
        await r.until(lambda s: s.state == "awaiting_decision")

        qa = await r.decide("approve", "qa-dri")
        assert not qa.accepted
        assert "needs Sprint DRI" in qa.message
        stranger = await r.decide("deny", "mallory")
        assert not stranger.accepted
        assert "not in the roster" in stranger.message
        sre = await r.decide("investigating", "sre-oncall")
        assert not sre.accepted

        status = await r.status()
        assert status.state == "awaiting_decision"
        assert status.decision is not None and status.decision.votes == {}
        assert kinds(status).count("decision_rejected") == 3
        assert r.standins.count("set_traffic_split") == 0

        assert (await r.decide("approve", "dri-search")).accepted
        done = await r.until(lambda s: s.state == "following_up")
        assert done.decided_by == ["dri-search"]
        assert done.mode == "manual"


async def test_two_person_approval_needs_both_roles(
    skipping_env: WorkflowEnvironment, policy: Policy
) -> None:
    async with rig(skipping_env, policy) as r:
        await r.trigger("quality_regression", phase=50)  # QA DRI + Sprint DRI
        await r.until(lambda s: s.state == "awaiting_decision")

        first = await r.decide("approve", "qa-dri")
        assert first.accepted
        assert "waiting for Sprint DRI" in first.message
        again = await r.decide("approve", "qa-dri")
        assert "waiting for Sprint DRI" in again.message
        assert (await r.status()).state == "awaiting_decision"
        assert r.standins.count("set_traffic_split") == 0

        second = await r.decide("approve", "dri-backend")
        assert second.accepted
        done = await r.until(lambda s: s.state == "following_up")
        assert sorted(done.decided_by) == ["dri-backend", "qa-dri"]
        assert r.standins.count("set_traffic_split") == 1


async def test_two_person_approval_needs_two_people(
    skipping_env: WorkflowEnvironment, policy: Policy
) -> None:
    roster = dict(policy.roster)
    roster["sprint_dri"] = [*roster["sprint_dri"], "qa-dri"]  # one person, both roles
    both = policy.model_copy(update={"roster": roster})
    async with rig(skipping_env, both) as r:
        await r.trigger("quality_regression", phase=50)
        await r.until(lambda s: s.state == "awaiting_decision")
        alone = await r.decide("approve", "qa-dri")
        assert alone.accepted and "waiting for" in alone.message
        assert (await r.status()).state == "awaiting_decision"
        assert (await r.decide("approve", "dri-search")).accepted
        await r.until(lambda s: s.state == "following_up")


async def test_investigating_extends_but_never_past_the_cap(
    skipping_env: WorkflowEnvironment, policy: Policy
) -> None:
    async with rig(skipping_env, policy) as r:
        await r.trigger("quality_regression", phase=5)  # 10 min, extension to 30 min
        start = await r.until(lambda s: s.state == "awaiting_decision")
        assert start.decision is not None
        opened = start.decision.opened_at
        assert start.decision.deadline - opened == timedelta(minutes=10)

        deadlines = []
        for _ in range(3):  # at about 9, 18 and 27 minutes
            await skipping_env.sleep(timedelta(minutes=9))
            reply = await r.decide("investigating", "qa-dri")
            assert reply.accepted, reply.message
            current = await r.status()
            assert current.state == "awaiting_decision" and current.decision is not None
            deadlines.append(current.decision.deadline - opened)
        assert deadlines[0] >= timedelta(minutes=19)
        assert deadlines[1] >= timedelta(minutes=28)
        assert deadlines[2] == timedelta(minutes=30)  # capped: not 37 minutes

        await skipping_env.sleep(timedelta(minutes=3) - timedelta(seconds=2))
        assert (await r.status()).state == "awaiting_decision"
        assert r.standins.count("set_traffic_split") == 0
        await skipping_env.sleep(timedelta(seconds=3))
        final = await r.until(lambda s: s.state == "following_up")
        assert final.decided_by == ["default"]
        assert final.instants["decision"] - opened == timedelta(minutes=30)


async def test_no_extension_where_the_policy_has_none(
    skipping_env: WorkflowEnvironment, policy: Policy
) -> None:
    async with rig(skipping_env, policy) as r:
        await r.trigger("quality_regression", phase=25)
        await r.until(lambda s: s.state == "awaiting_decision")
        reply = await r.decide("investigating", "qa-dri")
        assert not reply.accepted
        assert "no investigation extension at 25%" in reply.message


async def test_automated_trigger_during_a_window_rolls_back_at_once(
    skipping_env: WorkflowEnvironment, policy: Policy
) -> None:
    async with rig(skipping_env, policy) as r:
        await r.trigger("gate_failure", phase=5)
        await r.until(lambda s: s.state == "awaiting_decision")
        await skipping_env.sleep(timedelta(minutes=1))
        await r.trigger("error_rate", phase=5, source="alertmanager")
        done = await r.until(lambda s: s.state == "following_up")
        assert done.mode == "auto"
        assert done.decided_by == ["system"]
        assert done.trigger == "error_rate"
        assert r.standins.count("set_traffic_split") == 1
        closed = [inp for name, inp in r.standins.calls if name == "close_decision"]
        assert closed and "superseded" in closed[0].outcome
        late = await r.decide("approve", "dri-backend")
        assert not late.accepted


async def test_hundred_alerts_make_one_workflow_and_one_rollback(
    skipping_env: WorkflowEnvironment, policy: Policy
) -> None:
    async with rig(skipping_env, policy, StandIns(treatment=25)) as r:
        handles = await asyncio.gather(
            *(r.trigger("error_rate", source="alertmanager", alert_id=f"a{i}") for i in range(100))
        )
        # One run: those that found it running signalled it (their handle names no run).
        assert len({h.result_run_id for h in handles} - {None}) == 1
        final = await r.result()
        assert final.state == "rolled_back"
        assert r.standins.count("set_traffic_split") == 1
        assert r.standins.count("flush_cache") == 1
        # Counted, not stored one by one: the first is on the timeline, the rest are counted.
        assert final.received == {"error_rate": 100}
        assert sum(1 for e in final.timeline if e.kind == "trigger") <= 2
        # Auto at every phase: no phase read before the stop (its own read-first gives it).
        assert r.standins.count("read_traffic_split") == 0
        assert final.phase == 25


async def test_the_close_is_the_last_change_of_the_decision_message(
    local_env: WorkflowEnvironment, policy: Policy
) -> None:
    """ "Investigating" changes the channel's decision message (its new deadline) and an
    approval right after closes it. With Slack slow on the first change, the close must still
    land last, or the channel would show an open decision with live buttons (on the dev
    server, in real time)."""
    slow_slack = StandIns(treatment=5, update_decision_seconds=1.5)
    async with rig(local_env, policy, slow_slack) as r:
        await r.trigger("quality_regression", phase=5)
        await r.until(lambda s: s.state == "awaiting_decision")
        assert (await r.decide("investigating", "qa-dri")).accepted
        assert (await r.decide("approve", "qa-dri")).accepted
        for _ in range(200):
            if "close_decision" in r.standins.names():
                break
            await asyncio.sleep(0.05)
        names = r.standins.names()
        assert "close_decision" in names, names
        assert names.index("update_decision_done") < names.index("close_decision"), names
        assert names.count("close_decision") == 1


async def test_a_close_is_not_held_up_by_an_update_slack_keeps_refusing(
    local_env: WorkflowEnvironment, policy: Policy
) -> None:
    """Slack refuses the extension's deadline change (retried with backoff, for up to 10
    minutes): the approval's close supersedes it at once, and the change is never tried again
    after the close (on the dev server, in real time)."""
    refusing = StandIns(treatment=5, update_decision_fails=True)
    async with rig(local_env, policy, refusing) as r:
        await r.trigger("quality_regression", phase=5)
        await r.until(lambda s: s.state == "awaiting_decision")
        assert (await r.decide("investigating", "qa-dri")).accepted
        await asyncio.sleep(0.2)  # the change refused once, waiting for its retry
        assert (await r.decide("approve", "qa-dri")).accepted
        for _ in range(60):  # well within its first retries' backoff (0.5 s, 1 s, 2 s)
            if "close_decision" in r.standins.names():
                break
            await asyncio.sleep(0.05)
        await asyncio.sleep(3.0)  # a retry of the change, if any were left, would come by now
        names = r.standins.names()
        assert "close_decision" in names, names
        closed = names.index("close_decision")
        assert "update_decision" in names[:closed]
        assert "update_decision" not in names[closed:], names
        status = await r.status()
        failures = [e.message for e in status.timeline if e.kind == "message_failed"]
        assert failures == [], failures  # superseded, not "could not be sent"


async def test_an_investigation_moves_the_decision_target_and_nobody_is_paged_for_it(
    skipping_env: WorkflowEnvironment, policy: Policy
) -> None:
    """Issue 20: a QA DRI chose "investigating" (the plan's 10 → 30 minutes) and decided at
    minute 11; the report said "trigger to decision 678.9 s / 600 fail" and SRE On-call was
    paged at minute 10. The target moves with the extension, and the report says why."""
    async with rig(skipping_env, policy) as r:
        await r.trigger("quality_regression", phase=5)  # 10 min, extension to 30 min
        await r.until(lambda s: s.state == "awaiting_decision")
        await skipping_env.sleep(timedelta(minutes=9))
        assert (await r.decide("investigating", "qa-dri")).accepted
        await skipping_env.sleep(timedelta(minutes=2))  # minute 11: past the plan's 10
        assert (await r.decide("approve", "qa-dri")).accepted
        final = await r.until(lambda s: s.state == "following_up")
        pages = [e.message for e in final.timeline if e.kind == "escalation"]
        assert not [p for p in pages if "response target" in p], pages
        assert r.standins.count("escalate") == 0 and r.standins.count("page") == 0
        to_decision = [rt for rt in final.response_times if rt.end == "decision"]
        assert to_decision, final.response_times
        for rt in to_decision:
            assert rt.met is True, rt
            assert rt.plan_target_seconds == 600 and rt.target_seconds >= 19 * 60, rt
            assert "investigation extension at 5%" in rt.why and "QA" in rt.why, rt.why
