"""RollbackWorkflow: one per deployment incident, from the first trigger to the rollback's end.

Every trigger arrives by signal-with-start on `rollback-<deployment>`, so an alert storm
collapses into one workflow. The decision window is a durable timer; authority is enforced
here, in the update handler, so no path around it exists.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import Any, Literal, TypeVar

from temporalio import workflow
from temporalio.common import RetryPolicy, SearchAttributeUpdate
from temporalio.exceptions import ActivityError, ApplicationError, WorkflowAlreadyStartedError
from temporalio.workflow import ChildWorkflowHandle, ParentClosePolicy

with workflow.unsafe.imports_passed_through():
    from activities.models import (
        AudienceResult,
        CommsApprovalRequestInput,
        ConfigurationRevertInput,
        DecisionClosedInput,
        DecisionMessage,
        DecisionRequestInput,
        DeepValidationInput,
        EmergencyStopInput,
        EscalationInput,
        HealthValidationInput,
        IncidentSummary,
        ProgressInput,
        ReadSplitInput,
        RecoveryPlanInput,
        RootCauseInput,
        RootCauseResult,
        StakeholderNotificationInput,
        StepContext,
    )
    from activities.procedure import RollbackActivities
    from activities.report import ReportInput
    from contract.follow_ups import INCIDENT_SIGNAL, FollowUpsInput, follow_ups_id
    from contract.rollback import (
        COMMS_SIGNAL,
        COMMS_UPDATE,
        DECIDE_UPDATE,
        DECISION_SIGNAL,
        STATUS_QUERY,
        TRIGGER_SIGNAL,
        CommsApprovalInput,
        DecisionInput,
        DecisionReply,
        RollbackInput,
        TriggerEvent,
    )
    from runbook.authority import completed_set, may_decide, missing_roles
    from runbook.durations import format_duration
    from runbook.matrix import Resolution, describe_role_sets, phase_for_share, resolve
    from runbook.policy import RecoveryTarget
    from runbook.status import (
        OpenDecision,
        RecoveryMeasure,
        RollbackState,
        RollbackStatus,
        RootCauseMaterial,
        StepRecord,
        TimelineEntry,
    )
    from runbook.timing import intervals, response_times, step_timing
    from workflows import search_attributes as sa
    from workflows.comms import CommsApprovals
    from workflows.follow_ups import FollowUpsWorkflow
    from workflows.once import once
    from workflows.people import role_holders

Verdict = Literal["rollback", "deny"]
R = TypeVar("R")

POLLING_STEPS = {"health_validation", "deep_health_validation"}
SPLIT_CACHE = timedelta(seconds=5)
"""An alert storm reads the load balancer once, not once per alert."""
QUICK = RetryPolicy(initial_interval=timedelta(milliseconds=200), maximum_attempts=3)


@workflow.defn
class RollbackWorkflow:
    @workflow.init
    def __init__(self, inp: RollbackInput) -> None:
        self._inp = inp
        self._policy = inp.policy
        self._inbox: list[tuple[TriggerEvent, datetime]] = []
        self._state: RollbackState = "triggered"
        self._timeline: list[TimelineEntry] = []
        self._steps: list[StepRecord] = []
        self._instants: dict[str, datetime] = {}
        self._decision: OpenDecision | None = None
        self._message: DecisionMessage | None = None
        self._verdict: Verdict | None = None
        self._decided_by: list[str] = []
        self._mode: Literal["auto", "manual"] | None = None
        self._trigger: str | None = None
        self._phase: int | None = None
        self._reason = ""
        self._outcome: str | None = None
        self._watch_until: datetime | None = None
        self._split_read: tuple[datetime, int] | None = None
        self._background: list[asyncio.Task[Any]] = []
        self._escalations = 0
        self._replies: dict[str, DecisionReply] = {}
        self._deliveries: set[str] = set()
        self._follow_ups_id: str | None = None
        self._last_decision: OpenDecision | None = None
        self._recovery: dict[str, RecoveryMeasure] = {}
        self._root_cause: RootCauseMaterial | None = None
        self._comms = CommsApprovals(
            self._policy, self._record, self._person_name, lambda: self._state
        )

    # --- entry points ------------------------------------------------------------------

    @workflow.run
    async def run(self, inp: RollbackInput) -> RollbackStatus:
        self._upsert(sa.DEPLOYMENT.value_set(inp.deployment), sa.DRILL.value_set(inp.options.drill))
        if await self._await_verdict() == "rollback":
            await self._roll_back()
        else:
            self._outcome = "canary continued"
            self._set_state("continued")
            self._post_report()
        await asyncio.gather(*self._background, return_exceptions=True)
        await workflow.wait_condition(workflow.all_handlers_finished)
        return self.status()

    @workflow.signal(name=TRIGGER_SIGNAL)
    def on_trigger(self, event: TriggerEvent) -> None:
        now = workflow.now()
        if event.delivery_key is not None:
            if event.delivery_key in self._deliveries:
                return  # a webhook retry or a repeat notification of an alert already recorded
            self._deliveries.add(event.delivery_key)
        if self._state in ("rolling_back", "stabilizing", "investigating"):
            self._note_joined(event, now)
        else:
            self._inbox.append((event, now))

    @workflow.update(name=DECIDE_UPDATE)
    def decide(self, inp: DecisionInput) -> DecisionReply:
        """Every attempt is recorded; one without authority is rejected and changes nothing."""
        return self._decide_once(inp)

    @workflow.signal(name=DECISION_SIGNAL)
    def on_decision(self, inp: DecisionInput) -> None:
        self._decide_once(inp)

    def _decide_once(self, inp: DecisionInput) -> DecisionReply:
        return once(self._replies, inp.request_id, lambda: self._decide(inp))

    def _decide(self, inp: DecisionInput) -> DecisionReply:
        now = workflow.now()
        decision = self._decision
        who = inp.person
        label = f"{inp.action} by {self._person_name(who)} via {inp.via}"

        def reject(reason: str) -> DecisionReply:
            self._record("decision_rejected", f"{label} rejected: {reason}", by=who)
            return DecisionReply(accepted=False, message=reason, state=self._state)

        if decision is None or self._verdict is not None:
            return reject(f"no decision is open for {self._inp.deployment} (state: {self._state})")
        if who not in self._policy.people:
            return reject(f"{who!r} is not in the roster")
        if not may_decide(self._policy, who, decision.approvers):
            roles = ", ".join(self._policy.role_name(r) for r in self._policy.roles_of(who))
            needed = describe_role_sets(self._policy, decision.approvers)
            return reject(
                f"{self._person_name(who)} ({roles or 'no role'}) may not decide; "
                f"this decision needs {needed}"
            )
        if inp.action == "investigating":
            return self._extend(decision, who, label, now)

        decision.votes[who] = inp.action
        voters = [p for p, vote in decision.votes.items() if vote == inp.action]
        distinct = self._policy.decisions.deciders_are_distinct_people
        if completed_set(self._policy, voters, decision.approvers, distinct) is None:
            waiting = missing_roles(self._policy, voters, decision.approvers, distinct)
            names = " + ".join(self._policy.role_name(r) for r in waiting)
            message = f"{label} recorded; waiting for {names} to {inp.action} as well"
            self._record("decision_vote", message, by=who)
            self._details()
            return DecisionReply(accepted=True, message=message, state=self._state)

        self._verdict = "rollback" if inp.action == "approve" else "deny"
        self._decided_by = voters
        self._instants["decision"] = now
        verb = "approved rollback" if inp.action == "approve" else "denied rollback"
        message = f"{' and '.join(self._person_name(p) for p in voters)} {verb}"
        self._record("decision", f"{message} (via {inp.via})", by=", ".join(voters))
        return DecisionReply(accepted=True, message=message, state=self._state)

    @workflow.update(name=COMMS_UPDATE)
    def approve_comms(self, inp: CommsApprovalInput) -> DecisionReply:
        """Approve or hold a held audience's wording; authority checked like a decision."""
        return self._comms.vote(inp)

    @workflow.signal(name=COMMS_SIGNAL)
    def on_comms_approval(self, inp: CommsApprovalInput) -> None:
        self._comms.vote(inp)

    @workflow.query(name=STATUS_QUERY)
    def status(self) -> RollbackStatus:
        final = self._state in ("rolled_back", "continued", "failed")
        return RollbackStatus(
            deployment=self._inp.deployment,
            state=self._state,
            drill=self._inp.options.drill,
            trigger=self._trigger,
            phase=self._phase,
            mode=self._mode,
            decision=self._decision,
            decided_by=self._decided_by,
            outcome=self._outcome,
            instants=self._instants,
            timeline=self._timeline,
            steps=self._steps,
            response_times=response_times(self._policy, self._instants, self._mode, final),
            intervals=intervals(self._instants),
            follow_ups_id=self._follow_ups_id,
            comms=self._comms.pending,
            last_decision=self._last_decision,
            recovery=self._recovery,
            root_cause=self._root_cause,
        )

    # --- the decision ------------------------------------------------------------------

    async def _await_verdict(self) -> Literal["rollback", "continue"]:
        while True:
            while self._inbox and self._verdict != "rollback":
                event, at = self._inbox.pop(0)
                await self._consider(event, at)
            if self._verdict == "rollback":
                for event, at in self._inbox:
                    self._note_joined(event, at)
                self._inbox.clear()
                await self._close_decision(
                    "rollback approved"
                    if self._mode == "manual"
                    else "superseded: rolling back automatically"
                )
                return "rollback"
            if self._verdict == "deny":
                await self._close_decision("denied: canary continues")
                self._verdict = None
                self._watch()
                continue
            if self._decision is not None:
                await self._wait_for_decision(self._decision)
                continue
            if self._watch_until is None:
                self._watch()
            assert self._watch_until is not None
            remaining = self._watch_until - workflow.now()
            if remaining <= timedelta(0):
                return "continue"
            try:
                await workflow.wait_condition(
                    lambda: bool(self._inbox),
                    timeout=remaining,
                    timeout_summary="watching for new triggers",
                )
            except TimeoutError:
                self._record("watch_ended", "no new trigger during the watch: canary continues")
                return "continue"

    async def _wait_for_decision(self, decision: OpenDecision) -> None:
        deadline = decision.deadline
        remaining = deadline - workflow.now()
        if remaining > timedelta(0):
            try:
                await workflow.wait_condition(
                    lambda: (
                        bool(self._inbox)
                        or self._verdict is not None
                        or decision.deadline != deadline
                    ),
                    timeout=remaining,
                    timeout_summary=f"decision window until {deadline:%H:%M:%S} UTC",
                )
                return
            except TimeoutError:
                pass
        default = decision.default_action
        self._record(
            "window_expired",
            f"no decision by {deadline:%H:%M:%S} UTC: default action is {default}",
        )
        self._instants["decision"] = deadline  # the window's end, not when the timer was seen
        self._decided_by = ["default"]
        self._verdict = "rollback" if default == "rollback" else "deny"

    async def _consider(self, event: TriggerEvent, at: datetime) -> None:
        if event.status == "resolved":
            self._record(
                "alert_resolved",
                f"{event.trigger} resolved ({event.source}); "
                "a resolved alert never cancels a rollback",
                by=event.source,
            )
            return
        trigger = self._policy.triggers.get(event.trigger)
        if trigger is None:
            known = ", ".join(self._policy.triggers)
            self._record("trigger_rejected", f"unknown trigger {event.trigger!r} (known: {known})")
            return
        phase = await self._phase_now(event)
        res = resolve(self._policy, event.trigger, phase)
        by = f" by {self._person_name(event.raised_by)}" if event.raised_by else ""
        reason = f": {event.reason}" if event.reason else ""
        self._record(
            "trigger",
            f"{trigger.name} at {phase}% ({event.source}{by}){reason}",
            by=event.raised_by or event.source,
        )
        if res.decided_by_initiator:
            if not (event.raised_by and may_decide(self._policy, event.raised_by, res.approvers)):
                needed = describe_role_sets(self._policy, res.approvers)
                self._record(
                    "trigger_rejected",
                    f"{trigger.name} must be raised by {needed}; "
                    f"{self._person_name(event.raised_by)} may not",
                )
                return
            self._decide_now(event, at, phase, "manual", [event.raised_by])
        elif res.mode == "auto":
            self._decide_now(event, at, phase, "auto", ["system"])
        elif self._decision is None:
            await self._open_decision(event, at, res)
        else:
            self._merge_decision(self._decision, event, at, res)

    def _note_joined(self, event: TriggerEvent, at: datetime) -> None:
        """A trigger while the rollback is already running: recorded, nothing more to do."""
        verb = "resolved" if event.status == "resolved" else "received"
        self._record(
            "trigger",
            f"{event.trigger} {verb} ({event.source}) while rolling back: already rolling back",
            by=event.raised_by or event.source,
            at=at,
        )

    def _decide_now(
        self,
        event: TriggerEvent,
        at: datetime,
        phase: int,
        mode: Literal["auto", "manual"],
        by: list[str],
    ) -> None:
        self._adopt_trigger(event, at, phase)
        self._mode, self._decided_by, self._verdict = mode, by, "rollback"
        self._instants["decision"] = workflow.now()
        what = "automatic rollback" if mode == "auto" else f"rollback by {by[0]}"
        self._record(
            "decision", f"{what}: {self._policy.triggers[event.trigger].name}", by=", ".join(by)
        )

    async def _open_decision(self, event: TriggerEvent, at: datetime, res: Resolution) -> None:
        assert res.window is not None
        self._adopt_trigger(event, at, res.phase)
        self._mode = "manual"
        self._decision = decision = OpenDecision(
            triggers=[event.trigger],
            phase=res.phase,
            opened_at=at,
            deadline=at + res.window,
            default_action=res.default_action,
            approvers=res.approvers,
            extend_by_seconds=res.extend_by.total_seconds() if res.extend_by else None,
            extend_until=at + res.extend_until if res.extend_until else None,
        )
        approvers = describe_role_sets(self._policy, res.approvers)
        self._record(
            "window_opened",
            f"decision window of {format_duration(res.window)} for {approvers}; "
            f"default at {decision.deadline:%H:%M:%S} UTC: {res.default_action}",
        )
        self._set_state("awaiting_decision")
        trigger = self._policy.triggers[event.trigger]
        request = DecisionRequestInput(
            ctx=self._ctx("Decision request"),
            trigger=event.trigger,
            trigger_name=trigger.name,
            phase=res.phase,
            reason=event.reason,
            evidence=event.evidence,
            links=event.links,
            approvers=res.approvers,
            approver_text=approvers,
            deciders=role_holders(self._policy, sorted({r for s in res.approvers for r in s})),
            deadline=decision.deadline,
            default_action=res.default_action,
            can_investigate=decision.extend_until is not None,
        )
        try:
            self._message = await workflow.execute_activity_method(
                RollbackActivities.request_decision,
                request,
                start_to_close_timeout=timedelta(seconds=10),
                schedule_to_close_timeout=min(res.window / 2, timedelta(minutes=1)),
                retry_policy=RetryPolicy(initial_interval=timedelta(milliseconds=500)),
                summary=self._summary(f"Decision request to {approvers}"),
            )
        except ActivityError as error:
            self._escalate(
                f"the decision request could not be posted ({_cause(error)}); "
                f"without a decision the default ({res.default_action}) applies at "
                f"{decision.deadline:%H:%M:%S} UTC"
            )

    def _merge_decision(
        self, decision: OpenDecision, event: TriggerEvent, at: datetime, res: Resolution
    ) -> None:
        """A second manual trigger during a window: the stricter terms of both apply."""
        assert res.window is not None
        decision.triggers.append(event.trigger)
        decision.deadline = min(decision.deadline, at + res.window)
        decision.approvers = decision.approvers + [
            s for s in res.approvers if s not in decision.approvers
        ]
        if res.default_action == "rollback":
            decision.default_action = "rollback"
        if res.extend_until is None or decision.extend_until is None:
            decision.extend_until = None
        else:
            decision.extend_until = min(decision.extend_until, at + res.extend_until)
        self._record(
            "window_merged",
            f"{event.trigger} joins the open decision; deadline now "
            f"{decision.deadline:%H:%M:%S} UTC",
        )
        self._details()

    def _extend(self, decision: OpenDecision, who: str, label: str, now: datetime) -> DecisionReply:
        if decision.extend_until is None or decision.extend_by_seconds is None:
            reason = (
                f"no investigation extension at {decision.phase}%: the window ends at "
                f"{decision.deadline:%H:%M:%S} UTC"
            )
            self._record("decision_rejected", f"{label} rejected: {reason}", by=who)
            return DecisionReply(accepted=False, message=reason, state=self._state)
        wanted = now + timedelta(seconds=decision.extend_by_seconds)
        decision.deadline = min(max(decision.deadline, wanted), decision.extend_until)
        capped = " (the cap)" if decision.deadline == decision.extend_until else ""
        message = f"{label}: deadline now {decision.deadline:%H:%M:%S} UTC{capped}"
        self._record("investigating", message, by=who)
        self._details()
        return DecisionReply(accepted=True, message=message, state=self._state)

    async def _close_decision(self, outcome: str) -> None:
        if self._decision is None:
            return
        self._record("window_closed", f"decision closed: {outcome}")
        self._last_decision = self._decision
        message, self._decision = self._message, None
        self._message = None
        inp = DecisionClosedInput(
            ctx=self._ctx("Decision outcome"),
            message=message,
            outcome=outcome,
            decided_by=self._decided_by,
            at=workflow.now(),
        )
        self._spawn(
            self._quietly("decision message update", RollbackActivities.close_decision, inp)
        )

    def _watch(self) -> None:
        self._watch_until = workflow.now() + self._policy.decisions.after_deny_watch
        self._mode, self._decided_by = None, []
        self._set_state("continued")

    async def _phase_now(self, event: TriggerEvent) -> int:
        """The live split decides the phase; the sender's label is only a fallback."""
        now = workflow.now()
        if self._split_read and now - self._split_read[0] < SPLIT_CACHE:
            return phase_for_share(self._policy, self._split_read[1])
        try:
            split = await workflow.execute_activity_method(
                RollbackActivities.read_traffic_split,
                ReadSplitInput(deployment=self._inp.deployment),
                start_to_close_timeout=timedelta(seconds=3),
                retry_policy=QUICK,
                summary=self._summary("Read live traffic split"),
            )
        except ActivityError as error:
            fallback = event.phase if event.phase in self._policy.phases else None
            phase = fallback or self._policy.phases[-1]
            source = "the trigger's phase label" if fallback else "the strictest phase"
            self._record(
                "phase_fallback",
                f"load balancer unreadable ({_cause(error)}): using {source}, {phase}%",
            )
            return phase
        self._split_read = (now, split.treatment)
        return phase_for_share(self._policy, split.treatment)

    def _adopt_trigger(self, event: TriggerEvent, at: datetime, phase: int) -> None:
        self._trigger, self._phase, self._reason = event.trigger, phase, event.reason
        self._instants["trigger"] = at
        self._upsert(sa.TRIGGER.value_set(event.trigger), sa.CANARY_PHASE.value_set(phase))

    # --- the procedure -----------------------------------------------------------------

    async def _roll_back(self) -> None:
        self._upsert(sa.DECISION_BY.value_set(", ".join(self._decided_by)))
        self._set_state("rolling_back")
        self._progress("Phase 1: Traffic Reversion started")
        stop = await self._step(
            "emergency_stop", RollbackActivities.emergency_stop, EmergencyStopInput(ctx=self._ctx())
        )
        reverted = workflow.now()
        if stop is not None:
            self._instants["traffic_reverted"] = reverted
            seconds = (reverted - self._instants["trigger"]).total_seconds()
            self._upsert(sa.TRAFFIC_REVERSION_SECONDS.value_set(seconds))
        revert = await self._step(
            "configuration_revert",
            RollbackActivities.configuration_revert,
            ConfigurationRevertInput(ctx=self._ctx()),
        )
        if revert is not None and revert.integrity is not None:
            integrity = revert.integrity
            self._measure("cache_flush_integrity", lambda _: integrity)
        health = await self._step(
            "health_validation",
            RollbackActivities.health_validation,
            HealthValidationInput(
                ctx=self._ctx(), criteria=self._policy.health_criteria, reverted_at=reverted
            ),
        )

        self._set_state("stabilizing")
        self._progress("Phase 2: System Stabilization started")
        deep = await self._step(
            "deep_health_validation",
            RollbackActivities.deep_health_validation,
            DeepValidationInput(ctx=self._ctx(), validation=self._policy.deep_validation),
        )
        if stop is not None and health is not None and deep is not None:
            self._instants["stabilized"] = workflow.now()
        notified = await self._step(
            "stakeholder_notification",
            RollbackActivities.stakeholder_notification,
            StakeholderNotificationInput(
                ctx=self._ctx(), notifications=self._policy.notifications, incident=self._incident()
            ),
        )
        if notified is not None and notified.affected_share is not None:
            share = notified.affected_share
            self._measure("affected_share", lambda target: _affected(share, target.threshold))
        if notified is not None and notified.first_sent_at is not None:
            self._instants["first_notification"] = workflow.now()
        for held in notified.audiences if notified is not None else []:
            if held.held_for_approval:
                self._hold_for_approval(held)

        self._set_state("investigating")
        self._progress("Phase 3: Investigation & Recovery started")
        rca: RootCauseResult | None = await self._step(
            "root_cause_analysis",
            RollbackActivities.root_cause_analysis,
            RootCauseInput(ctx=self._ctx(), incident=self._incident()),
        )
        if rca is not None:
            self._root_cause = RootCauseMaterial.model_validate(rca.model_dump())
        await self._step(
            "recovery_planning",
            RollbackActivities.recovery_planning,
            RecoveryPlanInput(
                ctx=self._ctx(),
                incident=self._incident(),
                root_cause=rca,
                owners=role_holders(self._policy, list(self._policy.roles)),
            ),
        )
        self._outcome = "rolled back" if stop is not None else "traffic reversion failed"
        self._progress(f"Rollback of {self._inp.deployment}: {self._outcome}")
        self._post_report()
        if stop is not None and self._inp.options.drill:
            # A rehearsal pages nobody for a week: no stability watch, no follow-ups.
            self._record("drill", "drill over: no stability watch and no follow-ups scheduled")
        elif stop is not None:
            await self._watch_after_rollback()
        self._set_state("rolled_back" if stop is not None else "failed")

    def _measure(
        self, measure: str, judge: Callable[[RecoveryTarget], RecoveryMeasure | None]
    ) -> None:
        """Recovery targets the policy says the rollback measures itself."""
        for target in self._policy.recovery_targets:
            if target.measure == measure and (value := judge(target)) is not None:
                self._recovery[target.id] = value
                self._record("recovery_measure", f"{target.name}: {value.result}: {value.evidence}")

    def _post_report(self) -> None:
        """The report in the channel when the procedure ends; `rollback report` has it all.
        In the background: a channel that is down never holds the rollback up."""
        inp = ReportInput(
            ctx=self._ctx("Rollback report"), status=self.status(), policy=self._policy
        )
        self._spawn(self._quietly("rollback report", RollbackActivities.post_report, inp))

    def _hold_for_approval(self, held: AudienceResult) -> None:
        """The wording waits for its approvers in the background; Phase 3 goes on."""
        phase = self._phase if self._phase is not None else max(self._policy.phases)
        pending = self._comms.open(held, phase, workflow.now())
        ctx = self._ctx("Communication approval")
        request = CommsApprovalRequestInput(
            ctx=ctx,
            audience=pending.audience,
            audience_name=pending.name,
            channel=pending.channel,
            wording=pending.wording,
            approvers=role_holders(self._policy, sorted({r for s in pending.approvers for r in s})),
            approver_text=describe_role_sets(self._policy, pending.approvers),
            deadline=pending.deadline,
            default=pending.default,
        )
        self._spawn(
            self._quietly("approval request", RollbackActivities.request_comms_approval, request)
        )

        async def settle() -> None:
            if not await self._comms.settle(pending, ctx, self._inp.options.ui_metadata):
                self._escalate(f"{pending.name}: the approved message could not be sent")

        self._spawn(settle())

    async def _start_follow_ups(self) -> ChildWorkflowHandle[Any, Any] | None:
        """The week of follow-ups runs apart, so the next canary can start a new rollback."""
        reverted = self._instants["traffic_reverted"]
        child_id = f"{follow_ups_id(self._inp.deployment)}-{reverted:%Y%m%dT%H%M%S}"
        try:
            handle = await workflow.start_child_workflow(
                FollowUpsWorkflow.run,
                FollowUpsInput(
                    deployment=self._inp.deployment,
                    policy=self._policy,
                    options=self._inp.options,
                    reverted_at=reverted,
                    rollback_id=workflow.info().workflow_id,
                ),
                id=child_id,
                parent_close_policy=ParentClosePolicy.ABANDON,
                static_summary=self._summary(
                    f"Follow-ups of the rollback of {self._inp.deployment}"
                ),
            )
        except WorkflowAlreadyStartedError:
            self._record("follow_ups", f"follow-ups {child_id} already running")
            return None
        self._follow_ups_id = child_id
        self._record("follow_ups", f"post-rollback follow-ups scheduled: {child_id}")
        return handle

    async def _watch_after_rollback(self) -> None:
        """A trigger soon after a rollback is a new incident, not a second rollback."""
        self._set_state("following_up")
        follow_ups = await self._start_follow_ups()
        until = workflow.now() + self._policy.decisions.after_rollback_watch
        while (remaining := until - workflow.now()) > timedelta(0):
            try:
                await workflow.wait_condition(
                    lambda: bool(self._inbox),
                    timeout=remaining,
                    timeout_summary="stability watch after the rollback",
                )
            except TimeoutError:
                break
            for event, at in self._inbox:
                if event.status == "resolved":
                    self._record(
                        "alert_resolved",
                        f"{event.trigger} resolved ({event.source})",
                        by=event.source,
                        at=at,
                    )
                    continue
                self._record(
                    "trigger",
                    f"{event.trigger} fired again ({event.source}) after the rollback",
                    by=event.raised_by or event.source,
                    at=at,
                )
                self._escalate(
                    f"new {event.trigger} trigger for {self._inp.deployment} within "
                    f"{format_duration(self._policy.decisions.after_rollback_watch)} "
                    "of the rollback: treat as a new incident"
                )
                if follow_ups is not None:
                    await follow_ups.signal(INCIDENT_SIGNAL, event)
            self._inbox.clear()
        self._record("watch_ended", "stability watch after the rollback ended")

    async def _step(
        self, step_id: str, method: Callable[[Any, Any], Awaitable[R]], inp: Any
    ) -> R | None:
        """Run one step within its budget; a step that misses it or fails escalates loudly."""
        spec = self._policy.step(step_id)
        timing = step_timing(spec, polls=step_id in POLLING_STEPS)
        record = StepRecord(
            id=spec.id,
            name=spec.name,
            started_at=workflow.now(),
            budget_seconds=timing.budget.total_seconds(),
        )
        self._steps.append(record)
        self._details()
        commands = f": {'; '.join(spec.commands)}" if spec.commands else ""
        handle = workflow.start_activity_method(
            method,
            inp,
            start_to_close_timeout=timing.start_to_close,
            schedule_to_close_timeout=timing.schedule_to_close,
            heartbeat_timeout=timing.heartbeat,
            retry_policy=RetryPolicy(
                initial_interval=timing.initial_interval,
                backoff_coefficient=2.0,
                maximum_interval=timing.maximum_interval,
            ),
            summary=self._summary(f"{spec.name}{commands}"),
        )
        try:
            await workflow.wait_condition(
                handle.done,
                timeout=timing.budget,
                timeout_summary=f"{spec.name}: budget {format_duration(timing.budget)}",
            )
        except TimeoutError:
            record.late = True
            still = " still retrying" if spec.retry_until_success else ""
            self._escalate(
                f"{spec.name} missed its budget of {format_duration(timing.budget)};{still}"
            )
        try:
            result = await handle
        except ActivityError as error:
            record.ended_at, record.outcome = workflow.now(), "failed"
            record.summary = _cause(error)
            self._escalate(f"{spec.name} failed: {record.summary}")
            self._details()
            return None
        record.ended_at = workflow.now()
        record.summary = getattr(result, "summary", "")
        record.outcome = "ok" if getattr(result, "healthy", True) else "failed"
        self._record(
            "step",
            f"{spec.name}: {record.outcome}{' (late)' if record.late else ''} - {record.summary}",
        )
        if record.outcome == "failed":
            self._escalate(f"{spec.name} failed: {record.summary}")
            self._details()
            return None
        self._details()
        return result

    def _escalate(self, reason: str) -> None:
        self._escalations += 1
        self._record("escalation", reason)
        inp = EscalationInput(
            ctx=self._ctx("Escalation"),
            reason=reason,
            holders=role_holders(self._policy, self._policy.escalation_path),
        )
        self._spawn(self._quietly("escalation", RollbackActivities.escalate, inp))

    def _progress(self, text: str) -> None:
        inp = ProgressInput(ctx=self._ctx("Progress"), text=text)
        self._spawn(self._quietly("progress message", RollbackActivities.post_progress, inp))

    async def _quietly(
        self, what: str, method: Callable[[Any, Any], Awaitable[Any]], inp: Any
    ) -> None:
        """Messages never hold the rollback up; a message that could not be sent is recorded."""
        try:
            await workflow.execute_activity_method(
                method,
                inp,
                start_to_close_timeout=timedelta(seconds=10),
                schedule_to_close_timeout=timedelta(minutes=2),
                retry_policy=RetryPolicy(initial_interval=timedelta(milliseconds=500)),
                summary=self._summary(what.capitalize()),
            )
        except ActivityError as error:
            self._record("message_failed", f"{what} could not be sent: {_cause(error)}")

    def _spawn(self, coro: Awaitable[Any]) -> None:
        self._background.append(asyncio.ensure_future(coro))

    # --- what it shows -----------------------------------------------------------------

    def _record(
        self, kind: str, message: str, by: str | None = None, at: datetime | None = None
    ) -> None:
        entry = TimelineEntry(at=at or workflow.now(), kind=kind, message=message, by=by)
        self._timeline.append(entry)

    def _set_state(self, state: RollbackState) -> None:
        self._state = state
        self._record("state", f"state: {state}")
        self._upsert(sa.ROLLBACK_STATE.value_set(state))
        self._details()

    def _upsert(self, *updates: SearchAttributeUpdate[Any]) -> None:
        if self._inp.options.ui_metadata:
            workflow.upsert_search_attributes(list(updates))

    def _summary(self, text: str) -> str | None:
        return text if self._inp.options.ui_metadata else None

    def _details(self) -> None:
        if self._inp.options.ui_metadata:
            workflow.set_current_details(self._markdown())

    def _markdown(self) -> str:
        lines = [
            f"## Rollback of `{self._inp.deployment}`"
            f"{' (drill)' if self._inp.options.drill else ''}",
            f"**State:** {self._state}",
        ]
        if self._trigger:
            lines.append(
                f"**Trigger:** {self._policy.triggers[self._trigger].name} at {self._phase}%"
            )
        if self._decision:
            d = self._decision
            votes = ", ".join(f"{self._person_name(p)}: {v}" for p, v in d.votes.items())
            lines += [
                f"**Decision by:** {describe_role_sets(self._policy, d.approvers)}",
                f"**Deadline:** {d.deadline:%H:%M:%S} UTC, then {d.default_action}",
                f"**Votes:** {votes or 'none yet'}",
            ]
        if self._decided_by:
            lines.append(f"**Decided by:** {', '.join(self._decided_by)}")
        for step in self._steps:
            mark = {"ok": "✅", "failed": "❌", "running": "⏳"}[step.outcome]
            late = " (late)" if step.late else ""
            lines.append(f"- {mark} {step.name}{late} {step.summary}".rstrip())
        return "\n".join(lines)

    # --- helpers -----------------------------------------------------------------------

    def _ctx(self, step_name: str = "") -> StepContext:
        info = workflow.info()
        return StepContext(
            deployment=self._inp.deployment,
            rollback_id=f"{info.workflow_id}/{info.run_id}",
            channel=self._inp.options.channel or self._policy.notifications.channel,
            drill=self._inp.options.drill,
            step_name=step_name or (self._steps[-1].name if self._steps else ""),
        )

    def _incident(self) -> IncidentSummary:
        trigger = self._trigger or ""
        return IncidentSummary(
            deployment=self._inp.deployment,
            trigger=trigger,
            trigger_name=self._policy.triggers[trigger].name if trigger else "",
            phase=self._phase,
            reason=self._reason,
            decided_by=self._decided_by,
            drill=self._inp.options.drill,
            started_at=self._instants.get("trigger"),
            instants=dict(self._instants),
            timeline=list(self._timeline),
            response_times=response_times(self._policy, self._instants, self._mode, False),
        )

    def _person_name(self, person: str | None) -> str:
        if person is None:
            return "nobody"
        known = self._policy.people.get(person)
        return f"{known.name} ({person})" if known else person


def _affected(share: float, threshold: float | None) -> RecoveryMeasure | None:
    """User impact: the share of queries affected, under the target's threshold."""
    if threshold is None:
        return None
    ok = share < threshold
    return RecoveryMeasure(
        result="pass" if ok else "fail",
        evidence=f"{share:.3%} of queries affected, {'<' if ok else '>='} {threshold:.2%}",
    )


def _cause(error: BaseException) -> str:
    """The innermost message: what the target actually said."""
    while error.__cause__ is not None:
        error = error.__cause__
    if isinstance(error, ApplicationError) and error.type:
        return f"{error.type}: {error.message}"
    return str(error)
