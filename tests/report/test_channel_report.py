"""The compact report the channel receives at the end of a rollback."""

from __future__ import annotations

from activities.models import StepContext
from activities.notify import ConsoleNotifier
from activities.report import ReportInput, channel_body, channel_title, post_report
from runbook.policy import Policy
from runbook.report import build_report
from tests.report.test_report import NOW, automatic_drill, two_person_rollback


def ctx(drill: bool = False) -> StepContext:
    return StepContext(
        deployment="search-b",
        rollback_id="rollback-search-b/run-1",
        channel="#sprint-1-channel",
        drill=drill,
        step_name="Rollback report",
    )


def test_channel_text_is_compact_and_complete(policy: Policy) -> None:
    made = build_report(two_person_rollback(policy), generated_at=NOW, policy=policy)
    assert channel_title(made) == "Rollback report: search-b: rolled back"
    text = channel_body(made)
    lines = text.splitlines()
    assert "*Trigger:* Trigger 5: Quality Regression at 50% (10:00:00 UTC)" in text
    assert (
        "*Decision:* manual by QA DRI (qa-dri), Sprint DRI (Search) (dri-search) at 10:01:30 UTC, "
        "90.0 s after the trigger, within the 2m window"
    ) in text
    assert "✅ Step 1: Emergency Stop: 4.00 s of 10s" in lines
    assert "✅ Step 2: Configuration Revert: 25.0 s of 20s (late)" in lines
    assert "❌ Step 7: Recovery Planning: 10.0 s of 5m" in lines
    assert "✅ Manual rollback: decision to traffic reversion: 4.00 s (target < 5m)" in lines
    assert "*Escalations:* 2; follow-ups `follow-ups-search-b-20260302T100134`" in lines
    assert "*Leading hypothesis:* treatment error rate 40× control" in lines
    assert lines[-1] == "Full report: `rollback report -d search-b`"
    assert len(lines) < 24


async def test_post_report_once_per_key_and_drill_marked(policy: Policy) -> None:
    notifier = ConsoleNotifier()
    inp = ReportInput(ctx=ctx(drill=True), status=automatic_drill(policy), policy=policy)
    key = "rollback-search-d/run-1/report/post"
    first = await post_report(notifier, inp, key=key)
    again = await post_report(notifier, inp, key=key)  # a retried activity
    assert first.posted and again.posted
    # Trigger 1's own 30 s, the plan's 60 s, stabilization and communication.
    assert first.summary == "report posted to #sprint-1-channel: 4 target(s) missed"
    assert len(notifier.sent) == 1
    sent = notifier.sent[0]
    assert sent.channel == "#sprint-1-channel" and sent.kind == "post"
    assert sent.text.startswith("[DRILL] 📄 Rollback report: search-d (drill): ")
    assert "❌ Automated rollback: trigger to traffic reversion: 75.0 s (target < 1m)" in sent.text


def test_posted_at_the_end_of_step_7_the_targets_are_judged(policy: Policy) -> None:
    """The workflow posts the report once Step 7 has ended, before it enters its watch."""
    status = two_person_rollback(policy).model_copy(update={"state": "investigating"})
    status.instants.pop("first_notification")
    report = build_report(status, generated_at=NOW, policy=policy)
    results = {t.id: t.result for t in report.response_times}
    assert results == {
        "trigger:quality_regression": "pass",
        "manual_rollback": "pass",
        "stabilization": "pass",
        "communication": "fail",
    }
    running = status.model_copy(update={"steps": status.steps[:3]})
    pending = build_report(running, generated_at=NOW, policy=policy)
    assert {t.id: t.result for t in pending.response_times}["communication"] == "pending"
