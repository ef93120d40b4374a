"""The pure parts of Steps 6 and 7: hypotheses, log excerpt, the plan without an analysis."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from activities import recovery
from activities.models import RecoveryPlanInput
from activities.rca import EXCERPT_LINES, LogLine, excerpt, hypotheses
from tests.activities.helpers import ctx, holders, incident

T0 = datetime(2025, 9, 8, 16, 0, tzinfo=UTC)


def log(i: int, level: str, message: str) -> LogLine:
    return LogLine(T0 + timedelta(seconds=i), level, "treatment", message)


def test_hypotheses_rank_the_worst_difference_first() -> None:
    found = hypotheses(
        {
            "treatment": {"error_rate": 0.0005, "p99_latency_seconds": 0.41, "ndcg_at_10": 0.50},
            "control": {"error_rate": 0.0005, "p99_latency_seconds": 0.18, "ndcg_at_10": 0.5234},
        },
        [],
    )
    assert [(h.severity, h.area) for h in found] == [("high", "latency"), ("medium", "quality")]
    assert found[0].text.startswith("treatment p99 latency 2.3× control (410 ms vs 180 ms)")


def test_no_difference_gives_no_hypothesis() -> None:
    same = {"error_rate": 0.0005, "p99_latency_seconds": 0.18}
    assert hypotheses({"treatment": same, "control": same}, []) == []


def test_the_excerpt_keeps_each_kind_of_error_once_and_the_latest_lines() -> None:
    lines = [log(i, "ERROR", f"shard-{i % 4} answered 500") for i in range(100)]
    lines += [log(100 + i, "INFO", f"tick {i}") for i in range(50)]
    lines.insert(10, log(10, "WARN", "fault injected"))
    picked = excerpt(lines)
    assert len(picked) == EXCERPT_LINES
    assert sum("ERROR" in line for line in picked) == 1
    assert sum("WARN" in line for line in picked) == 1
    assert picked[-1].endswith("INFO treatment: tick 49")


def test_many_distinct_errors_are_capped() -> None:
    lines = [
        log(i, "ERROR", f"error kind {chr(65 + i % 26)}{chr(65 + i // 26)}") for i in range(60)
    ]
    assert len(excerpt(lines)) == EXCERPT_LINES


def test_a_plan_without_root_cause_analysis_says_so() -> None:
    inp = RecoveryPlanInput(
        ctx=ctx("search-a"),
        incident=incident("search-a"),
        root_cause=None,
        owners=[holders("sprint_dri", "Sprint DRI", "ann")],
    )
    assert "root cause analysis did not complete" in recovery.plan(inp)
    assert recovery.summary(inp).startswith("recovery plan with 1 issue(s), most severe high")
