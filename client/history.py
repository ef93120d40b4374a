"""Reading a rollback's (or its follow-ups') Temporal history: the timeline the history records,
the workflow's input (the policy it ran under) and, once it has completed, its result.

Client-side, like `client/operations.py`. Payloads are decoded with the client's data
converter, so a codec set on the client applies here too.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from pydantic import ValidationError
from temporalio.api.common.v1 import Payload, Payloads
from temporalio.api.enums.v1 import EventType
from temporalio.api.failure.v1 import Failure
from temporalio.api.history.v1 import HistoryEvent
from temporalio.client import WorkflowHandle, WorkflowHistory
from temporalio.converter import DataConverter

from contract.follow_ups import ACK_SIGNAL, INCIDENT_SIGNAL
from contract.rollback import (
    COMMS_SIGNAL,
    COMMS_UPDATE,
    DECIDE_UPDATE,
    DECISION_SIGNAL,
    RAISE_UPDATE,
    TRIGGER_SIGNAL,
)
from runbook.actions import STEP_OF_KIND
from runbook.durations import format_duration
from runbook.history_timeline import (
    CloseStatus,
    HistoryEntry,
    HistoryTimeline,
    describe_decision,
    describe_trigger,
    person_label,
    step_of,
)
from runbook.policy import Policy

E = EventType
CLOSES: dict[int, CloseStatus] = {
    E.EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED: "completed",
    E.EVENT_TYPE_WORKFLOW_EXECUTION_FAILED: "failed",
    E.EVENT_TYPE_WORKFLOW_EXECUTION_CANCELED: "canceled",
    E.EVENT_TYPE_WORKFLOW_EXECUTION_TERMINATED: "terminated",
    E.EVENT_TYPE_WORKFLOW_EXECUTION_TIMED_OUT: "timed_out",
    E.EVENT_TYPE_WORKFLOW_EXECUTION_CONTINUED_AS_NEW: "continued",
}
ISSUED = {
    E.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED,
    E.EVENT_TYPE_TIMER_STARTED,
    E.EVENT_TYPE_TIMER_CANCELED,
    E.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED,
    E.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_REJECTED,
    E.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_COMPLETED,
    E.EVENT_TYPE_START_CHILD_WORKFLOW_EXECUTION_INITIATED,
    E.EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED,
    E.EVENT_TYPE_WORKFLOW_EXECUTION_FAILED,
    E.EVENT_TYPE_WORKFLOW_EXECUTION_CANCELED,
    E.EVENT_TYPE_WORKFLOW_EXECUTION_CONTINUED_AS_NEW,
}
"""Commands: the workflow task that issued them ran before them."""


@dataclass(frozen=True)
class ReadHistory:
    timeline: HistoryTimeline
    input: dict[str, Any] | None
    """The workflow's input as JSON (RollbackInput, FollowUpsInput)."""
    policy: Policy | None
    """The policy the workflow ran under, from its input."""
    result: Any
    """The workflow's result as JSON once it completed (a RollbackStatus for a rollback)."""


async def fetch(handle: WorkflowHandle[Any, Any], converter: DataConverter) -> ReadHistory:
    return await read(await handle.fetch_history(), converter)


async def read(history: WorkflowHistory, converter: DataConverter) -> ReadHistory:
    return await _Reader(history, converter).read()


@dataclass
class _Activity:
    type: str
    step: str | None
    step_name: str | None
    summary: str | None
    attempt: int = 1
    unit: str | None = None
    """A Phase 1 action's id (one step has several)."""
    command: str | None = None

    @property
    def label(self) -> str:
        if self.unit is not None:
            return f"{self.step_name or self.step}: `{self.command or self.unit}`"
        return self.step_name or self.summary or self.type


@dataclass
class _Timer:
    label: str
    step: str | None
    step_name: str | None
    summary: str | None


