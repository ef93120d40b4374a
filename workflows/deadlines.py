"""The plan's clocks beside the procedure: each phase's budget (Phase 1: 60 s, Phase 2: 5 min) and
each response target (the trigger's own, 30 s to traffic reversion for the error rate; the plan's
generic ones, communication within 15 min included).

Each escalates once, when its time passes, saying what is still running or not reached; when the
late thing finally happens, the timeline and the channel say by how much it was missed.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from datetime import datetime, timedelta
from types import MappingProxyType

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from runbook.durations import format_duration, spoken
    from runbook.policy import Phase
    from runbook.status import ResponseTime
    from runbook.timing import END_NAMES
    from workflows.rollback_record import RollbackRecord

INSTANT_NAMES = MappingProxyType(
    {
        **END_NAMES,
        "trigger": "trigger",
        "stabilized": "stabilization",
        "first_notification": "first stakeholder notification",
    }
)


class Deadlines:
    def __init__(
        self,
        rb: RollbackRecord,
        response_times: Callable[[], list[ResponseTime]],
        finished: Callable[[], bool],
    ) -> None:
        self.rb = rb
        self._response_times = response_times
        self._finished = finished
        self._missed: dict[str, datetime] = rb.state.missed_targets
        """Targets escalated, with when they were due (the run's state: carried over)."""

    def start(self) -> None:
        """At the procedure's start: every phase's budget and every response target."""
        started = workflow.now()
        for phase in self.rb.policy.procedure:
            if phase.budget is not None:
                self.rb.messenger.spawn(self._phase(phase, started))
        self.rb.messenger.spawn(self._targets())

    def watch_decision(
        self, closed: Callable[[], bool], ending: Callable[[], bool], latest: datetime
    ) -> None:
        """When a decision window opens: the targets that end at the decision (trigger →
        decision, 10 minutes for Trigger 5) escalate if they pass while it is still open; the
        procedure's watcher says by how much once it is decided. `closed`: this window has
        closed; `ending`: the run is ending; `latest`: when the window closes at the latest
        (its deadline, or how far it may be extended)."""
        self.rb.messenger.spawn(self._decision_targets(closed, ending, latest))

    async def _decision_targets(
        self, closed: Callable[[], bool], ending: Callable[[], bool], latest: datetime
    ) -> None:
        instants = self.rb.status.instants
        pending = [
            rt for rt in self._response_times() if rt.end == "decision" and rt.start in instants
        ]
        for rt in sorted(pending, key=lambda rt: rt.target_seconds):
            due = instants[rt.start] + timedelta(seconds=rt.target_seconds)
            if latest <= due:
                continue  # the window's default decides in time: nothing to watch
            if closed():
                return
            # Woken by the run's end only, not by the decision: a timer cancelled as another
            # fires trips the time-skipping test server. A millisecond after the due time, so
            # a window whose default lands exactly then meets the target.
            with contextlib.suppress(TimeoutError):
                await workflow.wait_condition(
                    ending,
                    timeout=max(due - workflow.now(), timedelta(0)) + timedelta(milliseconds=1),
                    timeout_summary=f"response target: {rt.name}",
                )
            if closed() or ending():
                return
            applies: ResponseTime | None = rt
            if self.rb.v20:
                applies = await self._extended(rt, closed, ending)
            if applies is not None and applies.id not in self._missed:
                self._miss(applies, reached=None)

    async def _extended(
        self, rt: ResponseTime, closed: Callable[[], bool], ending: Callable[[], bool]
    ) -> ResponseTime | None:
        """The target as it applies now: an investigation extension (the plan's allowance)
        moved it, so wait for the new due time; None when the window closed meanwhile."""
        instants = self.rb.status.instants
        while True:
            now = next((r for r in self._response_times() if r.id == rt.id), rt)
            due = instants[now.start] + timedelta(seconds=now.target_seconds)
            if due <= workflow.now():
                return now
            with contextlib.suppress(TimeoutError):
                await workflow.wait_condition(
                    ending,
                    timeout=due - workflow.now() + timedelta(milliseconds=1),
                    timeout_summary=f"response target (extended): {now.name}",
                )
            if closed() or ending():
                return None

    # --- phase budgets ------------------------------------------------------------------

    async def _phase(self, phase: Phase, procedure_started: datetime) -> None:
        rb = self.rb
        assert phase.budget is not None
        first = phase.steps[0].id if phase.steps else None
        await workflow.wait_condition(
            lambda: self._finished() or any(s.id == first for s in rb.status.steps)
        )
        started = next((s.started_at for s in rb.status.steps if s.id == first), procedure_started)
        budget = phase.budget
        remaining = started + budget - workflow.now()
        try:
            await workflow.wait_condition(
                lambda: self._phase_over(phase) or self._finished(),
                timeout=max(remaining, timedelta(0)),
                timeout_summary=f"{phase.name}: budget {format_duration(budget)}",
            )
            return
        except TimeoutError:
            running = [
                s.name + (f" ({s.summary})" if s.summary else "")
                for s in rb.status.steps
                if s.ended_at is None and _in(phase, s.id)
            ] or ["its next step"]
            rb.escalate(
                f"phase:{phase.id}",
                f"{phase.name} over its budget of {format_duration(budget)}: "
                f"{', '.join(running)} still running",
            )
        await workflow.wait_condition(lambda: self._phase_over(phase) or self._finished())
        if self._phase_over(phase):
            took = workflow.now() - started
            text = (
                f"{phase.name} took {spoken(took)}: "
                f"{spoken(took - budget)} over its budget of {format_duration(budget)}"
            )
            rb.record("phase_late", text)
            rb.progress(f"{rb.deployment}: {text}")

    def _phase_over(self, phase: Phase) -> bool:
        """Every step of the phase ended (a Phase 1 step when all its actions are settled)."""
        ended = {s.id for s in self.rb.status.steps if s.ended_at is not None}
        return all(step.id in ended for step in phase.steps)

    # --- response targets ---------------------------------------------------------------

    async def _targets(self) -> None:
        """Wake at the next target's due time or when an instant it waits for happens."""
        rb = self.rb
        instants = rb.status.instants
        while True:
            due: list[tuple[datetime, ResponseTime]] = []
            late: list[ResponseTime] = []
            for rt in self._response_times():
                if rt.start not in instants:
                    continue
                if rt.id in self._missed:
                    if rt.end in instants:
                        self._reached_late(rt)
                    else:
                        late.append(rt)
                elif rt.end not in instants:
                    start = instants[rt.start]
                    due.append((start + timedelta(seconds=rt.target_seconds), rt))
            if self._finished():
                for _, rt in due:
                    self._miss(rt, reached=False)
                return
            if not due and not late:
                return
            waiting = {rt.end for _, rt in due} | {rt.end for rt in late}

            def changed(waiting: set[str] = waiting) -> bool:
                return self._finished() or any(end in instants for end in waiting)

            if not due:
                await workflow.wait_condition(changed)
                continue
            at, rt = min(due, key=lambda pair: pair[0])
            try:
                await workflow.wait_condition(
                    changed,
                    timeout=max(at - workflow.now(), timedelta(0)),
                    timeout_summary=f"response target: {rt.name}",
                )
            except TimeoutError:
                self._miss(rt, reached=None)

    def _miss(self, rt: ResponseTime, reached: bool | None) -> None:
        rb = self.rb
        start = rb.status.instants[rt.start]
        target = timedelta(seconds=rt.target_seconds)
        self._missed[rt.id] = start + target
        end, begin = INSTANT_NAMES.get(rt.end, rt.end), INSTANT_NAMES.get(rt.start, rt.start)
        if reached is None:
            what = f"no {end} {format_duration(target)} after the {begin}"
        else:
            what = f"no {end}: the procedure ended without it"
        rb.escalate(
            f"target:{rt.id}",
            f"response target missed: {rt.name} (target {format_duration(target)}): {what}",
        )

    def _reached_late(self, rt: ResponseTime) -> None:
        rb = self.rb
        due = self._missed.pop(rt.id)
        instants = rb.status.instants
        took = instants[rt.end] - instants[rt.start]
        text = (
            f"{rt.name}: reached after {spoken(took)}, "
            f"{spoken(instants[rt.end] - due)} over its target of "
            f"{format_duration(timedelta(seconds=rt.target_seconds))}"
        )
        rb.record("target_late", text)
        rb.progress(f"{rb.deployment}: {text}")


def _in(phase: Phase, step_id: str) -> bool:
    return any(step.id == step_id for step in phase.steps)
