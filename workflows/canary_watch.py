"""CanaryWatchWorkflow: one per deployment (`watch-<deployment>`), the engine's own eye on the
canary.

Every `watch.interval` it reads the metrics (one activity, `read_canary`) and judges each
trigger that has a metric, comparison and threshold, and each success gate, against its sustain
period (`runbook/watching.py`, pure). A sustained breach is raised into `rollback-<deployment>`
exactly as an alert is (`raise_from_watch`: the same signal-with-start, a delivery key per
breach), with the readings as evidence; whichever comes first, the watch or Alertmanager, starts
the rollback and the other joins it.

A monitoring blind spot (metrics that cannot be read: Grafana's `DatasourceNoData`, an
`absent()` rule, or the watch's own unreadable readings) is never a breach and never a rollback:
it is recorded, announced once per outage in the deployment's channel with the command a Sprint
DRI can use to roll back by hand (the plan's Trigger 6), and closed when readings are back.
Started by a blind-spot alert alone (`evaluate=False`), the watch only keeps that record, and
ends once the outage is over.

Everything it knows is one `WatchState`, handed over whole when the history grows long (continue
as new), so the sustain clocks, an open blind spot and the events not handled yet survive
restarts and days of watching.
"""

from __future__ import annotations

import contextlib
from datetime import datetime, timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError

with workflow.unsafe.imports_passed_through():
    from activities.models import ProgressInput, StepContext
    from activities.procedure import RollbackActivities
    from activities.watch_raise import WatchActivities
    from contract.rollback import TriggerEvent
    from contract.watch import (
        BLIND_SPOT_SIGNAL,
        EVALUATE_SIGNAL,
        STOP_SIGNAL,
        WATCH_RUN_STATE_QUERY,
        WATCH_STATUS_QUERY,
        BlindSpot,
        BlindSpotEvent,
        CanaryReading,
        CanaryReadingInput,
        ConditionStatus,
        Raised,
        WatchInput,
        WatchRaiseInput,
        WatchState,
        WatchStatus,
    )
    from runbook.durations import format_duration, spoken
    from runbook.watching import (
        Clock,
        Condition,
        conditions,
        derive,
        observe,
        read_plan,
        sustained_for,
        to_capture,
    )
    from workflows.handover import history_long, quiesce
    from workflows.messenger import Messenger, describe_failure

QUIET_AFTER = timedelta(minutes=30)
"""A watch started by a blind-spot alert ends this long after readings came back (an alert that
flaps back within it is the same outage's story, not a new watch)."""
READINGS_PER_RUN = 150
"""A run hands over after this many readings (about 1,700 history events), well before
Temporal's limits: 37 minutes at the plan's 15 s."""
RAISED_KEPT = 20
SEEN_KEPT = 500
WATCH_SOURCE = "watch"


