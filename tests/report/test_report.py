"""The report's figures from statuses whose every instant is known (built by hand)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from runbook.history_timeline import HistoryEntry, HistoryTimeline
from runbook.policy import Policy
from runbook.report import RollbackReport, build_report
from runbook.status import (
    ExtendedDecision,
    FollowUpItem,
    FollowUpsStatus,
    OpenDecision,
    RankedHypothesis,
    ResponseTime,
    RollbackStatus,
    RootCauseMaterial,
    StepRecord,
    TimelineEntry,
)

T0 = datetime(2026, 3, 2, 10, 0, 0, tzinfo=UTC)
NOW = T0 + timedelta(hours=3)
REPORT_KEYS = {
    "report_version",
    "deployment",
    "workflow_id",
    "run_id",
    "drill",
    "policy",
    "state",
    "outcome",
    "outcome_detail",
    "closed",
    "generated_at",
    "trigger",
    "decision",
    "steps",
    "actions",
    "response_times",
    "reversion_measured_from",
    "intervals",
    "recovery",
    "escalations",
    "root_cause",
    "comms",
    "timeline_source",
    "acts",
    "signatures",
    "timeline",
    "notes",
}


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def steps(
    policy: Policy, spans: list[tuple[float, float | None]], **last: object
) -> list[StepRecord]:
    records = []
    for spec, (start, end) in zip(policy.steps(), spans, strict=False):
        records.append(
            StepRecord(
                id=spec.id,
                name=spec.name,
                budget_seconds=spec.budget.total_seconds(),
                started_at=at(start),
                ended_at=at(end) if end is not None else None,
                outcome="ok" if end is not None else "running",
                late=end is not None and end - start > spec.budget.total_seconds(),
                summary=f"{spec.id} done",
            )
        )
    if last:
        records[-1] = records[-1].model_copy(update=last)
    return records


def entry(seconds: float, kind: str, message: str, by: str | None = None) -> TimelineEntry:
    return TimelineEntry(at=at(seconds), kind=kind, message=message, by=by)


def two_person_rollback(policy: Policy) -> RollbackStatus:
    """quality_regression at 50 %: QA DRI + Sprint DRI approve 90 s into the 2-minute window."""
    spans: list[tuple[float, float | None]] = [
        (90, 94),  # Step 1: 4 s of 10 s
        (94, 119),  # Step 2: 25 s of 20 s (late)
        (119, 149),
        (149, 269),
        (269, 279),
        (279, 339),
        (339, 349),
    ]
    instants = {
        "trigger": at(0),
        "decision": at(90),
        "traffic_reverted": at(94),
        "stabilized": at(269),
        "first_notification": at(279),
    }
    return RollbackStatus(
        deployment="search-b",
        state="following_up",
        drill=False,
        trigger="quality_regression",
        phase=50,
        mode="manual",
        decision=None,
        decided_by=["qa-dri", "dri-search"],
        outcome="rolled back",
        instants=instants,
        timeline=[
            entry(0, "trigger", "Trigger 5: Quality Regression at 50% (cli)", "qa-dri"),
            entry(0, "window_opened", "decision window of 2m for QA DRI + Sprint DRI"),
            entry(0, "state", "state: awaiting_decision"),
            entry(30, "decision_rejected", "approve by eng-manager rejected", "eng-manager"),
            entry(60, "decision_vote", "approve by qa-dri recorded", "qa-dri"),
            entry(90, "decision", "QA DRI and Sprint DRI approved rollback", "qa-dri, dri-search"),
            entry(114, "escalation", "Step 2: Configuration Revert missed its budget of 20s"),
            entry(349, "escalation", "Step 7: Recovery Planning failed: planner down"),
        ],
        steps=steps(policy, spans, outcome="failed", summary="planner down"),
        response_times=[],
        intervals={"trigger_to_decision": 90.0},
        follow_ups_id="follow-ups-search-b-20260302T100134",
        last_decision=OpenDecision(
            triggers=["quality_regression"],
            phase=50,
            opened_at=at(0),
            deadline=at(120),
            default_action="rollback",
            approvers=[["qa_dri", "sprint_dri"]],
            extend_by_seconds=None,
            extend_until=None,
            votes={"qa-dri": "approve", "dri-search": "approve"},
        ),
        root_cause=RootCauseMaterial(
            summary="2 hypotheses from 40 log lines",
            hypotheses=["treatment error rate 40× control", "hedging timeouts in the log"],
            ranked=[
                RankedHypothesis(
                    text="treatment error rate 40× control", severity="critical", area="errors"
                ),
                RankedHypothesis(text="hedging timeouts in the log", severity="high", area="logs"),
            ],
            metrics={"error_rate": {"treatment": 0.02, "control": 0.0005}},
            log_lines=40,
            log_excerpt=["10:00:01 ERROR hedging timeout"],
        ),
    )


def follow_ups_of(policy: Policy) -> FollowUpsStatus:
    reverted = at(94)
    states = {
        "first_hour": ("done", "dri-search", "acknowledged"),
        "performance_2h": ("missed", None, "p99 latency 1.4× baseline"),
        "stability_4h": ("done", "system", "no incident since the rollback"),
    }
    items = []
    for spec in policy.follow_ups:
        state, by, detail = states.get(spec.id, ("scheduled", None, ""))
        items.append(
            FollowUpItem(
                id=spec.id,
                name=spec.name,
                owner=spec.owner,
                check=spec.check,
                due_at=reverted + spec.after,
                state=state,  # type: ignore[arg-type]
                done_by=by,
                done_at=reverted + spec.after if state != "scheduled" else None,
                detail=detail,
            )
        )
    return FollowUpsStatus(
        deployment="search-b",
        reverted_at=reverted,
        items=items,
        incidents=[],
        timeline=[
            TimelineEntry(
                at=reverted + timedelta(hours=2),
                kind="escalation",
                message="Performance restoration check (2 hours): p99 latency 1.4× baseline",
            )
        ],
    )


def test_steps_decision_and_response_times_of_a_two_person_rollback(policy: Policy) -> None:
    report = build_report(
        two_person_rollback(policy),
        generated_at=NOW,
        policy=policy,
        follow_ups=follow_ups_of(policy),
    )

    assert [s.duration_seconds for s in report.steps] == [4, 25, 30, 120, 10, 60, 10]
    assert [s.budget_seconds for s in report.steps] == [10, 20, 60, 180, 60, 300, 300]
    assert [s.within_budget for s in report.steps] == [True, False, True, True, True, True, True]
    assert [s.late for s in report.steps] == [False, True, False, False, False, False, False]
    assert report.steps[-1].outcome == "failed" and report.steps[-1].summary == "planner down"

    d = report.decision
    assert (d.mode, d.verdict, d.decided_by) == ("manual", "rollback", ["qa-dri", "dri-search"])
    assert d.decided_by_names == ["QA DRI (qa-dri)", "Sprint DRI (Search) (dri-search)"]
    assert d.decided_at == at(90) and d.seconds_after_trigger == 90
    assert d.window_seconds == 120 and d.window_opened_at == at(0) and d.deadline == at(120)
    assert d.within_window is True and d.default_applied is False and d.extended is False
    assert d.approvers == "QA DRI + Sprint DRI" and d.default_action == "rollback"
    assert d.rejected_attempts == 1
    assert d.votes == {"qa-dri": "approve", "dri-search": "approve"}

    # Manual rollback: the automated target does not apply; every instant is 90 s + x.
    times = {t.id: (t.seconds, t.target_seconds, t.result) for t in report.response_times}
    assert times == {
        "trigger:quality_regression": (90.0, 600.0, "pass"),  # "QA DRI has 10 minutes"
        "manual_rollback": (4.0, 300.0, "pass"),
        "stabilization": (179.0, 600.0, "pass"),
        "communication": (189.0, 900.0, "pass"),
    }
    own, manual = report.response_times[:2]
    assert (own.basis, own.start, own.end) == ("trigger", "trigger", "decision")
    assert (manual.basis, manual.start, manual.end) == ("plan", "decision", "traffic_reverted")
    assert report.reversion_measured_from == "decision"


def test_recovery_escalations_and_root_cause(policy: Policy) -> None:
    report = build_report(
        two_person_rollback(policy),
        generated_at=NOW,
        policy=policy,
        follow_ups=follow_ups_of(policy),
    )
    targets = {t.id: t.result for t in report.recovery.targets}
    assert targets == {
        "system_stability": "pass",  # the 4-hour no-new-incident follow-up is done
        "performance_restoration": "fail",  # the 2-hour baseline check was missed
        "user_impact": "not_measured",
        "data_integrity": "not_measured",
    }
    assert report.recovery.escalations == 3
    assert report.recovery.incidents_after_rollback == 0
    assert [f.state for f in report.recovery.follow_ups] == [
        "done",
        "missed",
        "done",
        "scheduled",
        "scheduled",
    ]
    assert [(e.source, e.at) for e in report.escalations] == [
        ("rollback", at(114)),
        ("rollback", at(349)),
        ("follow_ups", at(94) + timedelta(hours=2)),
    ]
    assert report.root_cause is not None and report.root_cause.source == "status"
    assert report.root_cause.material.ranked[0].severity == "critical"


def test_markdown_carries_each_figure(policy: Policy) -> None:
    report = build_report(
        two_person_rollback(policy),
        generated_at=NOW,
        policy=policy,
        follow_ups=follow_ups_of(policy),
    )
    md = report.to_markdown()
    assert md.startswith("# Rollback report: search-b\n")
    assert "DRILL" not in md
    assert "| Step 2: Configuration Revert | 10:01:34.000 | 10:01:59.000 | 25.0 s | 20s |" in md
    assert "ok (late)" in md and "| failed | planner down |" in md
    assert (
        "| Manual rollback: decision to traffic reversion | the plan | 4.000 s | < 5m | **PASS** |"
        in md
    )
    assert "| Trigger 5: Quality Regression: trigger to decision | the trigger | 90.0 s" in md
    assert "measured from the decision to the confirmed split" in md
    assert "2m for QA DRI + Sprint DRI, opened 2026-03-02 10:00:00 UTC" in md
    assert "| Within the window | yes |" in md and "| Rejected attempts | 1 |" in md
    assert "| Performance restoration: All metrics" in md and "| fail |" in md
    assert "1. **critical** (errors): treatment error rate 40× control" in md
    assert "| error_rate | 0.0005 | 0.02 |" in md
    assert "## Timeline (as the workflow recorded it)" in md
    assert "state: awaiting_decision" not in md  # state changes are in the steps and header


def test_json_has_the_documented_keys_and_round_trips(policy: Policy) -> None:
    report = build_report(
        two_person_rollback(policy),
        generated_at=NOW,
        policy=policy,
        follow_ups=follow_ups_of(policy),
    )
    data = report.model_dump(mode="json")
    assert set(data) == REPORT_KEYS
    assert data["steps"][1]["started_at"] == "2026-03-02T10:01:34Z"
    assert data["response_times"][0]["result"] == "pass"
    text = json.dumps(data)
    assert RollbackReport.model_validate_json(text) == report


def automatic_drill(policy: Policy) -> RollbackStatus:
    """error_rate at 25 %, a drill whose emergency stop took 75 s: the 60 s target is missed."""
    spans: list[tuple[float, float | None]] = [(0, 75), (75, 80)]
    return RollbackStatus(
        deployment="search-d",
        state="rolled_back",
        drill=True,
        trigger="error_rate",
        phase=25,
        mode="auto",
        decision=None,
        decided_by=["system"],
        outcome="rolled back",
        instants={"trigger": at(0), "decision": at(0), "traffic_reverted": at(75)},
        timeline=[entry(0, "decision", "automatic rollback", "system")],
        steps=steps(policy, spans),
        response_times=[],
    )


def test_automatic_drill_is_marked_and_misses_the_automated_target(policy: Policy) -> None:
    report = build_report(automatic_drill(policy), generated_at=NOW, policy=policy)
    assert report.drill is True
    times = {t.id: (t.seconds, t.result) for t in report.response_times}
    assert times["automated_rollback"] == (75.0, "fail")
    # The procedure ended without stabilizing: targets never reached are misses.
    assert times["stabilization"] == (None, "fail")
    d = report.decision
    assert (d.mode, d.decided_by_names, d.seconds_after_trigger) == ("auto", ["system"], 0.0)
    assert d.window_seconds is None and d.within_window is None and d.deadline is None
    assert report.steps[0].late is True and report.steps[0].within_budget is False
    assert {t.id: t.evidence for t in report.recovery.targets}["system_stability"] == (
        "drill: no follow-ups are scheduled"
    )
    md = report.to_markdown()
    assert md.startswith("# Rollback report: search-d (DRILL)\n")
    assert "> **Drill.**" in md
    assert (
        "| Automated rollback: trigger to traffic reversion | the plan | 75.0 s | < 1m | **FAIL** |"
        in md
    )
    assert (
        "| Trigger 1: Critical Error Rate: trigger to traffic reversion | the trigger | 75.0 s | "
        "< 30s | **FAIL** |" in md
    )
    assert "| Window | none: the plan has nobody decide" in md


def test_open_window_is_pending(policy: Policy) -> None:
    status = RollbackStatus(
        deployment="search-e",
        state="awaiting_decision",
        drill=False,
        trigger="gate_failure",
        phase=25,
        mode="manual",
        decision=OpenDecision(
            triggers=["gate_failure"],
            phase=25,
            opened_at=at(0),
            deadline=at(120),
            default_action="rollback",
            approvers=[["sprint_dri"]],
            extend_by_seconds=None,
            extend_until=None,
        ),
        decided_by=[],
        outcome=None,
        instants={"trigger": at(0)},
        timeline=[],
        steps=[],
        response_times=[],
    )
    report = build_report(status, generated_at=at(30), policy=policy)
    d = report.decision
    assert d.verdict is None and d.decided_at is None and d.within_window is None
    assert d.deadline == at(120) and d.window_seconds == 120 and d.approvers == "Sprint DRI"
    assert {t.result for t in report.response_times} == {"pending"}
    assert "| Verdict | pending |" in report.to_markdown()


def test_window_default_applied(policy: Policy) -> None:
    status = RollbackStatus(
        deployment="search-f",
        state="following_up",
        drill=False,
        trigger="gate_failure",
        phase=25,
        mode="manual",
        decision=None,
        decided_by=["default"],
        outcome="rolled back",
        instants={"trigger": at(0), "decision": at(120), "traffic_reverted": at(121)},
        timeline=[
            entry(0, "window_opened", "decision window of 2m for Sprint DRI"),
            entry(120, "window_expired", "no decision by 10:02:00 UTC: default action is rollback"),
        ],
        steps=steps(policy, [(120, 121)]),
        response_times=[],
    )
    report = build_report(status, generated_at=NOW, policy=policy)
    d = report.decision
    assert d.default_applied is True and d.decided_by_names == ["default"]
    assert d.seconds_after_trigger == 120 and d.window_seconds == 120
    assert d.window_opened_at == at(0) and d.deadline == at(120) and d.within_window is True
    assert d.default_action == "rollback" and d.approvers == "Sprint DRI"
    times = {t.id: (t.seconds, t.result) for t in report.response_times}
    assert times["manual_rollback"] == (1.0, "pass")


def test_a_continued_canary_has_no_response_times_to_judge(policy: Policy) -> None:
    status = RollbackStatus(
        deployment="search-g",
        state="continued",
        drill=False,
        trigger="gate_failure",
        phase=5,
        mode=None,
        decision=None,
        decided_by=[],
        outcome="canary continued",
        instants={"trigger": at(0)},
        timeline=[entry(40, "window_closed", "decision closed: denied: canary continues")],
        steps=[],
        response_times=[],
    )
    report = build_report(status, generated_at=NOW, policy=policy)
    assert report.decision.verdict == "continue"
    assert {t.result for t in report.response_times} == {"n/a"}


def test_without_a_policy_the_status_figures_and_ids_are_used(policy: Policy) -> None:
    status = automatic_drill(policy)
    status.response_times = [
        ResponseTime(
            id="automated_rollback",
            name="Automated rollback",
            seconds=75.0,
            target_seconds=60.0,
            met=False,
        )
    ]
    report = build_report(status, generated_at=NOW)
    assert report.policy is None and report.trigger.name == "error_rate"
    assert [(t.id, t.result, t.start) for t in report.response_times] == [
        ("automated_rollback", "fail", None)
    ]
    assert report.recovery.targets == []
    assert "Policy: unknown" in report.to_markdown()


def test_history_gives_the_evidence_and_the_timeline(policy: Policy) -> None:
    status = automatic_drill(policy)
    history = HistoryTimeline(
        workflow_id="rollback-search-d",
        run_id="run-1",
        workflow_type="RollbackWorkflow",
        deployment="search-d",
        drill=True,
        started_at=at(-0.01),
        entries=[
            HistoryEntry(
                event_id=2,
                at=at(-0.01),
                workflow_time=at(0),
                kind="signal",
                name="trigger",
                message="Trigger 1: Critical Error Rate (error_rate), from alertmanager",
                trigger="error_rate",
                payload={
                    "trigger": "error_rate",
                    "source": "alertmanager",
                    "reason": "error rate 2.1% for 2m",
                    "evidence": {"error_rate": "0.021"},
                    "links": ["http://grafana/d/search"],
                },
            ),
            HistoryEntry(
                event_id=9,
                at=at(0.1),
                kind="timer_started",
                name="2",
                message="budget of Step 1: Emergency Stop (10s) started",
                step="emergency_stop",
            ),
            HistoryEntry(
                event_id=12,
                at=at(3),
                kind="signal",
                name="trigger",
                message="Trigger 2 …",
                trigger="p99_latency",
                payload={"trigger": "p99_latency", "source": "alertmanager"},
            ),
        ],
        step_results={"recovery_planning": {"markdown": "# Recovery plan", "summary": ""}},
    )
    report = build_report(status, generated_at=NOW, policy=policy, history=history)
    t = report.trigger
    assert (t.source, t.reason, t.received, t.others) == (
        "alertmanager",
        "error rate 2.1% for 2m",
        2,
        ["p99_latency"],
    )
    assert t.evidence == {"error_rate": "0.021"} and t.links == ["http://grafana/d/search"]
    assert report.run_id == "run-1" and report.timeline_source == "history"
    assert [line.kind for line in report.timeline] == ["signal", "timer_started", "signal"]
    md = report.to_markdown()
    assert "budget of Step 1" not in md  # a budget timer that started in time is noise
    assert "- Evidence: error_rate = 0.021" in md
    assert report.root_cause is None  # Step 6 left nothing, in the status or the history


def test_an_investigation_extension_is_the_target_that_applied_and_the_report_says_why(
    policy: Policy,
) -> None:
    """Issue 20: "trigger to decision 678.9 s / 600 fail" for a decision the plan's own
    investigation allowance (10 → 30 minutes) permitted."""
    status = RollbackStatus(
        deployment="search-x",
        state="following_up",
        drill=False,
        trigger="quality_regression",
        phase=5,
        mode="manual",
        decision=None,
        decided_by=["qa-dri"],
        outcome="rolled back",
        instants={"trigger": at(0), "decision": at(678.9), "traffic_reverted": at(679.5)},
        timeline=[],
        steps=steps(policy, [(679, 680)]),
        response_times=[],
        decision_extended=ExtendedDecision(until=at(1140), by="QA DRI (qa-dri)", phase=5),
    )
    report = build_report(status, generated_at=NOW, policy=policy)
    [to_decision] = [t for t in report.response_times if t.end == "decision"]
    assert to_decision.result == "pass"
    assert (to_decision.target_seconds, to_decision.plan_target_seconds) == (1140, 600)
    assert "investigation extension at 5%, chosen by QA DRI (qa-dri)" in to_decision.why
    md = report.to_markdown()
    assert "by 19m (the plan's 10m, extended: the plan's investigation extension" in md
