"""The rollback's activities: one per step of the plan, plus the decision and escalation messages.

One instance is built by the worker and holds the shared clients (one httpx.AsyncClient for
every target, the notifier, Redis), so connections are reused across rollbacks.
"""

from __future__ import annotations

from temporalio import activity

from activities.models import (
    ConfigurationRevertInput,
    ConfigurationRevertResult,
    DecisionClosedInput,
    DecisionMessage,
    DecisionRequestInput,
    DeepValidationInput,
    DeepValidationResult,
    EmergencyStopInput,
    EmergencyStopResult,
    EscalationInput,
    EscalationResult,
    HealthValidationInput,
    HealthValidationResult,
    ProgressInput,
    ReadSplitInput,
    RecoveryPlanInput,
    RecoveryPlanResult,
    RootCauseInput,
    RootCauseResult,
    StakeholderNotificationInput,
    StakeholderNotificationResult,
    TrafficSplit,
)


class RollbackActivities:
    @activity.defn(name="read_traffic_split")
    async def read_traffic_split(self, inp: ReadSplitInput) -> TrafficSplit:
        raise NotImplementedError

    @activity.defn(name="emergency_stop")
    async def emergency_stop(self, inp: EmergencyStopInput) -> EmergencyStopResult:
        raise NotImplementedError

    @activity.defn(name="configuration_revert")
    async def configuration_revert(
        self, inp: ConfigurationRevertInput
    ) -> ConfigurationRevertResult:
        raise NotImplementedError

    @activity.defn(name="health_validation")
    async def health_validation(self, inp: HealthValidationInput) -> HealthValidationResult:
        raise NotImplementedError

    @activity.defn(name="deep_health_validation")
    async def deep_health_validation(self, inp: DeepValidationInput) -> DeepValidationResult:
        raise NotImplementedError

    @activity.defn(name="stakeholder_notification")
    async def stakeholder_notification(
        self, inp: StakeholderNotificationInput
    ) -> StakeholderNotificationResult:
        raise NotImplementedError

    @activity.defn(name="root_cause_analysis")
    async def root_cause_analysis(self, inp: RootCauseInput) -> RootCauseResult:
        raise NotImplementedError

    @activity.defn(name="recovery_planning")
    async def recovery_planning(self, inp: RecoveryPlanInput) -> RecoveryPlanResult:
        raise NotImplementedError

    @activity.defn(name="request_decision")
    async def request_decision(self, inp: DecisionRequestInput) -> DecisionMessage:
        raise NotImplementedError

    @activity.defn(name="close_decision")
    async def close_decision(self, inp: DecisionClosedInput) -> None:
        raise NotImplementedError

    @activity.defn(name="post_progress")
    async def post_progress(self, inp: ProgressInput) -> None:
        raise NotImplementedError

    @activity.defn(name="escalate")
    async def escalate(self, inp: EscalationInput) -> EscalationResult:
        raise NotImplementedError