@workflow.defn
class CanaryWatchWorkflow:
    @workflow.init
    def __init__(self, inp: WatchInput) -> None:
        self._inp = inp
        self._policy = inp.policy
        self._state = state = inp.state or WatchState(evaluate=inp.evaluate)
        self._seen = set(state.seen)
        self._conditions = conditions(inp.policy)
        self._plan = read_plan(inp.policy)
        self._run_readings = 0
        self._messenger = Messenger(
            lambda kind, message: None, inp.options.ui_metadata, carried=state.outbox
        )
        state.outbox = []  # on their way again: the messenger knows them now

    @workflow.run
    async def run(self, inp: WatchInput) -> WatchStatus:
        state = self._state
        self._messenger.resume()
        while not state.stopping and not state.ended:
            while state.events:
                self._blind_spot(state.events.pop(0))
            if self._long():
                break
            if state.started_at is None and state.evaluate:
                # A new watch, or a blind-spot record asked to judge the canary too
                # (`rollback watch -d D`): the channel hears it now.
                state.started_at = workflow.now()
                self._announce(self._watching_text())
            if state.evaluate:
                if self._due():
                    await self._reading()
                    if state.ended:
                        break
                await self._wait_for_next()
                continue
            quiet = state.blind_spot is None
            try:
                await workflow.wait_condition(
                    lambda: bool(state.events) or state.stopping or state.evaluate,
                    timeout=QUIET_AFTER if quiet else None,
                    timeout_summary="readings back: ending" if quiet else None,
                )
            except TimeoutError:
                break
        if state.stopping and not state.ended:
            state.ended = "stopped"
            self._announce(f"👀 Canary watch of {inp.deployment} stopped.")
        if state.ended or not (state.events or self._long()):
            await self._messenger.drain()
            await workflow.wait_condition(workflow.all_handlers_finished)
            if state.ended or not state.events:
                return self.status()
        else:
            await quiesce(self._messenger)
        workflow.continue_as_new(inp.model_copy(update={"state": self.run_state()}))

    # --- handlers -----------------------------------------------------------------------

    @workflow.signal(
        name=BLIND_SPOT_SIGNAL,
        description=(
            "A monitoring blind spot (Grafana NoData, an absent() rule) or its end: recorded once "
            "per outage, never a rollback"
        ),
    )
    def on_blind_spot(self, event: BlindSpotEvent) -> None:
        key, state = event.delivery_key, self._state
        if key is not None:
            if key in self._seen:
                return
            self._seen.add(key)
            state.seen.append(key)
            if len(state.seen) > SEEN_KEPT:
                self._seen.discard(state.seen.pop(0))
        state.events.append(event)

    @workflow.signal(
        name=STOP_SIGNAL, description="Stop watching this deployment (rollback watch stop -d D)"
    )
    def on_stop(self) -> None:
        self._state.stopping = True

    @workflow.signal(
        name=EVALUATE_SIGNAL,
        description="Judge the canary too: read the metrics every interval (rollback watch -d D)",
    )
    def on_evaluate(self) -> None:
        """`rollback watch -d D` on a watch a blind-spot alert started: judge the canary too."""
        self._state.evaluate = True

    @workflow.query(
        name=WATCH_STATUS_QUERY,
        description=(
            "Each condition with its value, state and how long it has held; blind spots; what was "
            "raised"
        ),
    )
    def status(self) -> WatchStatus:
        s = self._state
        return WatchStatus(
            deployment=self._inp.deployment,
            evaluating=s.evaluate,
            watching_since=s.started_at,
            blind_spot=s.blind_spot,
            past_blind_spots=s.past_blind_spots,
            interval_seconds=self._policy.watch.interval.total_seconds(),
            readings=s.readings,
            last_reading_at=s.last_reading_at,
            treatment=s.treatment,
            conditions=[self._condition_status(c) for c in self._conditions],
            raised=list(s.raised),
            ended=s.ended,
            drill=self._inp.options.drill,
        )

    def _condition_status(self, c: Condition) -> ConditionStatus:
        clock = self._state.clocks.get(c.id, Clock())
        return ConditionStatus(
            id=c.id,
            name=c.name,
            condition=f"{c.describe()} for {format_duration(c.sustain)}",
            value=self._state.figures.get(c.metric, clock.last_value),
            state=self._state.verdicts.get(c.id, "not read yet"),
            sustained_seconds=clock.sustained_seconds,
            sustain_seconds=c.sustain.total_seconds(),
            raises=c.raises,
        )

    # --- one reading --------------------------------------------------------------------

    async def _reading(self) -> None:
        state = self._state
        began = workflow.now()
        interval = self._policy.watch.interval
        try:
            reading: CanaryReading = await workflow.execute_activity_method(
                RollbackActivities.read_canary,
                CanaryReadingInput(deployment=self._inp.deployment, plan=self._plan),
                start_to_close_timeout=max(
                    min(interval, timedelta(seconds=10)), timedelta(seconds=1)
                ),
                schedule_to_close_timeout=max(interval, timedelta(seconds=2)),
                retry_policy=RetryPolicy(maximum_attempts=2),
                summary=self._messenger.summary("Canary reading"),
            )
        except ActivityError as error:
            reading = CanaryReading(error=describe_failure(error))
        now = workflow.now()
        state.readings += 1
        self._run_readings += 1
        state.last_reading_at, state.last_error = began, reading.error
        state.treatment = reading.treatment
        self._capture(reading)
        state.figures = derive(self._policy, reading.values, state.captured)
        if reading.treatment == 0:
            # No canary traffic (not started, or rolled back): nothing to judge, nothing missing.
            state.verdicts = dict.fromkeys((c.id for c in self._conditions), "idle")
            state.healthy_at_full_since = None
            state.clocks.clear()  # the next canary is judged afresh
            if state.blind_spot is not None and state.blind_spot.source == WATCH_SOURCE:
                self._blind_spot(
                    BlindSpotEvent(source=WATCH_SOURCE, status="resolved", received_at=now)
                )
            self._show()
            return
        for condition in self._conditions:
            clock = state.clocks.setdefault(condition.id, Clock())
            value = state.figures.get(condition.metric)
            verdict = observe(condition, clock, began, value, self._policy.watch.interval)
            state.verdicts[condition.id] = verdict
            raised = verdict == "sustained" and condition.raises
            if raised and not await self._raise(condition, clock, reading):
                clock.raised_at = None  # the rollback could not be reached: again next time
        self._own_blind_spot(reading, now)
        self._bake(reading, began)
        self._show()

    def _capture(self, reading: CanaryReading) -> None:
        """`baseline: captured`: the first readable figure, kept for the watch's whole life."""
        for metric in to_capture(self._policy):
            value = reading.values.get(metric)
            if metric not in self._state.captured and value is not None:
                self._state.captured[metric] = value

    async def _raise(self, c: Condition, clock: Clock, reading: CanaryReading) -> bool:
        state = self._state
        value = clock.last_value
        held = spoken(sustained_for(clock))
        gate = f"{c.name}: " if not c.breach_when_holds else ""  # a trigger's name is shown
        reason = (
            f"{gate}{c.metric} {value:.4g} ({c.describe()}) for {held} "
            f"(sustain {format_duration(c.sustain)}), canary at {reading.treatment}%"
        )
        since = clock.breaching_since or workflow.now()
        evidence = {
            "condition": c.id,
            "metric": c.metric,
            "value": f"{value:.6g}" if value is not None else "none",
            "threshold": f"{c.comparison} {c.threshold:g}",
            "sustained": held,
            "breaching_since": f"{since:%Y-%m-%dT%H:%M:%SZ}",
            "treatment_percent": str(reading.treatment),
            **{k: f"{v:.6g}" for k, v in state.captured.items()},
        }
        event = TriggerEvent(
            trigger=c.trigger,
            source=WATCH_SOURCE,
            reason=reason,
            evidence=evidence,
            received_at=workflow.now(),
            delivery_key=f"watch:{self._inp.deployment}:{c.id}:{since:%Y%m%dT%H%M%S}",
            breach_started_at=since,
        )
        try:
            await workflow.execute_activity_method(
                WatchActivities.raise_from_watch,
                WatchRaiseInput(
                    deployment=self._inp.deployment,
                    policy=self._policy,
                    options=self._inp.options,
                    event=event,
                ),
                start_to_close_timeout=timedelta(seconds=10),
                schedule_to_close_timeout=max(self._policy.watch.interval, timedelta(seconds=20)),
                summary=self._messenger.summary(f"Raise {c.trigger} into the rollback"),
            )
            sent = True
        except ActivityError:
            sent = False
        state.raised.append(
            Raised(at=workflow.now(), trigger=c.trigger, condition=c.id, reason=reason, sent=sent)
        )
        del state.raised[:-RAISED_KEPT]
        return sent

    def _own_blind_spot(self, reading: CanaryReading, now: datetime) -> None:
        """`unreadable_intervals` readings in a row without a judged figure: a blind spot."""
        limit = self._policy.watch.unreadable_intervals
        blind = [
            c.metric
            for c in self._conditions
            if self._state.clocks.get(c.id, Clock()).unreadable >= limit
        ]
        blind_spot = self._state.blind_spot
        if blind and blind_spot is None:
            why = reading.error or "no data"
            self._blind_spot(
                BlindSpotEvent(
                    source=WATCH_SOURCE,
                    alertname="",
                    reason=f"no reading of {', '.join(sorted(set(blind)))} for {limit} "
                    f"intervals ({why})",
                    received_at=now,
                )
            )
        elif not blind and blind_spot is not None and blind_spot.source == WATCH_SOURCE:
            self._blind_spot(
                BlindSpotEvent(source=WATCH_SOURCE, status="resolved", received_at=now)
            )

    def _bake(self, reading: CanaryReading, at: datetime) -> None:
        """At 100 % and every condition healthy for `bake_time`: the canary is done."""
        state = self._state
        healthy = all(v == "healthy" for v in state.verdicts.values())
        if reading.treatment is None or reading.treatment < 100 or not healthy:
            state.healthy_at_full_since = None
            return
        since = state.healthy_at_full_since = state.healthy_at_full_since or at
        bake = self._policy.watch.bake_time
        if at - since >= bake:
            state.ended = f"baked: at 100% and healthy for {format_duration(bake)}"
            self._announce(
                f"✅ {self._inp.deployment}: the canary has been at 100% and healthy for "
                f"{format_duration(bake)}; the canary watch ends."
            )

    def _due(self) -> bool:
        last = self._state.last_reading_at
        return last is None or workflow.now() >= last + self._policy.watch.interval

    async def _wait_for_next(self) -> None:
        last = self._state.last_reading_at or workflow.now()
        due = last + self._policy.watch.interval
        remaining = due - workflow.now()
        if remaining <= timedelta(0):
            return
        with contextlib.suppress(TimeoutError):
            await workflow.wait_condition(
                lambda: self._state.stopping or bool(self._state.events),
                timeout=remaining,
                timeout_summary="next canary reading",
            )

    # --- blind spots --------------------------------------------------------------------

    def _blind_spot(self, event: BlindSpotEvent) -> None:
        state = self._state
        now = workflow.now()
        at = min(event.received_at or now, now)
        blind = state.blind_spot
        if event.status == "firing":
            if blind is not None:
                return  # the same outage, still going: announced once
            blind = state.blind_spot = BlindSpot(
                since=at, source=event.source, reason=event.reason or event.alertname
            )
            self._announce(self._opened_text(blind, event))
            blind.announced = True
        elif blind is not None and event.source == blind.source:
            # Only the door that opened it closes it: Grafana's NoData resolving says nothing
            # of the watch's own readings, nor the other way round.
            blind.until = at
            what = event.alertname or event.source
            self._announce(
                f"📡 Readings are back for {self._inp.deployment} "
                f"({what} resolved at {at:%H:%M:%S} UTC): the "
                f"monitoring blind spot since {blind.since:%H:%M:%S} UTC is over."
            )
            state.past_blind_spots += 1
            state.blind_spot = None

    def _opened_text(self, blind: BlindSpot, event: BlindSpotEvent) -> str:
        d = self._inp.deployment
        links = f" {' '.join(event.links)}" if event.links else ""
        return (
            f"📡 Monitoring blind spot for {d}: {event.alertname or 'metrics unreadable'} from "
            f"{event.source} since {blind.since:%H:%M:%S} UTC — {blind.reason}.{links}\n"
            "The metrics cannot be read, so the engine cannot judge the canary, and it never "
            "rolls back on missing data. If the canary looks wrong, a Sprint DRI can roll it back "
            f"by hand: `/rollback {d} <reason>` in Slack, or `rollback trigger -d {d} -t "
            f'operational_anomaly -r "<reason>" --as <id>`.'
        )

    # --- messages and the Web UI --------------------------------------------------------

    def _watching_text(self) -> str:
        watch = self._policy.watch
        judged = "; ".join(
            f"{c.name}: {c.describe()} for {format_duration(c.sustain)}"
            for c in self._conditions
            if c.raises
        )
        return (
            f"👀 Canary watch of {self._inp.deployment}: every {format_duration(watch.interval)}, "
            f"{judged}. A blind spot after {watch.unreadable_intervals} unreadable readings."
        )

    def _announce(self, text: str) -> None:
        self._messenger.send(
            "watch message",
            RollbackActivities.post_progress,
            ProgressInput(ctx=self._ctx(), text=text),
        )

    def _show(self) -> None:
        if not self._inp.options.ui_metadata:
            return
        s = self.status()
        lines = [
            f"## Canary watch of `{s.deployment}`",
            f"**Canary:** {s.treatment if s.treatment is not None else '?'}% · "
            f"**readings:** {s.readings} every {format_duration(self._policy.watch.interval)}",
            "",
            "| condition | now | state | sustained |",
            "| --- | --- | --- | --- |",
        ]
        for c in s.conditions:
            now = f"{c.value:.4g}" if c.value is not None else "—"
            lines.append(
                f"| {c.name} ({c.condition}) | {now} | {c.state} | "
                f"{c.sustained_seconds:.0f} s of {c.sustain_seconds:.0f} s |"
            )
        blind = self._state.blind_spot
        if blind is not None:
            lines.append(f"\n**Blind spot** since {blind.since:%H:%M:%S} UTC: {blind.reason}")
        workflow.set_current_details("\n".join(lines))

    def _ctx(self) -> StepContext:
        info = workflow.info()
        policy = self._inp.policy
        return StepContext(
            deployment=self._inp.deployment,
            rollback_id=f"{info.workflow_id}/{info.run_id}",
            channel=self._inp.options.channel or policy.notifications.channel,
            drill=self._inp.options.drill,
            step_name="Canary watch",
        )

    def _long(self) -> bool:
        return (
            history_long(self._inp.options.handover_events)
            or self._run_readings >= READINGS_PER_RUN
        )

    @workflow.query(
        name=WATCH_RUN_STATE_QUERY,
        description="Everything this run knows, as it would hand it to its next run",
    )
    def run_state(self) -> WatchState:
        """The whole state as the next run would receive it (messages not sent yet included)."""
        return self._state.model_copy(update={"outbox": self._messenger.unsent()}, deep=True)
