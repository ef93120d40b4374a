"""Stand-ins registered under the real activity names, so the workflow under test is the real one.

They record every call; the traffic split they report can be set or made unreadable.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from temporalio import activity
from temporalio.client import Client
from temporalio.exceptions import ApplicationError, ApplicationErrorCategory

from activities.models import (
    ActionDone,
    ActionInput,
    AudienceResult,
    BaselineCheckInput,
    BaselineCheckResult,
    CommsApprovalRequestInput,
    DecisionClosedInput,
    DecisionMessage,
    DecisionRequestInput,
    DecisionUpdateInput,
    DeepValidationInput,
    DeepValidationResult,
    EscalationInput,
    EscalationResult,
    Figures,
    FollowUpNoticeInput,
    HealthValidationInput,
    HealthValidationResult,
    PageInput,
    PageResult,
    ProgressInput,
    ReadFiguresInput,
    ReadSplitInput,
    RecoveryPlanInput,
    RecoveryPlanResult,
    RootCauseInput,
    RootCauseResult,
    SendAudienceInput,
    StakeholderNotificationInput,
    StakeholderNotificationResult,
    TrafficSplit,
)
from activities.report import ReportInput, ReportResult
from client import operations
from contract.watch import CanaryReading, CanaryReadingInput, WatchRaiseInput
from runbook.status import RecoveryMeasure

HEALTHY: dict[str, float | None] = {
    "error_rate": 0.0005,
    "p99_latency_seconds": 0.18,
    "control:p99_latency_seconds": 0.18,
    "max_shard_cpu": 0.45,
    "max_shard_memory": 0.5,
    "treatment:ndcg_at_10": 0.5234,
    "treatment:sla_recall_at_50": 0.97,
}
"""A canary reading of every figure sprint-1's watch judges, all within the plan."""


