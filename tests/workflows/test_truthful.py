"""Issue 20 in the workflow: Step 5 while a Phase 1 action is still unconfirmed tells the
audiences what is done and what is not; once every action is confirmed, their own words go
out and customer wording is asked for (on the dev server, in real time, with stand-ins)."""

from __future__ import annotations

import asyncio

from temporalio.testing import WorkflowEnvironment

from activities.models import StakeholderNotificationInput
from runbook.policy import Policy
from tests.policies import edited
from tests.workflows.helpers import kinds, rig
from tests.workflows.standins import StandIns

SLOW_STEP_1 = {
    "procedure.0.steps.0.budget": "1s",
    "procedure.0.steps.1.budget": "1s",
    "decisions.after_rollback_watch": "1s",
}


async def test_step_5_before_the_split_is_confirmed_then_the_audiences_own_words(
    local_env: WorkflowEnvironment, policy: Policy
) -> None:
    standins = StandIns(treatment=25, sla_breach=True, action_faults={"traffic_split": 8})
    async with rig(local_env, edited(policy, SLOW_STEP_1), standins) as r:
        await r.trigger("error_rate")
        final = await r.until(lambda s: bool(s.comms) and s.outcome == "rolled back", 30)
        for _ in range(600):  # the approval request goes out in the background, in order
            if "request_comms_approval" in standins.names():
                break
            await asyncio.sleep(0.05)
        told = [
            inp
            for name, inp in standins.calls
            if name == "stakeholder_notification" and isinstance(inp, StakeholderNotificationInput)
        ]
        assert [t.incident.unconfirmed for t in told] == [["Traffic split to control"], []]
        assert "Traffic split to control" in told[1].incident.confirmed
        names = standins.names()
        split_done = names.index("set_traffic_split")
        assert names.index("request_comms_approval") > split_done
        # Customer wording was asked for once, after the confirmation, not before.
        assert names.count("request_comms_approval") == 1
        assert "stakeholders" in kinds(final)
        step = next(s for s in final.steps if s.id == "stakeholder_notification")
        assert step.ended_at is not None
        assert step.ended_at < final.instants["traffic_reverted"]  # told before: but truthfully
