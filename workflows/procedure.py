"""The rollback procedure: Phase 1 (traffic reversion), Phase 2 (stabilization), Phase 3
(investigation), each step within its budget.

Phase 1's actions are durable units of their own: each is retried until it is confirmed, one
failing never stops or delays the others, and a step that misses its budget escalates and hands
over to the next step on time while its late actions keep retrying. The outcome says
`rolled back` only when every action is confirmed; otherwise `incomplete`, naming what is not,
until the last straggler is confirmed.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from datetime import timedelta
from types import MappingProxyType
from typing import Any, TypeVar

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    from activities.actions import Phase1Actions
    from activities.models import (
        ActionDone,
        ActionInput,
        AudienceResult,
        CommsApprovalRequestInput,
        DeepValidationInput,
        HealthValidationInput,
        IncidentSummary,
        RecoveryPlanInput,
        RootCauseInput,
        RootCauseResult,
        StakeholderNotificationInput,
    )
    from activities.procedure import RollbackActivities
    from activities.report import ReportInput
    from activities.targets import REJECTED
    from runbook.actions import ActionSpec, phase1_actions
    from runbook.durations import format_duration
    from runbook.matrix import describe_role_sets, phase_for_share
    from runbook.policy import RecoveryTarget
    from runbook.status import ActionRecord, RecoveryMeasure, RootCauseMaterial, StepRecord
    from runbook.timing import StepTiming, response_times, reversion_interval, step_timing
    from workflows import metering
    from workflows import search_attributes as sa
    from workflows.comms import CommsApprovals
    from workflows.deadlines import Deadlines
    from workflows.messenger import describe_failure
    from workflows.people import role_holders
    from workflows.rollback_record import RollbackRecord

R = TypeVar("R")
BEHIND_MESSAGES = timedelta(seconds=15)
"""How long a step that posts waits for the progress messages before it (Slack slow)."""

ACTIVITY_OF: Mapping[str, Callable[[Any, ActionInput], Awaitable[ActionDone]]] = MappingProxyType(
    {
        "set_traffic_split": Phase1Actions.set_traffic_split,
        "stop_service": Phase1Actions.stop_service,
        "set_config_value": Phase1Actions.set_config_value,
        "disable_flag": Phase1Actions.disable_flag,
        "flush_cache": Phase1Actions.flush_cache,
    }
)


def refused(error: ActivityError) -> bool:
    """An answer no retry can fix (401, 403, 404, a malformed body)."""
    cause: BaseException | None = error.cause
    while cause is not None:
        if isinstance(cause, ApplicationError) and (cause.non_retryable or cause.type == REJECTED):
            return True
        cause = cause.__cause__
    return False


class Procedure:
    def __init__(self, rb: RollbackRecord, comms: CommsApprovals) -> None:
        self.rb = rb
        self.comms = comms
        self.policy = rb.policy
        self._actions: list[asyncio.Task[None]] = []
        self.concluded = False
        self._final_owed = False
        """Step 5 told the audiences the rollback was under way: their own words are owed once
        every Phase 1 action is confirmed."""
        self.deadlines = Deadlines(rb, lambda: self.response_times(final=False), self._over)

    @property
    def status(self) -> Any:
        return self.rb.status

    # --- the whole procedure ---------------------------------------------------------------

    async def run(self) -> None:
        rb, s = self.rb, self.rb.status
        rb.upsert(sa.DECISION_BY.value_set(", ".join(s.decided_by)))
        rb.set_state("rolling_back")
        self.deadlines.start()
        specs = phase1_actions(self.policy)
        s.actions = [
            ActionRecord(id=a.id, step=a.step, name=a.name, command=a.command) for a in specs
        ]
        for step_id in ("emergency_stop", "configuration_revert"):
            await self._action_step(step_id, [a for a in specs if a.step == step_id])
            if s.phase is None:
                self._phase_fallback()
            rb.messenger.check()

        reverted = s.instants.get("traffic_reverted")
        health = await self._step(
            "health_validation",
            RollbackActivities.health_validation,
            HealthValidationInput(
                ctx=rb.ctx(),
                criteria=self.policy.health_criteria,
                reverted_at=reverted or workflow.now(),
            ),
        )

        rb.set_state("stabilizing")
        deep = await self._step(
            "deep_health_validation",
            RollbackActivities.deep_health_validation,
            DeepValidationInput(
                ctx=rb.ctx(),
                validation=self.policy.deep_validation,
                criteria=self.policy.health_criteria,
            ),
        )
        if reverted is not None and health is not None and deep is not None:
            s.instants["stabilized"] = workflow.now()
        if rb.v20:  # the messages before it land first; then what is true at that moment
            await rb.messenger.caught_up(BEHIND_MESSAGES)
        told = self.incident()
        notified = await self._step(
            "stakeholder_notification",
            RollbackActivities.stakeholder_notification,
            StakeholderNotificationInput(
                ctx=rb.ctx(), notifications=self.policy.notifications, incident=told
            ),
        )
        self._final_owed = notified is not None and bool(told.unconfirmed)
        if notified is not None and notified.affected_share is not None:
            share, how = notified.affected_share, notified.affected_how
            self._measure("affected_share", lambda target: _affected(share, target.threshold, how))
        if notified is not None and notified.first_sent_at is not None:
            s.instants["first_notification"] = workflow.now()
        for held in notified.audiences if notified is not None else []:
            if held.held_for_approval:
                self._hold_for_approval(held)
        self._owe_final()
        rb.messenger.check()

        rb.set_state("investigating")
        rca: RootCauseResult | None = await self._step(
            "root_cause_analysis",
            RollbackActivities.root_cause_analysis,
            RootCauseInput(ctx=rb.ctx(), incident=self.incident(timeline=True)),
        )
        if rca is not None:
            s.root_cause = RootCauseMaterial.model_validate(rca.model_dump())
        await self._step(
            "recovery_planning",
            RollbackActivities.recovery_planning,
            RecoveryPlanInput(
                ctx=rb.ctx(),
                incident=self.incident(),
                root_cause=rca,
                owners=role_holders(self.policy, list(self.policy.roles)),
            ),
            posts=True,
        )
        self.concluded = True
        self.conclude()
        self.post_report()

    def _over(self) -> bool:
        """The procedure ran to its end and every Phase 1 action is settled: what the plan's
        clocks still wait for will not happen."""
        return self.concluded and self.settled

    def check(self) -> None:
        """A bug inside an action's task fails the workflow task, loudly."""
        for task in self._actions:
            if task.done():
                task.result()

    @property
    def settled(self) -> bool:
        return all(task.done() for task in self._actions)

    # --- the outcome -----------------------------------------------------------------------

    def conclude(self) -> None:
        """`rolled back` only when every Phase 1 action is confirmed; otherwise `incomplete`,
        with each unconfirmed action and why."""
        rb, s = self.rb, self.rb.status
        missing = s.unconfirmed()
        before = s.outcome
        if not missing:
            s.outcome = "rolled back"
            last = max((a.settled_at for a in s.actions if a.settled_at), default=None)
            late = [a for a in s.actions if a.state == "confirmed" and a.error]
            s.outcome_detail = (
                f"every Phase 1 action confirmed, the last at {last:%H:%M:%S} UTC"
                if last is not None
                else "every Phase 1 action confirmed"
            ) + (f" (after retrying: {', '.join(a.name for a in late)})" if late else "")
        else:
            s.outcome = "incomplete"
            s.outcome_detail = "; ".join(
                f"{a.name} (`{a.command}`) {a.state.replace('_', ' ')}"
                + (f": {a.error}" if a.error else "")
                for a in missing
            )
            if self._final_owed and before is None:
                rb.record(
                    "stakeholders",
                    "the audiences were told the rollback is under way (what is done, what is "
                    "not); nobody is told it is rolled back, and held wording is not asked for, "
                    "until every Phase 1 action is confirmed",
                )
        rb.upsert(sa.ROLLBACK_OUTCOME.value_set(s.outcome))
        failed = [step.name for step in s.steps if step.outcome == "failed"]
        if self.concluded and not missing and not failed:
            rb.escalations.resolve("every Phase 1 action confirmed and no step failed")
        if s.outcome != before:
            rb.record("outcome", f"outcome: {s.outcome}: {s.outcome_detail}")
            if before is not None:
                # The first outcome is in the channel report; a later change is news.
                rb.progress(f"Rollback of {rb.deployment}: now {s.outcome} — {s.outcome_detail}")
        rb.details()

    def post_report(self) -> None:
        """The report in the channel when the procedure ends; `rollback report` has it all."""
        status = self.rb.status.model_copy(
            update={"response_times": self.response_times(final=False)}
        )
        inp = ReportInput(ctx=self.rb.ctx("Rollback report"), status=status, policy=self.policy)
        self.rb.messenger.send("rollback report", RollbackActivities.post_report, inp)

    def response_times(self, final: bool) -> Any:
        s = self.rb.status
        return response_times(
            self.policy, s.instants, s.mode, final, s.trigger, s.decision_extended
        )

    # --- Phase 1: one durable unit per action ------------------------------------------------

    async def _action_step(self, step_id: str, specs: list[ActionSpec]) -> None:
        """Start every action of the step at once; hand over to the next step when all are
        settled or when the budget passes, whichever comes first."""
        spec = self.policy.step(step_id)
        timing = step_timing(spec)
        record = self._start_step(step_id, timing)
        tasks = [asyncio.ensure_future(self._action(a, timing, record)) for a in specs]
        self._actions += tasks
        try:
            await workflow.wait_condition(
                lambda: all(task.done() for task in tasks),
                timeout=timing.budget,
                timeout_summary=f"{spec.name}: budget {format_duration(timing.budget)}",
            )
        except TimeoutError:
            record.late = True
            metering.over_budget(record.id)
            still = [a for a in self._records(step_id) if not a.settled]
            names = ", ".join(
                f"`{a.command}`" + (f" ({a.error})" if a.error else "") for a in still
            )
            self.rb.escalate(
                f"budget:{step_id}",
                f"{spec.name} missed its budget of {format_duration(timing.budget)}; "
                f"still retrying: {names}",
            )
        self._update_step(record)

    async def _action(self, spec: ActionSpec, timing: StepTiming, step: StepRecord) -> None:
        rb = self.rb
        action = self._record(spec.id)
        action.state, action.started_at = "running", workflow.now()
        inp = ActionInput(ctx=rb.ctx(step.name), action=spec)
        within = step.started_at + timing.budget - workflow.now()
        try:
            done = await self._attempts(spec, inp, timing, max(within, timing.heartbeat), False)
        except ActivityError as error:
            action.error = describe_failure(error)
            if refused(error):
                return self._give_up(action, "refused", step)
            action.state = "retrying"
            rb.record("action_retrying", f"`{spec.command}` not confirmed yet: {action.error}")
            rb.details()
            try:
                done = await self._attempts(spec, inp, timing, timing.retry_for, True)
            except ActivityError as error_again:
                action.error = describe_failure(error_again)
                state = "refused" if refused(error_again) else "gave_up"
                return self._give_up(action, state, step)
        self._confirmed(action, spec, done, step)

    async def _attempts(
        self, spec: ActionSpec, inp: ActionInput, timing: StepTiming, within: timedelta, late: bool
    ) -> ActionDone:
        """Retries with backoff inside `within`: within the budget first, then past it."""
        return await workflow.execute_activity_method(
            ACTIVITY_OF[spec.kind],
            inp,
            start_to_close_timeout=timing.start_to_close,
            schedule_to_close_timeout=within,
            heartbeat_timeout=timing.heartbeat,
            retry_policy=RetryPolicy(
                initial_interval=timing.initial_interval,
                backoff_coefficient=2.0,
                maximum_interval=timing.maximum_interval,
                non_retryable_error_types=[REJECTED],
            ),
            summary=self.rb.view.summary(
                f"{inp.ctx.step_name}: {spec.command}"
                + (" (retrying past the budget)" if late else "")
            ),
        )

    def _confirmed(
        self, action: ActionRecord, spec: ActionSpec, done: ActionDone, step: StepRecord
    ) -> None:
        rb, s = self.rb, self.rb.status
        action.state, action.settled_at, action.detail = "confirmed", workflow.now(), done.detail
        rb.record("action", f"`{spec.command}`: {done.outcome} ({done.detail})")
        if spec.kind == "set_traffic_split":
            if s.phase is None and done.before is not None:
                s.phase = phase_for_share(self.policy, done.before.treatment)
                rb.upsert(sa.CANARY_PHASE.value_set(s.phase))
                rb.record(
                    "phase",
                    f"canary phase {s.phase}%: the split read before the stop was treatment "
                    f"{done.before.treatment}%",
                )
            s.instants["traffic_reverted"] = action.settled_at
            if "trigger" in s.instants and action.settled_at is not None:
                metering.reverted(action.settled_at - s.instants["trigger"], s.trigger or "")
            start, end = reversion_interval(s.mode)
            if start in s.instants:
                seconds = (s.instants[end] - s.instants[start]).total_seconds()
                rb.upsert(sa.TRAFFIC_REVERSION_SECONDS.value_set(seconds))
            rb.progress(
                f"🛑 Emergency stop of {rb.deployment}: `{spec.command}` done, confirmed "
                f"{done.detail.removeprefix('read back ')}"
            )
        if done.integrity is not None:
            integrity = done.integrity
            self._measure("cache_flush_integrity", lambda _: integrity)
        self._after_settled(step)

    def _phase_fallback(self) -> None:
        """The split could not be read by the stop: the label, or the strictest phase."""
        label = self.rb.state.phase_label
        fallback = label if label in self.policy.phases else None
        phase = fallback or self.policy.phases[-1]
        self.rb.status.phase = phase
        self.rb.upsert(sa.CANARY_PHASE.value_set(phase))
        source = "the trigger's phase label" if fallback else "the strictest phase"
        self.rb.record(
            "phase_fallback",
            f"split not read by the emergency stop: phase assumed from {source}, {phase}% — "
            f"the authority for what follows (customer wording) is that of {phase}%",
        )

    def _give_up(self, action: ActionRecord, state: Any, step: StepRecord) -> None:
        rb = self.rb
        action.state, action.settled_at = state, workflow.now()
        verb = "refused by the target" if state == "refused" else "given up after retrying"
        rb.record("action_failed", f"`{action.command}` {verb}: {action.error}")
        rb.escalate(
            f"action:{action.id}",
            f"{step.name}: `{action.command}` {verb} for {rb.deployment}: {action.error}",
        )
        self._after_settled(step)

    def _owe_final(self) -> None:
        """Every Phase 1 action is confirmed now, after the audiences heard it was under way:
        their own words go out (and held wording is asked for) in the background."""
        if self._final_owed and not self.rb.status.unconfirmed():
            self._final_owed = False
            self.rb.messenger.spawn(self._final_words())

    async def _final_words(self) -> None:
        rb = self.rb
        await rb.messenger.caught_up(BEHIND_MESSAGES)
        notified = await rb.messenger.call(
            "stakeholder notification (rollback confirmed)",
            RollbackActivities.stakeholder_notification,
            StakeholderNotificationInput(
                ctx=rb.ctx("Stakeholder Notification"),
                notifications=self.policy.notifications,
                incident=self.incident(),
            ),
        )
        if notified is None:
            return  # on the timeline: message_failed
        rb.record("stakeholders", f"every Phase 1 action confirmed: {notified.summary}")
        if notified.first_sent_at is not None:
            rb.status.instants.setdefault("first_notification", workflow.now())
        if notified.affected_share is not None:  # now over the whole period, to the reversion
            share, how = notified.affected_share, notified.affected_how
            self._measure("affected_share", lambda target: _affected(share, target.threshold, how))
        rb.details()
        for held in notified.audiences:
            if held.held_for_approval:
                self._hold_for_approval(held)

    def _after_settled(self, step: StepRecord) -> None:
        self._owe_final()
        self._update_step(step)
        if self.concluded:
            self.conclude()  # a late straggler may make the rollback complete after all
        else:
            self.rb.details()

    def _update_step(self, record: StepRecord) -> None:
        actions = self._records(record.id)
        if actions and all(a.settled for a in actions):
            record.ended_at = max(a.settled_at for a in actions if a.settled_at)
            record.outcome = "ok" if all(a.confirmed for a in actions) else "failed"
        record.summary = "; ".join(
            f"`{a.command}`: {a.state.replace('_', ' ')}"
            + (f" ({a.detail})" if a.confirmed and a.detail else "")
            + (f" ({a.error})" if not a.confirmed and a.error else "")
            for a in actions
        )

    def _records(self, step_id: str) -> list[ActionRecord]:
        return [a for a in self.rb.status.actions if a.step == step_id]

    def _record(self, action_id: str) -> ActionRecord:
        return next(a for a in self.rb.status.actions if a.id == action_id)

    # --- Steps 3-7: one activity each -------------------------------------------------------

    def _start_step(self, step_id: str, timing: StepTiming) -> StepRecord:
        spec = self.policy.step(step_id)
        record = StepRecord(
            id=spec.id,
            name=spec.name,
            started_at=workflow.now(),
            budget_seconds=timing.budget.total_seconds(),
        )
        self.rb.status.steps.append(record)
        self.rb.details()
        return record

    async def _step(
        self,
        step_id: str,
        method: Callable[[Any, Any], Awaitable[R]],
        inp: Any,
        *,
        posts: bool = False,
    ) -> R | None:
        """Run one step's activity; past its budget it escalates (and keeps going up to the
        step's `retry_for`); a failure or an unhealthy result escalates loudly. `posts`: the
        step posts to the channels, so it waits (a little) for the progress messages made
        before it, which then land first."""
        rb = self.rb
        if posts and rb.v20:
            await rb.messenger.caught_up(BEHIND_MESSAGES)
        spec = self.policy.step(step_id)
        timing = step_timing(spec)
        record = self._start_step(step_id, timing)
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
            summary=rb.view.summary(f"{spec.name}{commands}"),
        )
        try:
            await workflow.wait_condition(
                handle.done,
                timeout=timing.budget,
                timeout_summary=f"{spec.name}: budget {format_duration(timing.budget)}",
            )
        except TimeoutError:
            record.late = True
            metering.over_budget(record.id)
            still = " still retrying" if timing.schedule_to_close > timing.budget else ""
            rb.escalate(
                f"budget:{step_id}",
                f"{spec.name} missed its budget of {format_duration(timing.budget)};{still}",
            )
        try:
            result = await handle
        except ActivityError as error:
            record.ended_at, record.outcome = workflow.now(), "failed"
            record.summary = describe_failure(error)
            rb.escalate(f"failed:{step_id}", f"{spec.name} failed: {record.summary}")
            rb.details()
            return None
        record.ended_at = workflow.now()
        record.summary = getattr(result, "summary", "")
        record.outcome = "ok" if getattr(result, "healthy", True) else "failed"
        late = " (late)" if record.late else ""
        rb.record("step", f"{spec.name}: {record.outcome}{late} - {record.summary}")
        rb.details()
        if record.outcome == "failed":
            rb.escalate(f"failed:{step_id}", f"{spec.name} failed: {record.summary}")
            return None
        return result

    # --- material for the steps --------------------------------------------------------------

    def incident(self, timeline: bool = False) -> IncidentSummary:
        """What the steps write from; the timeline only for the root cause analysis (inputs
        carry what each activity needs, so a storm's record is not copied into every step)."""
        s = self.rb.status
        trigger = s.trigger or ""
        return IncidentSummary(
            deployment=s.deployment,
            trigger=trigger,
            trigger_name=self.policy.triggers[trigger].name if trigger else "",
            phase=s.phase,
            reason=s.reason,
            decided_by=s.decided_by,
            drill=s.drill,
            started_at=s.instants.get("trigger"),
            instants=dict(s.instants),
            timeline=list(s.timeline) if timeline else [],
            response_times=self.response_times(final=False),
            decided_by_names=[
                self.policy.people[p].name if p in self.policy.people else "the system"
                for p in s.decided_by
            ],
            unconfirmed=[a.name for a in s.unconfirmed()] if self.rb.v20 else None,
            confirmed=[a.name for a in s.actions if a.confirmed],
            failed=[a.name for a in s.actions if a.state in ("refused", "gave_up")],
            user_effect=self.policy.triggers[trigger].user_effect if trigger else "",
            evidence=dict(s.evidence),
            figures_before=dict(s.figures_before),
            steps=list(s.steps),
        )

    def _measure(
        self, measure: str, judge: Callable[[RecoveryTarget], RecoveryMeasure | None]
    ) -> None:
        """Recovery targets the policy says the rollback measures itself."""
        for target in self.policy.recovery_targets:
            if target.measure == measure and (value := judge(target)) is not None:
                self.rb.status.recovery[target.id] = value
                self.rb.record(
                    "recovery_measure", f"{target.name}: {value.result}: {value.evidence}"
                )

    def _hold_for_approval(self, held: AudienceResult) -> None:
        """The wording waits for its approvers in the background; Phase 3 goes on."""
        rb, s = self.rb, self.rb.status
        phase = s.phase if s.phase is not None else max(self.policy.phases)
        pending = self.comms.open(held, phase, workflow.now())
        ctx = rb.ctx("Communication approval")
        request = CommsApprovalRequestInput(
            ctx=ctx,
            audience=pending.audience,
            audience_name=pending.name,
            channel=pending.channel,
            wording=pending.wording,
            approvers=role_holders(self.policy, sorted({r for x in pending.approvers for r in x})),
            approver_text=describe_role_sets(self.policy, pending.approvers),
            deadline=pending.deadline,
            default=pending.default,
        )
        rb.messenger.send("approval request", RollbackActivities.request_comms_approval, request)
        self.comms.wait_for(pending, ctx)


def _affected(share: float, threshold: float | None, how: str = "") -> RecoveryMeasure | None:
    """User impact: the share of queries affected over the rollback period, under the target's
    threshold; with how it was measured (its inputs) when the step said."""
    if threshold is None:
        return None
    ok = share < threshold
    inputs = f" ({how})" if how else ""
    return RecoveryMeasure(
        result="pass" if ok else "fail",
        evidence=f"{share:.3%} of queries affected, {'<' if ok else '>='} {threshold:.2%}{inputs}",
    )
