"""Steps 5-7 and the messages: who is told what, root cause evidence, the recovery plan."""

from __future__ import annotations

import asyncio

from activities.models import (
    DecisionClosedInput,
    DecisionMessage,
    DecisionRequestInput,
    EscalationInput,
    FollowUpNoticeInput,
    ProgressInput,
    RecoveryPlanInput,
    RootCauseInput,
    StakeholderNotificationInput,
)
from activities.notify import ConsoleNotifier
from activities.procedure import RollbackActivities
from runbook.policy import Policy
from simulator import SimulatorServer
from tests.activities.helpers import ctx, deploy, holders, incident


async def test_stakeholders_are_told_from_measured_impact(
    acts: RollbackActivities, simulator: SimulatorServer, notifier: ConsoleNotifier, policy: Policy
) -> None:
    deployment = await deploy(
        simulator, 25, treatment_error_rate=0.05, treatment_sla_recall_at_50=0.9
    )
    inp = StakeholderNotificationInput(
        ctx=ctx(deployment), notifications=policy.notifications, incident=incident(deployment)
    )
    result = await acts.stakeholder_notification(inp)
    await acts.stakeholder_notification(inp)  # a retry tells nobody twice

    by_id = {a.audience: a for a in result.audiences}
    assert [a for a in by_id if by_id[a].sent] == ["engineering", "product", "leadership"]
    assert by_id["leadership"].reason == (
        "sent: 1.250% of queries failed (treatment error rate 0.05 on 25% of traffic), > 0.10%"
    )
    assert by_id["customer_comms"].reason == (
        "held: wording needs approval by the business impact authority"
    )
    assert result.first_sent_at is not None
    assert [m.channel for m in notifier.sent] == [
        "#sprint-1-channel",
        "#search-product",
        "#eng-leadership",
    ]
    assert "Customer Comms: held" in result.summary
    held = by_id["customer_comms"]
    assert held.held_for_approval and not held.sent
    assert inp.incident.deployment in held.wording  # the wording its approvers will read


async def test_without_impact_leadership_and_customers_are_not_told(
    acts: RollbackActivities, simulator: SimulatorServer, policy: Policy
) -> None:
    deployment = await deploy(simulator, 5)
    result = await acts.stakeholder_notification(
        StakeholderNotificationInput(
            ctx=ctx(deployment),
            notifications=policy.notifications,
            incident=incident(deployment, 5),
        )
    )
    reasons = {a.audience: a.reason for a in result.audiences}
    assert reasons["leadership"].startswith("not sent: no business impact (0.003% of queries")
    assert reasons["customer_comms"] == ("not sent: no sla breach (sla_recall_at_50 0.97 >= 0.95)")


async def test_root_cause_analysis_compares_treatment_with_control(
    acts: RollbackActivities, simulator: SimulatorServer
) -> None:
    deployment = await deploy(simulator, 25, treatment_error_rate=0.02)
    await asyncio.sleep(1.1)  # the simulator writes one treatment error line per second
    result = await acts.root_cause_analysis(
        RootCauseInput(ctx=ctx(deployment), incident=incident(deployment))
    )
    assert result.metrics["treatment"]["error_rate"] == 0.02
    assert result.metrics["control"]["error_rate"] == 0.0005
    assert result.hypotheses[0] == (
        "treatment error rate 40× control (2.00% vs 0.05%): the treatment fails requests"
    )
    assert result.ranked[0].severity == "critical"
    assert any("ERROR treatment: search request failed" in line for line in result.log_excerpt)
    assert result.log_lines >= 3
    assert any("fault injected" in event for event in result.timeline)
    assert result.summary.startswith(f"{result.log_lines} log lines (")


async def test_recovery_plan_is_markdown_with_owners(
    acts: RollbackActivities, simulator: SimulatorServer, notifier: ConsoleNotifier
) -> None:
    deployment = await deploy(simulator, 25, treatment_error_rate=0.02)
    rca = await acts.root_cause_analysis(
        RootCauseInput(ctx=ctx(deployment), incident=incident(deployment))
    )
    owners = [holders("sprint_dri", "Sprint DRI", "ann", "bob"), holders("qa_dri", "QA DRI", "cy")]
    result = await acts.recovery_planning(
        RecoveryPlanInput(
            ctx=ctx(deployment), incident=incident(deployment), root_cause=rca, owners=owners
        )
    )
    md = result.markdown
    for heading in (
        "## Issues by severity",
        "## Fix development",
        "## Testing strategy",
        "## Risk assessment",
        "## Owners",
    ):
        assert heading in md
    assert "1. **critical** (errors): treatment error rate 40× control" in md
    assert "- Sprint DRI: Ann, Bob" in md and "Owner: Ann (Sprint DRI)" in md
    assert notifier.texts() == [md]
    assert result.summary.startswith("recovery plan with ")


async def test_decision_and_escalation_messages_name_people_and_deadlines(
    acts: RollbackActivities, notifier: ConsoleNotifier
) -> None:
    from datetime import UTC, datetime, timedelta

    deciders = [holders("sprint_dri", "Sprint DRI", "ann", "bob")]
    deadline = datetime(2025, 9, 8, 16, 20, 0, tzinfo=UTC)
    message = await acts.request_decision(
        DecisionRequestInput(
            ctx=ctx("search-a"),
            trigger="gate_failure",
            trigger_name="Trigger 4: Success Gate Failure",
            phase=25,
            reason="p95 gate failed",
            evidence={"gate": "p95_latency"},
            links=[],
            approvers=[["sprint_dri"]],
            approver_text="Sprint DRI",
            deciders=deciders,
            deadline=deadline,
            default_action="rollback",
            can_investigate=False,
        )
    )
    assert message == DecisionMessage(channel="#sprint-1-channel", ts="1")
    await acts.close_decision(
        DecisionClosedInput(
            ctx=ctx("search-a"),
            message=message,
            outcome="rollback approved",
            decided_by=["ann"],
            at=deadline - timedelta(minutes=1),
        )
    )
    escalated = await acts.escalate(
        EscalationInput(
            ctx=ctx("search-a"),
            reason="Step 1: Emergency Stop missed its budget of 10s; still retrying",
            holders=[holders("sre_oncall", "SRE On-call", "pager"), *deciders],
        )
    )
    await acts.post_progress(ProgressInput(ctx=ctx("search-a", drill=True), text="Phase 1 started"))
    await acts.follow_up_notice(
        FollowUpNoticeInput(
            ctx=ctx("search-a"),
            follow_up="first_hour",
            name="Immediate actions",
            kind="due",
            actions=["Team Debrief"],
            owners=deciders,
        )
    )
    request, outcome, escalation, progress, notice = notifier.texts()
    assert "Trigger 4: Success Gate Failure at 25% canary" in request
    assert "Who may decide: Sprint DRI (Sprint DRI: Ann, Bob)" in request
    assert "Deadline: 16:20:00 UTC; if nobody decides by then, the rollback starts" in request
    assert outcome == "Decision for search-a: rollback approved (by ann, 16:19:00 UTC)"
    assert "Step 1: Emergency Stop missed its budget" in escalation
    assert "Escalation path: SRE On-call: Pager; Sprint DRI: Ann, Bob" in escalation
    assert escalated.notified == ["pager", "ann", "bob"]
    assert progress == "[DRILL] Phase 1 started"
    assert "Immediate actions for search-a: is due" in notice and "- Team Debrief" in notice
