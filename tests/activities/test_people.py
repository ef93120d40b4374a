"""Steps 5-7 and the messages: who is told what, root cause evidence, the recovery plan."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest
from pydantic import ValidationError

from activities import audience_facts
from activities.models import (
    DecisionClosedInput,
    DecisionMessage,
    DecisionRequestInput,
    EscalationInput,
    FollowUpNoticeInput,
    IncidentSummary,
    ProgressInput,
    RecoveryPlanInput,
    RootCauseInput,
    StakeholderNotificationInput,
)
from activities.notify import ConsoleNotifier
from activities.people import missing_facts
from activities.procedure import RollbackActivities
from runbook.policy import Policy
from runbook.schema import FILE
from runbook.status import StepRecord
from runbook.wording import FACTS, named_facts, render
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
    reason = by_id["leadership"].reason
    assert reason.startswith("sent: 1.250% of queries affected, > 0.10% (estimated: "), reason
    # The estimate says what it is made of, and which ends of the period were known.
    assert "the treatment error rate as read now, 0.05, × 25% of traffic, for " in reason
    assert "(breach) to " in reason and "UTC (reversion), 4m)" in reason, reason
    assert result.affected_how.startswith("estimated: the treatment error rate as read now")
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
    assert held.wording.startswith("Between ")  # the wording its approvers will read


async def test_an_unconfirmed_rollback_is_announced_as_under_way_and_customers_wait(
    acts: RollbackActivities, simulator: SimulatorServer, notifier: ConsoleNotifier, policy: Policy
) -> None:
    """Issue 20: #search-product heard "canary rolled back" 21 s before traffic was reverted.
    While an action is unconfirmed every audience hears what is done and what is not (keyed
    apart, so the audience's own words still go out once); customer wording is not even asked
    for."""
    deployment = await deploy(
        simulator, 25, treatment_error_rate=0.05, treatment_sla_recall_at_50=0.9
    )
    under_way = incident(
        deployment, unconfirmed=["Traffic split to control"], confirmed=["Stop hedging-service"]
    )
    del under_way.instants["traffic_reverted"]
    inp = StakeholderNotificationInput(
        ctx=ctx(deployment), notifications=policy.notifications, incident=under_way
    )
    result = await acts.stakeholder_notification(inp)
    by_id = {a.audience: a for a in result.audiences}
    assert [a for a in by_id if by_id[a].sent] == ["engineering", "product", "leadership"]
    assert all(by_id[a].interim for a in ("engineering", "product", "leadership"))
    customers = by_id["customer_comms"]
    assert not customers.sent and not customers.held_for_approval and not customers.wording
    assert customers.reason.startswith("waits: ")
    for sent in notifier.sent:
        assert "rollback under way" in sent.text and "rolled back" not in sent.text, sent.text
    assert result.first_sent_at is not None  # the first notification, as the plan counts it

    confirmed = incident(deployment, unconfirmed=[], confirmed=["Traffic split to control"])
    final = await acts.stakeholder_notification(
        StakeholderNotificationInput(
            ctx=ctx(deployment), notifications=policy.notifications, incident=confirmed
        )
    )
    assert [a.audience for a in final.audiences if a.sent] == [
        "engineering",
        "product",
        "leadership",
    ]
    assert {a.audience for a in final.audiences if a.held_for_approval} == {"customer_comms"}
    assert len(notifier.sent) == 6
    assert "canary rolled back" in notifier.sent[4].text


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
    assert result.summary.startswith("recovery plan with ")
    # The channel gets Slack's mrkdwn, not GitHub Markdown.
    [posted] = notifier.texts()
    assert posted.startswith(f"Recovery plan: {deployment}\n")
    assert "**" not in posted and "- [ ]" not in posted
    assert not any(line.lstrip().startswith("#") for line in posted.splitlines())
    assert "*Issues by severity*" in posted and "1. *critical* (errors)" in posted
    assert "☐ Detailed RCA with timeline, within 24 hours of the rollback" in posted


def audience_incident(deployment: str) -> IncidentSummary:
    at = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)
    return incident(
        deployment,
        instants={
            "trigger": at,
            "decision": at,
            "traffic_reverted": at + timedelta(seconds=0.09),
        },
        started_at=at,
        decided_by_names=["the system"],
        user_effect="some searches failed with an error",
        figures_before={"error_rate": 0.052, "p99_latency_seconds": 0.41},
        evidence={"value": "0.052"},
        steps=[
            StepRecord(
                id="emergency_stop",
                name="Step 1: Emergency Stop",
                budget_seconds=10,
                started_at=at,
                ended_at=at + timedelta(seconds=0.09),
                outcome="ok",
            )
        ],
    )


async def test_each_audience_hears_its_own_message(
    acts: RollbackActivities, simulator: SimulatorServer, notifier: ConsoleNotifier, policy: Policy
) -> None:
    deployment = await deploy(
        simulator, 25, treatment_error_rate=0.05, treatment_sla_recall_at_50=0.9
    )
    inp = StakeholderNotificationInput(
        ctx=ctx(deployment),
        notifications=policy.notifications,
        incident=audience_incident(deployment),
    )
    result = await acts.stakeholder_notification(inp)
    sent = {m.channel: m.text for m in notifier.sent}

    engineering = sent["#sprint-1-channel"]
    assert engineering.startswith(f"*Rollback of {deployment}* (Trigger 1: Critical Error Rate")
    assert "traffic reverted 0.09 s after the trigger" in engineering
    assert "• error_rate: 0.052 → " in engineering  # before (at the trigger) → now
    assert "• p99_latency_seconds: 0.41 → " in engineering
    assert "✅ Step 1: Emergency Stop: 0.09 s of 10s" in engineering
    assert "Temporal Web UI>" in engineering and f"`rollback report -d {deployment}`" in engineering

    product = sent["#search-product"]
    assert "Affected: 1.250% of all queries, for 0.09 s (10:00 to 10:00 UTC)" in product
    assert "What users saw: some searches failed with an error." in product
    assert "error_rate" not in product and "Figures" not in product

    leadership = sent["#eng-leadership"]
    assert len(leadership.splitlines()) == 3, leadership
    assert "the 25% canary was rolled back after Trigger 1: Critical Error Rate" in leadership

    [held] = [a for a in result.audiences if a.audience == "customer_comms"]
    assert held.held_for_approval
    wording = held.wording
    assert wording.startswith("Between 10:00 and 10:00 UTC, some searches failed with an error.")
    for metric_talk in ("error_rate", "p99", "0.0", "%", "Trigger", "canary"):
        assert metric_talk not in wording, (metric_talk, wording)


def test_every_fact_of_the_wording_is_computed(policy: Policy) -> None:
    told = audience_facts.facts(
        audience_incident("search-a"),
        figures_now=None,
        impact="none",
        sla="held",
        affected_share=0.0004,
        workflow_url="http://ui/x",
    )
    assert set(told) == set(FACTS)
    assert all(value is not None for value in told.values()), told
    assert "unread (metrics unavailable)" in str(told["figures"])
    for audience in policy.notifications.audiences:
        assert audience.template is not None
        rendered = render(audience.template, told)
        assert rendered is not None
        assert "{" not in rendered and "}" not in rendered, rendered


def test_a_missing_value_chooses_other_words_never_a_placeholder_sentence(policy: Policy) -> None:
    """Issue 20: "Between 12:38 and not yet UTC", "for not known yet" were rendered into
    sentences. A template naming a fact not known yet is not used; the engine's plain words,
    from the facts there are, are."""
    unreverted = audience_incident("search-a")
    del unreverted.instants["traffic_reverted"]
    told = audience_facts.facts(
        unreverted,
        figures_now=None,
        impact="none",
        sla="held",
        affected_share=None,
        workflow_url="http://ui/x",
    )
    assert told["ended"] is None and told["duration"] is None and told["affected_share"] is None
    for audience in policy.notifications.audiences:
        assert audience.template is not None
        if {"ended", "duration", "affected_share", "reversion"} & named_facts(audience.template):
            assert render(audience.template, told) is None
    words = audience_facts.plain(told)
    for never in ("not yet", "not known", "unknown", "None", "unmeasured of"):
        assert never not in words, words
    assert words.startswith("*Rollback of search-a*")


def test_the_impact_window_runs_from_the_breach_start() -> None:
    """Issue 20: "Between 12:39 and 12:41" for a fault that began at 12:34."""
    at = datetime(2026, 3, 2, 12, 39, tzinfo=UTC)
    summary = incident(
        "search-a",
        instants={
            "breach": at - timedelta(minutes=5),
            "trigger": at,
            "traffic_reverted": at + timedelta(minutes=2),
        },
    )
    told = audience_facts.facts(
        summary,
        figures_now={},
        impact="none",
        sla="held",
        affected_share=0.001,
        workflow_url="http://ui/x",
    )
    assert (told["started"], told["ended"], told["duration"]) == ("12:34", "12:41", "7m")


def test_while_an_action_is_unconfirmed_audiences_hear_what_is_done_and_what_is_not() -> None:
    summary = incident(
        "search-a",
        unconfirmed=["Traffic split to control"],
        confirmed=["Stop hedging-service"],
    )
    del summary.instants["traffic_reverted"]
    told = audience_facts.facts(
        summary,
        figures_now={},
        impact="none",
        sla="held",
        affected_share=None,
        workflow_url="http://ui/x",
    )
    words = audience_facts.interim(summary, told)
    assert "rollback under way" in words
    assert "Done: Stop hedging-service." in words
    assert "Still being done: Traffic split to control." in words
    assert "not yet confirmed back on the previous version" in words
    for never in ("rolled back", "reverted", "normal"):
        assert never not in words.lower(), words

    refused = incident(
        "search-a",
        unconfirmed=["Traffic split to control", "Stop hedging-service"],
        confirmed=[],
        failed=["Stop hedging-service"],
    )
    words = audience_facts.interim(refused, told)
    assert "Still being done: Traffic split to control." in words  # not the refused one
    assert "Failed, in the on-call's hands: Stop hedging-service." in words


def test_approved_words_never_fall_back_to_the_engines_summary(policy: Policy) -> None:
    """A held audience (customers) whose template names a fact not known yet waits; the
    engine's plain summary (links, commands) is for the teams, not for customers."""
    customers = next(a for a in policy.notifications.audiences if a.approval is not None)
    told = audience_facts.facts(
        audience_incident("search-a"),
        figures_now=None,
        impact="none",
        sla="held",
        affected_share=None,
        workflow_url="http://ui/x",
    )
    assert missing_facts(customers, told) == []
    told["ended"] = None
    assert missing_facts(customers, told) == ["ended"]


def test_a_template_naming_an_unknown_fact_is_refused(policy: Policy) -> None:
    data = policy.model_dump(mode="json")
    data["notifications"]["audiences"][0]["template"] = "Hello {deployment}, {mood}"
    with pytest.raises(ValidationError, match=r"unknown fact\(s\) mood"):
        Policy.model_validate(data, context=FILE)
    Policy.model_validate(data)  # a recorded policy decodes: it was judged when it was read


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
    assert "Told: SRE On-call: Pager; Sprint DRI: Ann, Bob" in escalation
    assert escalated.notified == ["pager", "ann", "bob"]
    assert progress == "[DRILL] Phase 1 started"
    assert "Immediate actions for search-a: is due" in notice and "- Team Debrief" in notice