class _Reader:
    def __init__(self, history: WorkflowHistory, converter: DataConverter) -> None:
        self.history = history
        self.converter = converter
        self.events = list(history.events)
        self.policy: Policy | None = None
        self.input: dict[str, Any] | None = None
        self.result: Any = None
        self.entries: list[HistoryEntry] = []
        self.activities: dict[int, _Activity] = {}
        self.timers: dict[int, _Timer] = {}
        self.updates: dict[int, HistoryEntry] = {}
        self.step_results: dict[str, dict[str, Any]] = {}
        self.steps_in_batch: list[_Activity] = []
        self.timeline = HistoryTimeline(
            workflow_id=history.workflow_id,
            run_id=history.run_id if self.events else "",
            workflow_type="",
        )
        self.clock = _clock(self.events)

    async def read(self) -> ReadHistory:
        for event in self.events:
            if event.event_type == E.EVENT_TYPE_WORKFLOW_TASK_COMPLETED:
                self.steps_in_batch = []
            await self._event(event)
        self.timeline.entries = self.entries
        self.timeline.step_results = self.step_results
        return ReadHistory(self.timeline, self.input, self.policy, self.result)

    # --- one event -------------------------------------------------------------------------

    async def _event(self, event: HistoryEvent) -> None:
        kind = event.event_type
        if kind == E.EVENT_TYPE_WORKFLOW_EXECUTION_STARTED:
            await self._started(event)
        elif kind == E.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED:
            await self._signal(event)
        elif kind == E.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED:
            await self._update_accepted(event)
        elif kind == E.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_REJECTED:
            await self._update_rejected(event)
        elif kind == E.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_COMPLETED:
            await self._update_completed(event)
        elif kind == E.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
            await self._activity_scheduled(event)
        elif kind == E.EVENT_TYPE_ACTIVITY_TASK_STARTED:
            attrs = event.activity_task_started_event_attributes
            if attrs.scheduled_event_id in self.activities:
                self.activities[attrs.scheduled_event_id].attempt = attrs.attempt
        elif kind == E.EVENT_TYPE_ACTIVITY_TASK_COMPLETED:
            await self._activity_completed(event)
        elif kind in (
            E.EVENT_TYPE_ACTIVITY_TASK_FAILED,
            E.EVENT_TYPE_ACTIVITY_TASK_TIMED_OUT,
            E.EVENT_TYPE_ACTIVITY_TASK_CANCELED,
        ):
            self._activity_ended(event)
        elif kind == E.EVENT_TYPE_TIMER_STARTED:
            await self._timer_started(event)
        elif kind in (E.EVENT_TYPE_TIMER_FIRED, E.EVENT_TYPE_TIMER_CANCELED):
            self._timer_ended(event)
        elif kind == E.EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_STARTED:
            attrs_child = event.child_workflow_execution_started_event_attributes
            child = attrs_child.workflow_execution.workflow_id
            self._add(
                event,
                "child_started",
                child,
                f"{attrs_child.workflow_type.name} {child} started",
            )
        elif kind == E.EVENT_TYPE_START_CHILD_WORKFLOW_EXECUTION_FAILED:
            attrs_failed = event.start_child_workflow_execution_failed_event_attributes
            self._add(
                event,
                "child_failed",
                attrs_failed.workflow_id,
                f"{attrs_failed.workflow_id} could not start (cause {attrs_failed.cause})",
            )
        elif kind in CLOSES:
            await self._closed(event, CLOSES[kind])

    async def _started(self, event: HistoryEvent) -> None:
        attrs = event.workflow_execution_started_event_attributes
        self.timeline.workflow_type = attrs.workflow_type.name
        self.timeline.started_at = _time(event)
        values = await self._decode(attrs.input)
        self.input = values[0] if values and isinstance(values[0], dict) else None
        if self.input is not None:
            self.timeline.deployment = self.input.get("deployment")
            self.timeline.drill = bool((self.input.get("options") or {}).get("drill", False))
            try:
                self.policy = Policy.model_validate(self.input.get("policy"))
            except ValidationError:
                self.policy = None  # a policy of another schema: names fall back to ids
        summary = await self._summary(event)
        drill = " (drill)" if self.timeline.drill else ""
        self._add(
            event,
            "workflow_started",
            attrs.workflow_type.name,
            f"{attrs.workflow_type.name} started{drill}" + (f": {summary}" if summary else ""),
            summary=summary,
        )

    async def _signal(self, event: HistoryEvent) -> None:
        attrs = event.workflow_execution_signaled_event_attributes
        name = attrs.signal_name
        values = await self._decode(attrs.input)
        data: dict[str, Any] = values[0] if values and isinstance(values[0], dict) else {}
        fields: dict[str, Any] = {}
        if name in (TRIGGER_SIGNAL, INCIDENT_SIGNAL):
            message = describe_trigger(self.policy, data)
            if name == INCIDENT_SIGNAL:
                message = f"incident after the rollback: {message}"
            fields = {"trigger": data.get("trigger"), "person": data.get("raised_by")}
        elif name in (DECISION_SIGNAL, COMMS_SIGNAL):
            message = describe_decision(self.policy, data, via_update=False)
            if name == COMMS_SIGNAL:
                message = f"{data.get('audience', '?')} wording: {message}"
            fields = {"person": data.get("person"), "action": data.get("action")}
        elif name == ACK_SIGNAL:
            who = person_label(self.policy, data.get("person"))
            message = f"{data.get('follow_up', '?')} acknowledged by {who} (signal)"
            fields = {"person": data.get("person"), "action": "acknowledge"}
        else:
            message = f"signal {name}"
        self._add(event, "signal", name, message, payload=data, **fields)

    async def _update_accepted(self, event: HistoryEvent) -> None:
        attrs = event.workflow_execution_update_accepted_event_attributes
        request = attrs.accepted_request
        name = request.input.name
        values = await self._decode(request.input.args)
        data: dict[str, Any] = values[0] if values and isinstance(values[0], dict) else {}
        if name in (DECIDE_UPDATE, COMMS_UPDATE):
            message = describe_decision(self.policy, data, via_update=True)
            if name == COMMS_UPDATE:
                message = f"{data.get('audience', '?')} wording: {message}"
            action = data.get("action")
        elif name == RAISE_UPDATE:
            message = f"raised: {describe_trigger(self.policy, data)}"
            action = "raise"
        else:
            who = person_label(self.policy, data.get("person")) if "person" in data else "?"
            message = f"{name} by {who}"
            action = data.get("follow_up") and "acknowledge"
        person = data.get("person") or data.get("raised_by")
        self.updates[event.event_id] = self._add(
            event, "update", name, message, person=person, action=action, payload=data
        )

    async def _update_rejected(self, event: HistoryEvent) -> None:
        attrs = event.workflow_execution_update_rejected_event_attributes
        request = attrs.rejected_request
        values = await self._decode(request.input.args)
        data: dict[str, Any] = values[0] if values and isinstance(values[0], dict) else {}
        self._add(
            event,
            "update",
            request.input.name,
            f"{request.input.name} by {person_label(self.policy, data.get('person'))} "
            f"rejected: {_cause(attrs.failure)}",
            person=data.get("person"),
            action=data.get("action"),
            accepted=False,
            payload=data,
        )

    async def _update_completed(self, event: HistoryEvent) -> None:
        attrs = event.workflow_execution_update_completed_event_attributes
        entry = self.updates.get(attrs.accepted_event_id)
        if entry is None:
            return
        if attrs.outcome.HasField("failure"):
            entry.accepted = False
            entry.message += f": failed: {_cause(attrs.outcome.failure)}"
            return
        values = await self._decode(attrs.outcome.success)
        reply = values[0] if values and isinstance(values[0], dict) else {}
        if "accepted" in reply:
            entry.accepted = bool(reply["accepted"])
            verdict = "accepted" if entry.accepted else "rejected"
            entry.message += f": {verdict}: {reply.get('message', '')}".rstrip(": ")
        else:
            entry.accepted = True

    async def _activity_scheduled(self, event: HistoryEvent) -> None:
        attrs = event.activity_task_scheduled_event_attributes
        type_ = attrs.activity_type.name
        step, step_name = step_of(self.policy, type_)
        summary = await self._summary(event)
        activity = _Activity(type_, step, step_name, summary)
        self.activities[event.event_id] = activity
        if step is not None:
            self.steps_in_batch.append(activity)
        if type_ in STEP_OF_KIND:
            values = await self._decode(attrs.input)
            data = values[0] if values and isinstance(values[0], dict) else {}
            action = data.get("action")
            if isinstance(action, dict):
                activity.unit, activity.command = action.get("id"), action.get("command")
        if type_ == "escalate":
            values = await self._decode(attrs.input)
            data = values[0] if values and isinstance(values[0], dict) else {}
            reason = str(data.get("reason") or summary or "escalation")
            self._add(event, "escalation", type_, reason, summary=summary)
            return
        self._add_activity(event, "activity_scheduled", activity, f"{activity.label} scheduled")

    async def _activity_completed(self, event: HistoryEvent) -> None:
        attrs = event.activity_task_completed_event_attributes
        activity = self.activities.get(attrs.scheduled_event_id)
        if activity is None:
            return
        values = await self._decode(attrs.result)
        result = values[0] if values else None
        detail = ""
        if activity.step is not None and isinstance(result, dict):
            if activity.unit is None:
                self.step_results[activity.step] = result
            verdict = "unhealthy" if result.get("healthy") is False else "completed"
            detail = f"{verdict}" + (f": {result['summary']}" if result.get("summary") else "")
        else:
            detail = "completed"
        text = f"{activity.label}: {detail}{_attempts(activity.attempt)}"
        self._add_activity(event, "activity_completed", activity, text, attempt=activity.attempt)

    def _activity_ended(self, event: HistoryEvent) -> None:
        if event.event_type == E.EVENT_TYPE_ACTIVITY_TASK_FAILED:
            failed = event.activity_task_failed_event_attributes
            scheduled, kind, what = failed.scheduled_event_id, "activity_failed", "failed"
            what += f": {_cause(failed.failure)}"
        elif event.event_type == E.EVENT_TYPE_ACTIVITY_TASK_TIMED_OUT:
            timed_out = event.activity_task_timed_out_event_attributes
            scheduled, kind, what = timed_out.scheduled_event_id, "activity_timed_out", "timed out"
            what += f": {_cause(timed_out.failure)}"
        else:
            canceled = event.activity_task_canceled_event_attributes
            scheduled, kind, what = canceled.scheduled_event_id, "activity_canceled", "canceled"
        activity = self.activities.get(scheduled)
        if activity is None:
            return
        text = f"{activity.label} {what}{_attempts(activity.attempt)}"
        self._add_activity(event, kind, activity, text, attempt=activity.attempt)

    async def _timer_started(self, event: HistoryEvent) -> None:
        attrs = event.timer_started_event_attributes
        duration = attrs.start_to_fire_timeout.ToTimedelta()
        summary = await self._summary(event)
        budgeted = self._budget_of(duration)
        if budgeted is not None:
            # The step's budget timer. Its recorded summary cannot be trusted: temporalio 1.35
            # carries the last `wait_condition(timeout_summary=…)` over to later timers.
            timer = _Timer(
                f"budget of {budgeted.step_name} ({_span(duration)})",
                budgeted.step,
                budgeted.step_name,
                None,
            )
        else:
            label = summary or f"timer {attrs.timer_id}"
            timer = _Timer(f"{label} ({_span(duration)})", None, None, summary)
        self.timers[event.event_id] = timer
        self._add(
            event,
            "timer_started",
            attrs.timer_id,
            f"{timer.label} started",
            step=timer.step,
            step_name=timer.step_name,
            summary=timer.summary,
        )

    def _timer_ended(self, event: HistoryEvent) -> None:
        if event.event_type == E.EVENT_TYPE_TIMER_FIRED:
            fired = event.timer_fired_event_attributes
            started, timer_id, kind = fired.started_event_id, fired.timer_id, "timer_fired"
        else:
            canceled = event.timer_canceled_event_attributes
            started, timer_id, kind = canceled.started_event_id, canceled.timer_id, "timer_canceled"
        timer = self.timers.get(started) or _Timer(f"timer {timer_id}", None, None, None)
        if kind == "timer_fired":
            what = "passed: the step missed it" if timer.step else "expired"
        else:
            what = "canceled"
        self._add(
            event,
            kind,
            timer_id,
            f"{timer.label} {what}",
            step=timer.step,
            step_name=timer.step_name,
            summary=timer.summary,
        )

    async def _closed(self, event: HistoryEvent, status: CloseStatus) -> None:
        self.timeline.closed_at = _time(event)
        self.timeline.close_status = status
        detail = ""
        if status == "completed":
            values = await self._decode(event.workflow_execution_completed_event_attributes.result)
            self.result = values[0] if values else None
        elif status == "failed":
            detail = _cause(event.workflow_execution_failed_event_attributes.failure)
        elif status == "terminated":
            terminated = event.workflow_execution_terminated_event_attributes
            said = ", ".join(str(d) for d in await self._decode(terminated.details))
            detail = terminated.reason + (f" ({said})" if said else "")
        elif status == "timed_out":
            detail = "workflow run timeout"
        self._add(
            event,
            "workflow_closed",
            status,
            f"{self.timeline.workflow_type or 'workflow'} {status.replace('_', ' ')}"
            + (f": {detail}" if detail else ""),
        )

    # --- helpers ---------------------------------------------------------------------------

    def _budget_of(self, duration: timedelta) -> _Activity | None:
        """The step whose activity was scheduled in the same workflow task with this budget."""
        for activity in reversed(self.steps_in_batch):
            if self.policy is None or activity.step is None:
                return activity
            try:
                if self.policy.step(activity.step).budget == duration:
                    return activity
            except KeyError:
                continue
        return None

    def _add_activity(
        self, event: HistoryEvent, kind: str, activity: _Activity, message: str, **fields: Any
    ) -> HistoryEntry:
        """An entry about one activity, under its plan step (and action) and Web UI summary."""
        return self._add(
            event,
            kind,
            activity.type,
            message,
            step=activity.step,
            step_name=activity.step_name,
            summary=activity.summary,
            unit=activity.unit,
            **fields,
        )

    def _add(
        self, event: HistoryEvent, kind: str, name: str, message: str, **fields: Any
    ) -> HistoryEntry:
        entry = HistoryEntry(
            event_id=event.event_id,
            at=_time(event),
            workflow_time=self.clock(event),
            kind=kind,
            name=name,
            message=message,
            **{k: v for k, v in fields.items() if v is not None},
        )
        self.entries.append(entry)
        return entry

    async def _decode(self, payloads: Payloads) -> list[Any]:
        if not payloads.payloads:
            return []
        try:
            return await self.converter.decode(list(payloads.payloads))
        except Exception:  # an undecodable payload must not hide the rest of the history
            return []

    async def _summary(self, event: HistoryEvent) -> str | None:
        if not event.HasField("user_metadata") or not event.user_metadata.HasField("summary"):
            return None
        payload: Payload = event.user_metadata.summary
        try:
            value = (await self.converter.decode([payload]))[0]
        except Exception:
            return None
        return value if isinstance(value, str) else None


