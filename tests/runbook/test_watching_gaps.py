"""Only time between readings taken counts as sustained: two breaching readings with the worker
down between them are not a sustained breach."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from runbook.watching import Clock, Condition, observe

P99 = Condition(
    id="p99_latency",
    name="Trigger 2",
    trigger="p99_latency",
    metric="p99_latency_increase",
    comparison=">",
    threshold=0.15,
    breach_when_holds=True,
    sustain=timedelta(minutes=5),
)
T0 = datetime(2026, 12, 2, 10, 0, tzinfo=UTC)
EVERY = timedelta(seconds=15)


def test_no_reading_for_six_minutes_is_a_gap_not_a_sustained_breach() -> None:
    clock = Clock()
    assert observe(P99, clock, T0, 0.4, EVERY) == "breaching"
    later = T0 + timedelta(minutes=6)  # nothing read in between (the worker was down)
    assert observe(P99, clock, later, 0.4, EVERY) == "breaching"
    assert clock.sustained_seconds == 0
    verdicts = [observe(P99, clock, later + EVERY * i, 0.4, EVERY) for i in range(1, 21)]
    assert verdicts[:19] == ["breaching"] * 19 and verdicts[19] == "sustained"  # 5 m observed


def test_readings_at_the_interval_count_and_a_late_one_within_two_intervals_too() -> None:
    clock = Clock()
    observe(P99, clock, T0, 0.4, EVERY)
    observe(P99, clock, T0 + timedelta(seconds=30), 0.4, EVERY)  # one reading late: counted
    assert clock.sustained_seconds == 30
