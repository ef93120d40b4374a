"""CanaryWatchWorkflow: one per deployment (`watch-<deployment>`), the engine's own eye on the
canary.

A monitoring blind spot (metrics that cannot be read: Grafana's `DatasourceNoData`, an
`absent()` rule, or the watch's own unreadable readings) is never a breach and never a rollback:
it is recorded, announced once per outage in the deployment's channel with the command a Sprint
DRI can use to roll back by hand (the plan's Trigger 6), and closed when readings are back.
Started by a blind-spot alert alone (`evaluate=False`), the watch only keeps that record, and
ends once the outage is over.
"""

from __future__ import annotations

from collections import OrderedDict
from datetime import timedelta

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from activities.models import ProgressInput, StepContext
    from activities.procedure import RollbackActivities
    from contract.watch import (
        BLIND_SPOT_SIGNAL,
        STOP_SIGNAL,
        WATCH_STATUS_QUERY,
        BlindSpot,
        BlindSpotEvent,
        WatchInput,
        WatchStatus,
    )
    from workflows.messenger import Messenger

QUIET_AFTER = timedelta(minutes=30)
"""A watch started by a blind-spot alert ends this long after readings came back (an alert that
flaps back within it is the same outage's story, not a new watch)."""
HANDOVER_EVENTS = 2_000


@workflow.defn
class CanaryWatchWorkflow:
    @workflow.init
    def __init__(self, inp: WatchInput) -> None:
        self._inp = inp
        self._blind: BlindSpot | None = inp.blind_spot
        self._past = inp.past_blind_spots
        self._events: list[BlindSpotEvent] = []
        self._seen: OrderedDict[str, None] = OrderedDict()
        self._stop = False
        self._messenger = Messenger(lambda kind, message: None, inp.options.ui_metadata)

    @workflow.run
    async def run(self, inp: WatchInput) -> WatchStatus:
        while not self._stop:
            while self._events:
                self._blind_spot(self._events.pop(0))
            if self._long():
                break
            quiet = self._blind is None and not inp.evaluate
            try:
                await workflow.wait_condition(
                    lambda: bool(self._events) or self._stop,
                    timeout=QUIET_AFTER if quiet else None,
                    timeout_summary="readings back: ending" if quiet else None,
                )
            except TimeoutError:
                break
        await self._messenger.drain()
        await workflow.wait_condition(workflow.all_handlers_finished)
        if self._events or (self._long() and not self._stop):
            workflow.continue_as_new(
                inp.model_copy(update={"blind_spot": self._blind, "past_blind_spots": self._past})
            )
        return self.status()

    @workflow.signal(name=BLIND_SPOT_SIGNAL)
    def on_blind_spot(self, event: BlindSpotEvent) -> None:
        key = event.delivery_key
        if key is not None:
            if key in self._seen:
                return
            self._seen[key] = None
            while len(self._seen) > 500:
                self._seen.popitem(last=False)
        self._events.append(event)

    @workflow.signal(name=STOP_SIGNAL)
    def on_stop(self) -> None:
        self._stop = True

    @workflow.query(name=WATCH_STATUS_QUERY)
    def status(self) -> WatchStatus:
        return WatchStatus(
            deployment=self._inp.deployment,
            evaluating=self._inp.evaluate,
            blind_spot=self._blind,
            past_blind_spots=self._past,
        )

    # --- blind spots --------------------------------------------------------------------

    def _blind_spot(self, event: BlindSpotEvent) -> None:
        now = workflow.now()
        at = min(event.received_at or now, now)
        if event.status == "firing":
            if self._blind is not None:
                return  # the same outage, still going: announced once
            self._blind = BlindSpot(
                since=at, source=event.source, reason=event.reason or event.alertname
            )
            self._announce(self._opened_text(self._blind, event))
            self._blind.announced = True
        elif self._blind is not None:
            self._blind.until = at
            self._announce(
                f"📡 Readings are back for {self._inp.deployment} "
                f"({event.alertname or event.source} resolved at {at:%H:%M:%S} UTC): the "
                f"monitoring blind spot since {self._blind.since:%H:%M:%S} UTC is over."
            )
            self._past += 1
            self._blind = None

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

    def _announce(self, text: str) -> None:
        self._messenger.send(
            "blind spot message",
            RollbackActivities.post_progress,
            ProgressInput(ctx=self._ctx(), text=text),
        )

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
        info = workflow.info()
        return info.is_continue_as_new_suggested() or (
            info.get_current_history_length() > HANDOVER_EVENTS
        )