def _clock(events: list[HistoryEvent]) -> Callable[[HistoryEvent], datetime | None]:
    """workflow.now() for an event: the start time of the workflow task that issued it (a
    command) or of the first completed workflow task after it (an incoming event)."""
    completed = {
        e.workflow_task_completed_event_attributes.started_event_id
        for e in events
        if e.event_type == E.EVENT_TYPE_WORKFLOW_TASK_COMPLETED
    }
    started = [
        e
        for e in events
        if e.event_type == E.EVENT_TYPE_WORKFLOW_TASK_STARTED and e.event_id in completed
    ]
    ids = [e.event_id for e in started]

    def clock(event: HistoryEvent) -> datetime | None:
        if event.event_type in ISSUED:
            i = bisect.bisect_left(ids, event.event_id) - 1
        else:
            i = bisect.bisect_right(ids, event.event_id)
        return _time(started[i]) if 0 <= i < len(started) else None

    return clock


def _time(event: HistoryEvent) -> datetime:
    return event.event_time.ToDatetime(tzinfo=UTC)


def _cause(failure: Failure) -> str:
    """The innermost message: what the target actually said."""
    while failure.HasField("cause"):
        failure = failure.cause
    kind = (
        failure.application_failure_info.type
        if failure.HasField("application_failure_info")
        else ""
    )
    return f"{kind}: {failure.message}" if kind else failure.message


def _span(duration: timedelta) -> str:
    """A timer's length: what remained of a window is shown to the second."""
    if duration >= timedelta(seconds=1):
        duration = timedelta(seconds=round(duration.total_seconds()))
    return format_duration(duration)


def _attempts(attempt: int) -> str:
    return f" (attempt {attempt})" if attempt > 1 else ""
