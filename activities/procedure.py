"""The rollback's activities: one per step of the plan, plus the decision and escalation messages.

One instance is built by the worker and holds the shared clients (one httpx.AsyncClient for
every target, the notifier, Redis), so connections are reused across rollbacks. Where each
target is comes from the settings (`ROLLBACK_…_URL`); what to call there, and how to read the
metrics, from the policy's `targets` and `metrics` sections (the worker's `ROLLBACK_POLICY`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import httpx
from temporalio import activity

from activities import checks, mrkdwn, recovery, report
from activities.actions import Phase1Actions
from activities.canary import CanaryReader
from activities.drivers.build import build_drivers
from activities.health import Health
from activities.heartbeat import heartbeating
from activities.metrics import MetricsReader, build_provider
from activities.models import (
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
    StepContext,
    TrafficSplit,
)
from activities.notify import Notifier, prefix
from activities.pager import Pager
from activities.people import Stakeholders
from activities.rca import LogSource, RootCause
from activities.report import ReportInput, ReportResult
from activities.slack_notifier import notifier_from_settings
from activities.smoke import SmokeTests
from activities.targets import Target
from contract.watch import CanaryReading, CanaryReadingInput
from runbook.loading import load_policy
from runbook.policy import Metrics, Policy, Targets

if TYPE_CHECKING:
    from config.settings import Settings

log = logging.getLogger(__name__)


def key(ctx: StepContext, step: str, action: str) -> str:
    """The idempotency key of one change: the same on every retry of the step."""
    return f"{ctx.rollback_id}/{step}/{action}"


def message_key() -> str | None:
    """One message per scheduled activity, however often it is retried."""
    if not activity.in_activity():
        return None
    info = activity.info()
    return f"{info.workflow_id}/{info.workflow_run_id}/{info.activity_id}"


def attempt_note() -> str:
    attempt = activity.info().attempt if activity.in_activity() else 1
    return f" (attempt {attempt})" if attempt > 1 else ""


class RollbackActivities:
    def __init__(
        self,
        settings: Settings,
        *,
        http: httpx.AsyncClient | None = None,
        notifier: Notifier | None = None,
        policy: Policy | None = None,
    ) -> None:
        """`policy`: where `targets` and `metrics` come from; the settings' policy file when
        not given."""
        self.settings = settings
        self.policy = policy or load_policy(settings.policy)
        targets, metrics = _wiring(self.policy, str(settings.policy))
        self._owns_http = http is None
        # A small pool: httpcore checks every pooled connection on each request, so a pool
        # grown large in a storm makes every call slower.
        self.http = http or httpx.AsyncClient(
            timeout=settings.http_timeout,
            limits=httpx.Limits(max_connections=16, max_keepalive_connections=8),
        )
        self.notifier: Notifier = notifier or notifier_from_settings(settings)
        self.pager = Pager(
            self.http, settings.pagerduty_events_url, settings.ui_url, settings.temporal_namespace
        )

        def target(name: str, url: str | None) -> Target:
            return Target(self.http, name, url or settings.target_url, settings.target_token)

        # Each kind of Phase 1 action through the driver the policy chooses (targets.drivers).
        self.drivers = build_drivers(settings, targets, target)
        self.lb = self.drivers.lb
        self.cache = self.drivers.cache
        self.actions = Phase1Actions(
            self.lb, self.drivers.services, self.drivers.config, self.drivers.flags, self.cache
        )
        self.reader = MetricsReader(
            build_provider(
                metrics,
                target("metrics", settings.metrics_url),
                target("prometheus", settings.prometheus_url),
            ),
            metrics,
        )
        smoke = SmokeTests(
            target("search", settings.search_url),
            settings.smoke_test_attempts,
            pause=min(settings.health_poll_interval, 0.5),
        )
        self.health = Health(
            self.reader, smoke, settings.health_poll_interval, margin=settings.http_timeout + 0.5
        )
        self.stakeholders = Stakeholders(
            self.notifier, self.reader, settings.ui_url, settings.temporal_namespace
        )
        self.canary = CanaryReader(self.reader, self.lb)
        self.root_cause = RootCause(
            LogSource(target("logs", settings.logs_url), targets.logs),
            self.reader,
            timedelta(seconds=settings.log_lookback),
        )

    def activities(self) -> list[Callable[..., Any]]:
        """Every activity, bound to this instance, for `Worker(activities=…)`."""
        return [
            self.read_traffic_split,
            self.read_figures,
            self.read_canary,
            *self.actions.activities(),
            self.health_validation,
            self.deep_health_validation,
            self.stakeholder_notification,
            self.send_audience,
            self.root_cause_analysis,
            self.recovery_planning,
            self.post_report,
            self.request_decision,
            self.close_decision,
            self.update_decision,
            self.tell_accountable,
            self.post_progress,
            self.escalate,
            self.page,
            self.check_baseline,
            self.follow_up_notice,
            self.request_comms_approval,
        ]

    async def aclose(self) -> None:
        await self.cache.aclose()
        await self.notifier.aclose()
        if self._owns_http:
            await self.http.aclose()

    # --- Phase 1: Traffic Reversion ---------------------------------------------------------

    @activity.defn(name="read_traffic_split")
    async def read_traffic_split(self, inp: ReadSplitInput) -> TrafficSplit:
        return await self.lb.read(inp.deployment)

    @activity.defn(name="read_canary")
    async def read_canary(self, inp: CanaryReadingInput) -> CanaryReading:
        """One reading of the canary for its watch (never fails for a target that is down)."""
        return await self.canary.read(inp)

    @activity.defn(name="read_figures")
    async def read_figures(self, inp: ReadFiguresInput) -> Figures:
        """Every metric now: the "before" of the stakeholder messages, read at the trigger."""
        return Figures(values=await self.stakeholders.figures_now(inp.deployment))

    @activity.defn(name="health_validation")
    async def health_validation(self, inp: HealthValidationInput) -> HealthValidationResult:
        async with heartbeating("health criteria") as beat:
            results = await self.health.until_held(
                inp.ctx.deployment, inp.criteria, inp.reverted_at, beat
            )
        return HealthValidationResult(
            healthy=all(c.passed for c in results),
            checks=results,
            summary=checks.summary(results, "health criteria"),
        )

    # --- Phase 2: System Stabilization ------------------------------------------------------

    @activity.defn(name="deep_health_validation")
    async def deep_health_validation(self, inp: DeepValidationInput) -> DeepValidationResult:
        watched = self.policy.health_criteria if inp.criteria is None else inp.criteria
        observe = inp.validation.observe_for * self.settings.observe_scale
        async with heartbeating("deep health validation"):
            results = await self.health.deep(inp.ctx.deployment, inp.validation, watched, observe)
        return DeepValidationResult(
            healthy=all(c.passed for c in results),
            checks=results,
            summary=checks.summary(results, "checks")
            + f" (observed {observe.total_seconds():g} s)",
        )

    @activity.defn(name="stakeholder_notification")
    async def stakeholder_notification(
        self, inp: StakeholderNotificationInput
    ) -> StakeholderNotificationResult:
        async with heartbeating("stakeholder notification"):
            return await self.stakeholders.notify(inp)

    # --- Phase 3: Investigation & Recovery --------------------------------------------------

    @activity.defn(name="send_audience")
    async def send_audience(self, inp: SendAudienceInput) -> None:
        """A held audience's message, once approved; the same key on every retry."""
        key = f"{inp.ctx.rollback_id}/stakeholder_notification/{inp.audience}"
        await self.notifier.post(inp.channel, f"{prefix(inp.ctx)}{inp.text}", key=key)

    @activity.defn(name="post_report")
    async def post_report(self, inp: ReportInput) -> ReportResult:
        """The rollback report in the channel, once the procedure has ended."""
        return await report.post_report(self.notifier, inp, key=message_key())

    @activity.defn(name="root_cause_analysis")
    async def root_cause_analysis(self, inp: RootCauseInput) -> RootCauseResult:
        async with heartbeating("root cause analysis"):
            return await self.root_cause.analyse(inp)

    @activity.defn(name="recovery_planning")
    async def recovery_planning(self, inp: RecoveryPlanInput) -> RecoveryPlanResult:
        markdown = recovery.plan(inp)
        title, _, body = markdown.partition("\n")
        async with heartbeating("recovery plan"):
            # Slack shows GitHub Markdown as literal characters: the channel gets mrkdwn.
            await self.notifier.post_document(
                inp.ctx.channel,
                f"{prefix(inp.ctx)}{title.lstrip('# ')}",
                mrkdwn.from_markdown(body),
                key=key(inp.ctx, "recovery_planning", "post"),
                more=f"`rollback report -d {inp.ctx.deployment}`",
            )
        return RecoveryPlanResult(markdown=markdown, summary=recovery.summary(inp))

    # --- messages -------------------------------------------------------------------------

    @activity.defn(name="request_decision")
    async def request_decision(self, inp: DecisionRequestInput) -> DecisionMessage:
        return await self.notifier.request_decision(inp, key=message_key())

    @activity.defn(name="close_decision")
    async def close_decision(self, inp: DecisionClosedInput) -> None:
        await self.notifier.close_decision(inp, key=message_key())

    @activity.defn(name="update_decision")
    async def update_decision(self, inp: DecisionUpdateInput) -> None:
        await self.notifier.update_decision(inp, key=message_key())

    @activity.defn(name="tell_accountable")
    async def tell_accountable(self, inp: EscalationInput) -> None:
        await self.notifier.tell_accountable(inp, key=message_key())

    @activity.defn(name="post_progress")
    async def post_progress(self, inp: ProgressInput) -> None:
        await self.notifier.post(inp.ctx.channel, f"{prefix(inp.ctx)}{inp.text}", key=message_key())

    @activity.defn(name="page")
    async def page(self, inp: PageInput) -> PageResult:
        """PagerDuty events for an escalation (trigger, acknowledge, resolve)."""
        return await self.pager.send(inp)

    @activity.defn(name="escalate")
    async def escalate(self, inp: EscalationInput) -> EscalationResult:
        return await self.notifier.escalate(inp, key=message_key())

    # --- post-rollback follow-ups -----------------------------------------------------------

    @activity.defn(name="check_baseline")
    async def check_baseline(self, inp: BaselineCheckInput) -> BaselineCheckResult:
        results = await self.health.once(inp.ctx.deployment, inp.criteria)
        return BaselineCheckResult(
            healthy=all(c.passed for c in results),
            checks=results,
            summary=checks.summary(results, "baseline criteria"),
        )

    @activity.defn(name="follow_up_notice")
    async def follow_up_notice(self, inp: FollowUpNoticeInput) -> None:
        if inp.workflow_id is None and activity.in_activity():
            inp = inp.model_copy(update={"workflow_id": activity.info().workflow_id})
        await self.notifier.follow_up_notice(inp, key=message_key())

    @activity.defn(name="request_comms_approval")
    async def request_comms_approval(self, inp: CommsApprovalRequestInput) -> None:
        """The held wording with its approve/hold buttons (a CLI line on the console)."""
        await self.notifier.request_comms_approval(inp, key=message_key())


def _wiring(policy: Policy, source: str) -> tuple[Targets, Metrics]:
    missing = [name for name in ("targets", "metrics") if getattr(policy, name) is None]
    if missing:
        raise ValueError(
            f"{source}: the policy has no {' and no '.join(missing)} section; the activities "
            "need them to reach the targets (see policies/sprint-1.yaml)"
        )
    assert policy.targets is not None and policy.metrics is not None
    return policy.targets, policy.metrics
