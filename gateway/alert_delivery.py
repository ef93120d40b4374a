"""Delivering one webhook body: every alert judged on its own, repeats answered from memory,
the rest grouped by deployment and sent concurrently (one signal per deployment, the policy
only when a rollback starts), the whole body bounded in time when Temporal is down."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from pydantic import BaseModel
from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode

from client import operations
from config.settings import Settings
from contract.rollback import RollbackOptions, TriggerBatch, TriggerEvent, workflow_id
from contract.watch import BlindSpotEvent, watch_id
from gateway.alerts import Blind, Routed, Unrouted, parse, route
from gateway.recent import Recent
from gateway.temporal_link import TemporalLink, TemporalUnavailable
from runbook.policy import Policy

log = logging.getLogger("gateway.alerts")

Status = Literal[
    "sent", "recorded", "duplicate", "ignored", "unmapped", "invalid", "blind_spot", "failed"
]
"""sent: joined (or started) the rollback; recorded: a resolved alert noted on it; duplicate:
a repeat of an alert already delivered; ignored: resolved, and no rollback runs; unmapped: not
for this engine; invalid: malformed (the reason names the field); blind_spot: the metrics could
not be read (never a rollback); failed: should have been recorded and could not (the body is
answered 503, so the sender retries)."""


class AlertOutcome(BaseModel):
    index: int
    alertname: str
    status: Status
    deployment: str | None = None
    trigger: str | None = None
    workflow_id: str | None = None
    reason: str = ""


class AlertsResponse(BaseModel):
    received: int
    results: list[AlertOutcome]


@dataclass
class _Group:
    """The alerts of one body for one deployment and one destination."""

    deployment: str
    kind: Literal["firing", "resolved", "blind"]
    indexes: list[int] = field(default_factory=list)
    events: list[Any] = field(default_factory=list)


class AlertDelivery:
    def __init__(self, settings: Settings, policy: Policy, link: TemporalLink) -> None:
        self.settings = settings
        self.policy = policy
        self.link = link
        self.recent = Recent(ttl=settings.alert_repeat_ttl, limit=50_000)
        self.calls = asyncio.Semaphore(settings.alert_concurrency)
        self.options = RollbackOptions(ui_metadata=settings.ui_metadata)

    async def deliver(self, raw: list[dict[str, Any]], source: str) -> tuple[AlertsResponse, int]:
        """The per-alert outcomes, and the HTTP status: 503 only when an alert that should
        have been recorded could not be."""
        received_at = datetime.now(UTC)
        outcomes: list[AlertOutcome | None] = [None] * len(raw)
        groups: dict[tuple[str, str], _Group] = {}
        for index, item in enumerate(raw):
            outcomes[index] = self._judge(index, item, source, received_at, groups)
        deadline = timedelta(seconds=self.settings.alerts_answer_within)
        try:
            async with asyncio.timeout(deadline.total_seconds()):
                sent = await asyncio.gather(*(self._send(g) for g in groups.values()))
        except TimeoutError:
            sent = [f"Temporal did not answer within {deadline.total_seconds():g} s"] * len(groups)
        for group, error in zip(groups.values(), sent, strict=True):
            self._settle(group, error, outcomes)
        results = [o for o in outcomes if o is not None]
        for o in results:
            if o.status in ("invalid", "failed"):
                log.warning(
                    "%s alert %d (%s): %s %s", source, o.index, o.alertname, o.status, o.reason
                )
        status = 503 if any(o.status == "failed" for o in results) else 200
        return AlertsResponse(received=len(raw), results=results), status

    # --- one alert --------------------------------------------------------------------------

    def _judge(
        self,
        index: int,
        item: dict[str, Any],
        source: str,
        received_at: datetime,
        groups: dict[tuple[str, str], _Group],
    ) -> AlertOutcome | None:
        """An outcome now, or None while the alert waits in its deployment's group."""
        name = _alertname(item)
        alert = parse(item, source)
        if isinstance(alert, Unrouted):
            return AlertOutcome(index=index, alertname=name, status="invalid", reason=alert.reason)
        routed = route(self.policy, alert, source, received_at)
        if isinstance(routed, Unrouted):
            status: Status = "invalid" if routed.invalid else "unmapped"
            return AlertOutcome(index=index, alertname=name, status=status, reason=routed.reason)
        key = routed.event.delivery_key
        if isinstance(routed, Blind):
            kind: Literal["firing", "resolved", "blind"] = "blind"
        else:
            kind = routed.event.status
        if key is not None and key in self.recent:
            return self._outcome(index, name, routed, "duplicate", "already delivered")
        group = groups.setdefault((routed.deployment, kind), _Group(routed.deployment, kind))
        if key is not None and any(e.delivery_key == key for e in group.events):
            return self._outcome(index, name, routed, "duplicate", "the same alert twice")
        group.indexes.append(index)
        group.events.append(routed.event)
        return None

    def _outcome(
        self, index: int, name: str, routed: Routed | Blind, status: Status, reason: str = ""
    ) -> AlertOutcome:
        trigger = routed.event.trigger if isinstance(routed, Routed) else None
        target = watch_id if isinstance(routed, Blind) else workflow_id
        return AlertOutcome(
            index=index,
            alertname=name,
            status=status,
            deployment=routed.deployment,
            trigger=trigger,
            workflow_id=target(routed.deployment),
            reason=reason,
        )

    # --- one deployment -----------------------------------------------------------------------

    async def _send(self, group: _Group) -> str | None:
        """None when delivered; "absent" for resolved alerts of a rollback that does not run;
        otherwise why it could not be delivered."""
        async with self.calls:
            try:
                client = await self.link.client()
                await self._call(client, group)
            except TemporalUnavailable as error:
                return str(error)
            except RPCError as error:
                if group.kind == "resolved" and error.status == RPCStatusCode.NOT_FOUND:
                    return "absent"
                return f"Temporal answered {error.status.name}: {error.message}"
        return None

    async def _call(self, client: Client, group: _Group) -> None:
        timeout = timedelta(seconds=self.settings.alerts_answer_within)
        if group.kind == "blind":
            await operations.send_blind_spots(
                client,
                task_queue=self.settings.task_queue,
                policy=self.policy,
                deployment=group.deployment,
                events=group.events,
                options=self.options,
                rpc_timeout=timeout,
            )
        elif group.kind == "resolved":
            # A resolved alert is recorded on a running rollback and never starts one.
            await operations.signal_running(
                client, group.deployment, _batch(group.events), rpc_timeout=timeout
            )
        else:
            await operations.send_trigger(
                client,
                task_queue=self.settings.task_queue,
                policy=self.policy,
                deployment=group.deployment,
                event=_batch(group.events),
                options=self.options,
                rpc_timeout=timeout,
            )

    def _settle(
        self, group: _Group, error: str | None, outcomes: list[AlertOutcome | None]
    ) -> None:
        delivered: Status = DELIVERED[group.kind]
        for index, event in zip(group.indexes, group.events, strict=True):
            name = _alertname_of(event)
            routed: Routed | Blind = (
                Blind(deployment=group.deployment, event=event)
                if group.kind == "blind"
                else Routed(deployment=group.deployment, event=event)
            )
            if error is None:
                if event.delivery_key is not None:
                    self.recent.add(event.delivery_key)
                reason = BLIND_SPOT if group.kind == "blind" else ""
                outcomes[index] = self._outcome(index, name, routed, delivered, reason)
            elif error == "absent":
                outcomes[index] = self._outcome(
                    index, name, routed, "ignored", "resolved, and no rollback is running"
                )
            else:
                outcomes[index] = self._outcome(index, name, routed, "failed", error)


DELIVERED: dict[str, Status] = {"firing": "sent", "resolved": "recorded", "blind": "blind_spot"}
BLIND_SPOT = "recorded as a monitoring blind spot: missing data never rolls back"


def _batch(events: list[TriggerEvent]) -> TriggerEvent | TriggerBatch:
    return events[0] if len(events) == 1 else TriggerBatch(events=events)


def _alertname(item: dict[str, Any]) -> str:
    labels = item.get("labels") if isinstance(item, dict) else None
    name = labels.get("alertname", "") if isinstance(labels, dict) else ""
    return name if isinstance(name, str) else ""


def _alertname_of(event: TriggerEvent | BlindSpotEvent) -> str:
    if isinstance(event, BlindSpotEvent):
        return event.alertname
    return event.evidence.get("alertname", "")
