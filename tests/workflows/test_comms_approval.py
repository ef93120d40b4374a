"""The customer notification waits for the business-impact authority of the phase:
approved, held, expired (hold or send by default), on the time-skipping server."""

from __future__ import annotations

from datetime import timedelta

import pytest
from temporalio.testing import WorkflowEnvironment

from contract.rollback import COMMS_UPDATE, CommsApprovalInput, DecisionReply
from runbook.policy import Policy
from runbook.status import RollbackStatus
from tests.workflows.helpers import Rig, kinds, rig
from tests.workflows.standins import StandIns


async def vote(r: Rig, action: str, person: str, request_id: str | None = None) -> DecisionReply:
    assert r.handle is not None
    inp = CommsApprovalInput(action=action, person=person, request_id=request_id)  # type: ignore[arg-type]
    return await r.handle.execute_update(COMMS_UPDATE, inp, result_type=DecisionReply)


def waiting(status: RollbackStatus) -> bool:
    return any(c.outcome == "pending" for c in status.comms)


@pytest.mark.parametrize(
    ("phase", "approver", "not_allowed"),
    [
        (5, "sprint-pm", "eng-manager"),
        (50, "eng-manager", "sprint-pm"),
        (100, "vp-eng", "eng-manager"),
    ],
)
async def test_the_phase_authority_approves_and_the_message_goes_out(
    skipping_env: WorkflowEnvironment, policy: Policy, phase: int, approver: str, not_allowed: str
) -> None:
    async with rig(skipping_env, policy, StandIns(sla_breach=True)) as r:
        await r.trigger("error_rate", phase=phase)
        opened = await r.until(
            lambda s: waiting(s) and r.standins.count("request_comms_approval") > 0
        )
        pending = opened.comms[0]
        assert pending.audience == "customer_comms"
        assert pending.deadline - pending.opened_at == timedelta(minutes=30)
        assert r.standins.count("send_audience") == 0
        (request,) = [inp for name, inp in r.standins.calls if name == "request_comms_approval"]
        assert request.deadline == pending.deadline and request.wording == pending.wording
        assert [h.role for h in request.approvers] == [a for s in pending.approvers for a in s]

        refused = await vote(r, "approve", not_allowed)
        assert not refused.accepted and "may not approve" in refused.message
        accepted = await vote(r, "approve", approver)
        assert accepted.accepted, accepted.message
        done = await r.until(lambda s: s.comms[0].sent)
        assert done.comms[0].outcome == "approved"
        assert done.comms[0].decided_by == [approver]
        sent = [inp for name, inp in r.standins.calls if name == "send_audience"]
        assert len(sent) == 1 and sent[0].channel == "#customer-comms"
        assert "comms_rejected" in kinds(done) and "comms_sent" in kinds(done)
        assert done.recovery["user_impact"].result == "fail"  # 2 % of queries affected


async def test_held_wording_is_never_sent(
    skipping_env: WorkflowEnvironment, policy: Policy
) -> None:
    async with rig(skipping_env, policy, StandIns(sla_breach=True)) as r:
        await r.trigger("error_rate", phase=25)
        await r.until(waiting)
        first = await vote(r, "deny", "sprint-pm", request_id="click-1")
        again = await vote(r, "deny", "sprint-pm", request_id="click-1")
        assert first == again and first.accepted
        done = await r.until(lambda s: "comms_held" in kinds(s))
        assert done.comms[0].outcome == "denied"
        assert kinds(done).count("comms_denied") == 1
        # Held is final: the approval task has ended without sending.
        assert r.standins.count("send_audience") == 0


@pytest.mark.parametrize(("default", "sends"), [("hold", 0), ("send", 1)])
async def test_nobody_answering_applies_the_default(
    skipping_env: WorkflowEnvironment, policy: Policy, default: str, sends: int
) -> None:
    audiences = [
        a.model_copy(update={"approval_default": default}) if a.approval else a
        for a in policy.notifications.audiences
    ]
    notifications = policy.notifications.model_copy(update={"audiences": audiences})
    variant = policy.model_copy(update={"notifications": notifications})
    async with rig(skipping_env, variant, StandIns(sla_breach=True)) as r:
        await r.trigger("error_rate", phase=25)
        await r.until(waiting)
        await skipping_env.sleep(timedelta(minutes=29))
        assert (await r.status()).comms[0].outcome == "pending"
        await skipping_env.sleep(timedelta(minutes=2))
        done = await r.until(lambda s: "comms_held" in kinds(s) or "comms_sent" in kinds(s))
        assert done.comms[0].outcome == "expired"
        assert r.standins.count("send_audience") == sends
        assert "comms_approval_expired" in kinds(done)


async def test_without_a_held_audience_there_is_nothing_to_approve(
    skipping_env: WorkflowEnvironment, policy: Policy
) -> None:
    async with rig(skipping_env, policy) as r:
        await r.trigger("error_rate", phase=25)
        await r.until(lambda s: s.state == "following_up" and r.standins.count("post_report") > 0)
        (posted,) = [inp for name, inp in r.standins.calls if name == "post_report"]
        assert posted.status.deployment == r.deployment  # the report reached the channel once
        assert [s.outcome for s in posted.status.steps] == ["ok"] * 7
        # Recovery targets the rollback measures itself, as the policy says.
        measured = posted.status.recovery
        assert measured["data_integrity"].result == "pass"
        assert measured["user_impact"].result == "pass"
        assert measured["user_impact"].evidence == "0.040% of queries affected, < 1.00%"
        reply = await vote(r, "approve", "sprint-pm")
        assert not reply.accepted
        assert "no customer_comms message is waiting" in reply.message