@dataclass
class StandIns:
    treatment: int | None = None
    """The live split's treatment share; None makes the load balancer unreadable."""
    unhealthy: bool = False
    baseline_healthy: bool = True
    emergency_stop_delay: float = 0.0
    sla_breach: bool = False
    """Step 5 then holds the customer notification for its approval."""
    calls: list[tuple[str, Any]] = field(default_factory=list)
    post_report_delay: float = 0.0
    """Seconds the channel report takes: the run is still ending meanwhile."""
    send_audience_fails: bool = False
    action_faults: dict[str, str | int] = field(default_factory=dict)
    """By action id: "refused" (a 404 no retry fixes), or how many attempts answer 503."""
    canary: Callable[[int], CanaryReading] | None = None
    """The canary watch's readings, by reading number (0, 1, …); None: a healthy canary."""
    canary_readings: int = 0
    page_seconds: float = 0.0
    """How long a page takes to reach PagerDuty."""
    update_decision_seconds: float = 0.0
    """How long the decision message's deadline update takes (Slack slow, or retried)."""
    update_decision_fails: bool = False
    """Slack refuses the deadline update for now (a 503, retried)."""
    decision_ts: dict[str, str] = field(default_factory=dict)
    """By deployment: the ts Slack gives its decision message (default: click()'s)."""
    slack_down: bool = False
    """Slack answers 503 to progress messages and escalations for now (retried)."""
    request_decision_fails: bool = False
    """The decision request cannot be posted (refused for good)."""
    forward_raises: Client | None = None
    """Raises of the watch go to the real rollback through this client (else recorded only)."""

    def names(self) -> list[str]:
        return [name for name, _ in self.calls]

    def count(self, name: str) -> int:
        return self.names().count(name)

    def activities(self) -> list[Any]:
        return [
            self.read_traffic_split,
            self.read_figures,
            self.read_canary,
            self.raise_from_watch,
            self.set_traffic_split,
            self.stop_service,
            self.set_config_value,
            self.disable_flag,
            self.flush_cache,
            self.health_validation,
            self.deep_health_validation,
            self.stakeholder_notification,
            self.root_cause_analysis,
            self.recovery_planning,
            self.request_decision,
            self.close_decision,
            self.update_decision,
            self.post_progress,
            self.escalate,
            self.tell_accountable,
            self.page,
            self.check_baseline,
            self.follow_up_notice,
            self.send_audience,
            self.request_comms_approval,
            self.post_report,
        ]

    @activity.defn(name="read_traffic_split")
    async def read_traffic_split(self, inp: ReadSplitInput) -> TrafficSplit:
        self.calls.append(("read_traffic_split", inp))
        if self.treatment is None:
            raise ApplicationError(
                "load balancer unreachable",
                non_retryable=True,
                category=ApplicationErrorCategory.BENIGN,
            )
        return TrafficSplit(treatment=self.treatment, control=100 - self.treatment)

    async def _action(self, name: str, inp: ActionInput) -> ActionDone:
        self.calls.append((name, inp))
        if name == "set_traffic_split" and self.emergency_stop_delay:
            await asyncio.sleep(self.emergency_stop_delay)
        fault = self.action_faults.get(inp.action.id)
        if fault == "refused":
            raise ApplicationError(
                f"{inp.action.id}: target answered 404", type="TargetRejected", non_retryable=True
            )
        if fault is not None and isinstance(fault, int) and fault > 0:
            self.action_faults[inp.action.id] = fault - 1
            raise ApplicationError(
                f"{inp.action.id}: target answered 503", type="TargetUnavailable"
            )
        if name == "set_traffic_split":
            before = self.treatment
            if self.treatment is not None:
                self.treatment = 0  # the load balancer now reads back what it was told
            return ActionDone(
                outcome="done",
                detail="read back treatment 0% / control 100%",
                split=TrafficSplit(treatment=0, control=100),
                before=None
                if before is None
                else TrafficSplit(treatment=before, control=100 - before),
            )
        if name == "flush_cache":
            return ActionDone(
                outcome="done",
                detail="database 1: 3 key(s) flushed; other databases unchanged",
                integrity=RecoveryMeasure(result="pass", evidence="other databases unchanged"),
            )
        return ActionDone(outcome="done", detail="done")

    @activity.defn(name="set_traffic_split")
    async def set_traffic_split(self, inp: ActionInput) -> ActionDone:
        return await self._action("set_traffic_split", inp)

    @activity.defn(name="stop_service")
    async def stop_service(self, inp: ActionInput) -> ActionDone:
        return await self._action("stop_service", inp)

    @activity.defn(name="set_config_value")
    async def set_config_value(self, inp: ActionInput) -> ActionDone:
        return await self._action("set_config_value", inp)

    @activity.defn(name="disable_flag")
    async def disable_flag(self, inp: ActionInput) -> ActionDone:
        return await self._action("disable_flag", inp)

    @activity.defn(name="flush_cache")
    async def flush_cache(self, inp: ActionInput) -> ActionDone:
        return await self._action("flush_cache", inp)

    @activity.defn(name="health_validation")
    async def health_validation(self, inp: HealthValidationInput) -> HealthValidationResult:
        self.calls.append(("health_validation", inp))
        return HealthValidationResult(healthy=not self.unhealthy, checks=[], summary="checked")

    @activity.defn(name="deep_health_validation")
    async def deep_health_validation(self, inp: DeepValidationInput) -> DeepValidationResult:
        self.calls.append(("deep_health_validation", inp))
        return DeepValidationResult(healthy=True, checks=[], summary="smoke tests pass")

    @activity.defn(name="stakeholder_notification")
    async def stakeholder_notification(
        self, inp: StakeholderNotificationInput
    ) -> StakeholderNotificationResult:
        self.calls.append(("stakeholder_notification", inp))
        under_way = bool(inp.incident.unconfirmed)  # as the real step: nothing held yet
        held = [
            AudienceResult(
                audience="customer_comms",
                channel="#customer-comms",
                sent=False,
                reason="waits: its wording is asked for once every Phase 1 action is confirmed"
                if under_way
                else "held: wording needs approval by the business impact authority",
                held_for_approval=not under_way,
                wording=""
                if under_way
                else "Search results were degraded for some users; service is restored.",
            )
        ]
        return StakeholderNotificationResult(
            audiences=held if self.sla_breach else [],
            affected_share=0.02 if self.sla_breach else 0.0004,
            first_sent_at=datetime.now(UTC),
            summary="notified",
        )

    @activity.defn(name="request_comms_approval")
    async def request_comms_approval(self, inp: CommsApprovalRequestInput) -> None:
        self.calls.append(("request_comms_approval", inp))

    @activity.defn(name="post_report")
    async def post_report(self, inp: ReportInput) -> ReportResult:
        self.calls.append(("post_report", inp))
        if self.post_report_delay:
            await asyncio.sleep(self.post_report_delay)
        return ReportResult(posted=True, summary="report posted")

    @activity.defn(name="send_audience")
    async def send_audience(self, inp: SendAudienceInput) -> None:
        self.calls.append(("send_audience", inp))
        if self.send_audience_fails:
            raise ApplicationError("channel_not_found", type="SlackRefused", non_retryable=True)

    @activity.defn(name="root_cause_analysis")
    async def root_cause_analysis(self, inp: RootCauseInput) -> RootCauseResult:
        self.calls.append(("root_cause_analysis", inp))
        return RootCauseResult(log_lines=0, log_excerpt=[], metrics={}, hypotheses=[], summary="")

    @activity.defn(name="recovery_planning")
    async def recovery_planning(self, inp: RecoveryPlanInput) -> RecoveryPlanResult:
        self.calls.append(("recovery_planning", inp))
        return RecoveryPlanResult(markdown="", summary="")

    @activity.defn(name="request_decision")
    async def request_decision(self, inp: DecisionRequestInput) -> DecisionMessage:
        self.calls.append(("request_decision", inp))
        if self.request_decision_fails:
            raise ApplicationError("channel_not_found", type="SlackRefused", non_retryable=True)
        # Slack answers with the channel's id and the message's ts: what a click on it carries
        # (tests.gateway.slack_standin.click's defaults).
        ts = self.decision_ts.get(inp.ctx.deployment, "1700000000.000100")
        return DecisionMessage(channel="C0SPRINT1", ts=ts)

    @activity.defn(name="close_decision")
    async def close_decision(self, inp: DecisionClosedInput) -> None:
        self.calls.append(("close_decision", inp))  # the message is changed at once

    @activity.defn(name="post_progress")
    async def post_progress(self, inp: ProgressInput) -> None:
        self.calls.append(("post_progress", inp))
        self._slack()

    def _slack(self) -> None:
        if self.slack_down:
            raise ApplicationError("Slack answered 503", type="SlackUnavailable")

    @activity.defn(name="escalate")
    async def escalate(self, inp: EscalationInput) -> EscalationResult:
        self.calls.append(("escalate", inp))
        self._slack()
        return EscalationResult(notified=[], ts=inp.thread_ts or f"esc-{len(self.calls)}")

    @activity.defn(name="read_canary")
    async def read_canary(self, inp: CanaryReadingInput) -> CanaryReading:
        index = self.canary_readings
        self.canary_readings += 1
        self.calls.append(("read_canary", inp))
        if self.canary is not None:
            return self.canary(index)
        return CanaryReading(values=HEALTHY, treatment=self.treatment)

    @activity.defn(name="raise_from_watch")
    async def raise_from_watch(self, inp: WatchRaiseInput) -> str:
        self.calls.append(("raise_from_watch", inp))
        if self.forward_raises is not None:
            handle = await operations.send_trigger(
                self.forward_raises,
                task_queue=activity.info().task_queue,
                policy=inp.policy,
                deployment=inp.deployment,
                event=inp.event,
                options=inp.options,
            )
            return handle.id
        return f"rollback-{inp.deployment}"

    @activity.defn(name="read_figures")
    async def read_figures(self, inp: ReadFiguresInput) -> Figures:
        self.calls.append(("read_figures", inp))
        return Figures(values={"error_rate": 0.052, "p99_latency_seconds": 0.41})

    @activity.defn(name="update_decision")
    async def update_decision(self, inp: DecisionUpdateInput) -> None:
        self.calls.append(("update_decision", inp))
        if self.update_decision_fails:
            raise ApplicationError("Slack answered 503", type="SlackUnavailable")
        if self.update_decision_seconds:
            await asyncio.sleep(self.update_decision_seconds)
        self.calls.append(("update_decision_done", inp))

    @activity.defn(name="tell_accountable")
    async def tell_accountable(self, inp: EscalationInput) -> None:
        self.calls.append(("tell_accountable", inp))

    @activity.defn(name="page")
    async def page(self, inp: PageInput) -> PageResult:
        """Pages everyone it is given (the real Pager is tested against the stand-in server)."""
        self.calls.append(("page", inp))
        if self.page_seconds and inp.action == "trigger":
            await asyncio.sleep(self.page_seconds)  # on its way: an acknowledgement can overtake
        return PageResult(paged=sorted(inp.routing_keys))

    @activity.defn(name="check_baseline")
    async def check_baseline(self, inp: BaselineCheckInput) -> BaselineCheckResult:
        self.calls.append(("check_baseline", inp))
        summary = "all within baseline" if self.baseline_healthy else "p99 latency 1.4× baseline"
        return BaselineCheckResult(healthy=self.baseline_healthy, checks=[], summary=summary)

    @activity.defn(name="follow_up_notice")
    async def follow_up_notice(self, inp: FollowUpNoticeInput) -> None:
        self.calls.append(("follow_up_notice", inp))
