"""Steps 3 and 4 and the follow-ups' baseline check: readings polled until criteria hold.

An unhealthy target is a result (`healthy=False`, every check's last value), never an
exception; only errors (metrics unreachable, a malformed answer) raise.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.checks import expected, judge, judge_quality
from activities.heartbeat import Beat, checkpoint
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


def heartbeat(progress: Any) -> None:
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
        self,
        deployment: str,
        criteria: Sequence[HealthCriterion],
        reverted_at: datetime,
        beat: Beat | None = None,
    ) -> list[CheckResult]:
        """Each criterion is read until it holds once or its own deadline
        (`reverted_at + within`) passes: held (when, and the reading), missed (the last reading),
        or unreadable (no reading before its deadline, and the last error). A failed reading is
        retried at the next poll; settled criteria are checkpointed in the heartbeat, so an
        attempt retried after a lost worker carries on where the last one was."""
        settled: dict[str, CheckResult] = {
            r.id: r for r in _restored(checkpoint()) if any(c.id == r.id for c in criteria)
        }
        last: dict[str, CheckResult] = {}
        stop_at = activity_deadline(self.margin)
        error: ApplicationError | None = None
        while True:
            pending = [c for c in criteria if c.id not in settled]
            if not pending:
                return [settled[c.id] for c in criteria]
            at = now()
            reading, error = await self._try_read(deployment, pending)
            for c in pending:
                if reading is not None:
                    last[c.id] = judge(c, reading, at)
                    if last[c.id].passed:
                        held = last[c.id]
                        held.detail = "; ".join(
                            filter(None, [held.detail, f"held at {at:%H:%M:%S} UTC"])
                        )
                        settled[c.id] = held
                        continue
                late = _lateness(c, reverted_at, stop_at, at)
                if late is not None:
                    settled[c.id] = _missed(c, last.get(c.id), late, error, at)
            done = [r.model_dump(mode="json") for r in settled.values()]
            if beat is not None:
                beat.update(done)
            else:
                heartbeat(done)
            if len(settled) == len(criteria):
                continue
            await asyncio.sleep(self.poll_interval)

    async def deep(
        self,
        deployment: str,
        validation: DeepValidation,
        watched: Sequence[HealthCriterion],
        observe_for: timedelta,
    ) -> list[CheckResult]:
        """Smoke tests, then an observation period over which the quality checks and the
        watched health criteria are read; each must hold at its end. A reading that fails is
        retried at the next poll; a check never read in the period is unreadable, not healthy."""
        checks = [await self.smoke.run(deployment, test) for test in validation.smoke_tests]
        heartbeat(f"{sum(c.passed for c in checks)} of {len(checks)} smoke tests passed")
        stop_at = activity_deadline(self.margin)
        end = now() + observe_for
        if stop_at is not None:
            end = min(end, stop_at)
        quality_names = {q.metric for q in validation.quality}
        breaches: dict[str, int] = {}
        readings = failures = 0
        results: list[CheckResult] = []
        error: ApplicationError | None = None
        while True:
            reading, failed = await self._try_read_names(
                deployment,
                quality_names | {c.metric for c in watched},
                {c.metric for c in watched if c.relative_to_baseline},
            )
            at = now()
            if reading is None:
                failures, error = failures + 1, failed
            else:
                readings += 1
                results = [
                    judge_quality(q, reading.values.get(q.metric), at) for q in validation.quality
                ]
                results += [judge(c, reading, at) for c in watched]
                for r in results:
                    breaches[r.id] = breaches.get(r.id, 0) + (not r.passed)
            if at >= end:
                break
            heartbeat(f"observing: {readings} readings, {failures} failed")
            await asyncio.sleep(min(self.poll_interval, max((end - at).total_seconds(), 0)))
        if not results:
            why = error.message if error is not None else "no reading"
            results = [
                _unreadable(q.id, q.name, f"unreadable over the observation: {why}", at)
                for q in validation.quality
            ] + [
                _unreadable(c.id, c.name, f"unreadable over the observation: {why}", at)
                for c in watched
            ]
        for r in results:
            missed = breaches.get(r.id, 0) - (not r.passed)
            if missed:
                r.detail = "; ".join(
                    filter(None, [r.detail, f"out of range in {missed} earlier reading(s)"])
                )
            if failures and not r.unreadable:
                r.detail = "; ".join(filter(None, [r.detail, f"{failures} reading(s) failed"]))
        return checks + results

    async def _try_read(
        self,
        deployment: str,
        criteria: Sequence[HealthCriterion],
    ) -> tuple[Reading | None, ApplicationError | None]:
        """A reading, or the error that prevented it: metrics that are down, slow or answer
        nonsense are retried at the next poll until each criterion's deadline. Only a policy that
        names no query for a metric fails at once (no retry can fix it)."""
        return await self._try_read_names(
            deployment,
            {c.metric for c in criteria},
            {c.metric for c in criteria if c.relative_to_baseline},
        )

    async def _try_read_names(
        self, deployment: str, names: set[str], baselines: set[str]
    ) -> tuple[Reading | None, ApplicationError | None]:
        try:
            return await self.reader.read(deployment, names, baselines), None
        except ApplicationError as error:
            if error.type == "PolicyIncomplete":
                raise
            return None, error


def _missed(
    criterion: HealthCriterion,
    last: CheckResult | None,
    late: str,
    error: ApplicationError | None,
    at: datetime,
) -> CheckResult:
    if last is not None:
        last.detail = "; ".join(filter(None, [last.detail, f"missed: {late}"]))
        return last
    why = f"; last error: {error.message}" if error is not None else ""
    return CheckResult(
        id=criterion.id,
        name=criterion.name,
        passed=False,
        expected=expected(criterion),
        detail=f"unreadable: no reading {late.removeprefix('not met ')}{why}",
        at=at,
        unreadable=True,
    )


def _unreadable(id_: str, name: str, detail: str, at: datetime) -> CheckResult:
    return CheckResult(id=id_, name=name, passed=False, detail=detail, at=at, unreadable=True)


def _restored(saved: Any) -> list[CheckResult]:
    if not isinstance(saved, list):
        return []
    try:
        return [CheckResult.model_validate(item) for item in saved]
    except ValueError:
        return []


def _lateness(
    criterion: HealthCriterion, reverted_at: datetime, stop_at: datetime | None, at: datetime
) -> str | None:
    if at >= reverted_at + criterion.within:
        return f"not met within {format_duration(criterion.within)} of the traffic reversion"
    if stop_at is not None and at >= stop_at:
        return "not met before the end of the step's budget"
    return None
