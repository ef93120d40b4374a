"""Steps 3 and 4 and the follow-ups' baseline check: readings polled until criteria hold.

An unhealthy target is a result (`healthy=False`, every check's last value), never an
exception; only errors (metrics unreachable, a malformed answer) raise.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.checks import judge, judge_quality
from activities.metrics import MetricsReader, Reading
from activities.models import CheckResult
from activities.smoke import SmokeTests
from runbook.durations import format_duration
from runbook.policy import DeepValidation, HealthCriterion


def now() -> datetime:
    return datetime.now(UTC)


def activity_deadline(margin: float) -> datetime | None:
    """When this attempt must have answered, less `margin` for the last reading.

    None outside a worker, or when that moment has already passed (a test's activity
    environment reports 1970): polling is then bounded by the criteria's own deadlines.
    """
    if not activity.in_activity():
        return None
    info = activity.info()
    ends = []
    if info.start_to_close_timeout:
        ends.append(info.started_time + info.start_to_close_timeout)
    if info.schedule_to_close_timeout:
        ends.append(info.scheduled_time + info.schedule_to_close_timeout)
    if not ends:
        return None
    deadline = min(ends) - timedelta(seconds=margin)
    return deadline if deadline > now() else None


def heartbeat(progress: str) -> None:
    if activity.in_activity():
        activity.heartbeat(progress)


class Health:
    def __init__(
        self, reader: MetricsReader, smoke: SmokeTests, poll_interval: float, margin: float
    ) -> None:
        self.reader = reader
        self.smoke = smoke
        self.poll_interval = poll_interval
        self.margin = margin

    async def read(self, deployment: str, criteria: Sequence[HealthCriterion]) -> Reading:
        return await self.reader.read(
            deployment,
            {c.metric for c in criteria},
            {c.metric for c in criteria if c.relative_to_baseline},
        )

    async def once(self, deployment: str, criteria: Sequence[HealthCriterion]) -> list[CheckResult]:
        reading = await self.read(deployment, criteria)
        at = now()
        return [judge(c, reading, at) for c in criteria]

    async def until_held(
        self, deployment: str, criteria: Sequence[HealthCriterion], reverted_at: datetime
    ) -> list[CheckResult]:
        """Each criterion is polled until it holds once, or its deadline
        (`reverted_at + within`) or the step's own deadline passes."""
        stop_at = activity_deadline(self.margin)
        last: dict[str, CheckResult] = {}
        settled: set[str] = set()
        while True:
            at = now()
            reading, error = await self._try_read(deployment, criteria)
            for c in criteria:
                if c.id in settled:
                    continue
                if reading is not None:
                    last[c.id] = judge(c, reading, at)
                    if last[c.id].passed:
                        settled.add(c.id)
                        continue
                late = _lateness(c, reverted_at, stop_at, at)
                if late is None:
                    continue
                if c.id not in last:
                    assert error is not None
                    raise error
                last[c.id].detail = "; ".join(filter(None, [last[c.id].detail, late]))
                settled.add(c.id)
            if len(settled) == len(criteria):
                return [last[c.id] for c in criteria]
            heartbeat(
                f"{sum(last[i].passed for i in settled if i in last)} of "
                f"{len(criteria)} criteria hold"
            )
            await asyncio.sleep(self.poll_interval)

    async def deep(
        self,
        deployment: str,
        validation: DeepValidation,
        watched: Sequence[HealthCriterion],
        observe_for: timedelta,
    ) -> list[CheckResult]:
        """Smoke tests, then an observation period over which the quality checks and the
        watched health criteria are read; each must hold at its end."""
        checks = [await self.smoke.run(deployment, test) for test in validation.smoke_tests]
        heartbeat(f"{sum(c.passed for c in checks)} of {len(checks)} smoke tests passed")
        stop_at = activity_deadline(self.margin)
        end = now() + observe_for
        if stop_at is not None:
            end = min(end, stop_at)
        quality_names = {q.metric for q in validation.quality}
        breaches: dict[str, int] = {}
        readings = 0
        while True:
            reading = await self.reader.read(
                deployment,
                quality_names | {c.metric for c in watched},
                {c.metric for c in watched if c.relative_to_baseline},
            )
            at = now()
            readings += 1
            results = [
                judge_quality(q, reading.values.get(q.metric), at) for q in validation.quality
            ]
            results += [judge(c, reading, at) for c in watched]
            for r in results:
                breaches[r.id] = breaches.get(r.id, 0) + (not r.passed)
            if at >= end:
                break
            heartbeat(f"observing: {readings} readings")
            await asyncio.sleep(min(self.poll_interval, max((end - at).total_seconds(), 0)))
        for r in results:
            missed = breaches[r.id] - (not r.passed)
            if missed:
                r.detail = "; ".join(
                    filter(None, [r.detail, f"out of range in {missed} earlier reading(s)"])
                )
        return checks + results

    async def _try_read(
        self, deployment: str, criteria: Sequence[HealthCriterion]
    ) -> tuple[Reading | None, ApplicationError | None]:
        """A reading, or the retryable error that prevented it (the next poll may succeed)."""
        try:
            return await self.read(deployment, criteria), None
        except ApplicationError as error:
            if error.non_retryable:
                raise
            return None, error


def _lateness(
    criterion: HealthCriterion, reverted_at: datetime, stop_at: datetime | None, at: datetime
) -> str | None:
    if at >= reverted_at + criterion.within:
        return f"not met within {format_duration(criterion.within)} of the traffic reversion"
    if stop_at is not None and at >= stop_at:
        return "not met before the end of the step's budget"
    return None
