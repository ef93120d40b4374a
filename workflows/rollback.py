"""RollbackWorkflow: one per deployment incident, from the first trigger to the rollback's end.

Every trigger joins `rollback-<deployment>`, so an alert storm collapses into one workflow that
counts repeats and acts once. The parts read alone: trigger intake (`workflows/intake.py`), the
decision (`workflows/deciding.py`, with the window's rules in `decision_window.py` and its
message in `decision_message.py`), the procedure (`workflows/procedure.py`), the stability watch
after the rollback (`workflows/stability_watch.py`), what the Web UI shows
(`workflows/rollback_view.py`), background messages (`workflows/messenger.py`) and the
hand-over to the next run (`workflows/handover.py`). This module holds the handlers and `run()`.

No handler waits on the run's end: a trigger that comes while the run ends is the next run's,
and whoever raised it is answered at once; the run then continues as new without waiting for
its last messages (they go along, unsent). Everything the run knows is one `RollbackRun`,
carried whole.
"""

from __future__ import annotations

import asyncio
from types import MappingProxyType

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from contract.rollback import (
        COMMS_SIGNAL,
        COMMS_UPDATE,
        DECIDE_UPDATE,
        DECISION_SIGNAL,
        ESCALATION_ACK_SIGNAL,
        ESCALATION_ACK_UPDATE,
        RAISE_UPDATE,
        RUN_STATE_QUERY,
        STATUS_QUERY,
        TRIGGER_SIGNAL,
        CommsApprovalInput,
        DecisionInput,
        DecisionReply,
        EscalationAck,
        RollbackInput,
        RollbackRun,
        Stage,
        TriggerBatch,
        TriggerEvent,
        TriggerReply,
        deployment_problem,
    )
    from runbook.identity import Refused, stamp
    from runbook.status import RollbackStatus
    from runbook.timing import intervals
    from workflows import search_attributes as sa
    from workflows.comms import CommsApprovals
    from workflows.deciding import Deciding
    from workflows.handover import quiesce, settle
    from workflows.intake import Intake
    from workflows.live_split import LiveSplit
    from workflows.once import once
    from workflows.procedure import Procedure
    from workflows.proving import prove, record
    from workflows.rollback_record import RollbackRecord, fresh_status
    from workflows.stability_watch import StabilityWatch

FINAL = ("rolled_back", "incomplete", "continued", "rejected", "failed")
RUNS_KEPT = 50
HANDED_OVER = MappingProxyType(
    {
        "start": "a new run: trigger(s) came as the previous run ended",
        "verdict": "continued from the previous run (its history grew long): deciding",
        "after_rollback": "continued from the previous run (its history grew long): "
        "stability watch",
    }
)


@workflow.defn
class RollbackWorkflow:
    @workflow.init
    def __init__(self, inp: RollbackInput) -> None:
        self.rb = rb = RollbackRecord(inp)
        s = rb.status
        self.split = LiveSplit(rb)
        self.intake = Intake(rb, self.split, deployment_problem(inp.deployment))
        self.comms = CommsApprovals(
            inp.policy,
            rb.record,
            rb.person_name,
            lambda: s.state,
            rb.messenger,
            s.comms,
            rb.state.replies,
            rb.escalate,
            self._prove_comms,
        )
        self.procedure = Procedure(rb, self.comms)
        self.deciding = Deciding(rb, self.intake, self.procedure.deadlines)
        self.watch = StabilityWatch(rb, self.intake, self.split, lambda: self.procedure.settled)
        self._handover: Stage | None = None
        """Where the next run resumes, once this one has decided to hand over."""

    # --- entry points ------------------------------------------------------------------

    @workflow.run
    async def run(self, inp: RollbackInput) -> RollbackStatus:
        rb, state = self.rb, self.rb.state
        if self.intake.invalid is not None:
            # No door may start a rollback that would act on a path it does not name.
            rb.status.outcome = f"no rollback: {self.intake.invalid}"
            rb.record("trigger_rejected", self.intake.invalid)
            rb.status.state = "rejected"
            await workflow.wait_condition(workflow.all_handlers_finished)
            return self.status()
        shown = asyncio.ensure_future(rb.show())
        state.runs = [*state.runs, workflow.info().run_id][-RUNS_KEPT:]
        rb.messenger.resume()
        if inp.carried is None or state.stage == "start":
            rb.upsert(
                sa.DEPLOYMENT.value_set(inp.deployment), sa.DRILL.value_set(inp.options.drill)
            )
        if inp.carried is not None:
            rb.record("handover", HANDED_OVER[state.stage])
            rb.escalations.resume()
            self.comms.resume(rb.ctx("Communication approval"))
            self.deciding.resume()

        if state.stage == "after_rollback":
            await self._after_rollback()
        else:
            nxt = await self.deciding.verdict()
            if nxt == "rollback":
                self.split.forget()
                await self.procedure.run()
                if inp.options.drill:
                    # A rehearsal pages nobody for a week: no stability watch, no follow-ups.
                    rb.record("drill", "drill over: no stability watch and no follow-ups")
                else:
                    await self._after_rollback()
            elif nxt == "handover":
                self._handover = "verdict"
            elif nxt == "continue":
                rb.status.outcome = "canary continued"
                self.procedure.post_report()
                rb.set_state("continued")
            elif nxt == "rejected":
                rb.status.outcome = "no rollback: no trigger was accepted"
                rb.set_state("rejected")
        status = await self._end()
        shown.cancel()
        rb.flush()
        return status

    @workflow.signal(
        name=TRIGGER_SIGNAL,
        description=(
            "Alerts and watch raises for this deployment (one or a batch): the first starts the "
            "rollback, repeats are counted"
        ),
    )
    def on_trigger(self, event: TriggerEvent | TriggerBatch) -> None:
        for one in event.events if isinstance(event, TriggerBatch) else [event]:
            self.intake.arrive(one)

    @workflow.update(
        name=RAISE_UPDATE,
        description=(
            "A trigger raised by a person (CLI, Slack /rollback): answered with the rollback's "
            "verdict"
        ),
    )
    async def raise_trigger(self, event: TriggerEvent) -> TriggerReply:
        """Answered once the rollback has judged it; at once when the run is ending (the next
        run judges it, and answers the same trigger sent again)."""
        return await self.intake.raised(event)

    @workflow.update(
        name=DECIDE_UPDATE,
        description=(
            "Approve, deny or investigate the open decision window; authority and deadline "
            "checked, every attempt recorded"
        ),
    )
    def decide(self, inp: DecisionInput) -> DecisionReply:
        """Every attempt is recorded; one without authority, or made after the deadline, is
        refused and changes nothing."""
        return self.deciding.decide(inp)

    @workflow.signal(
        name=DECISION_SIGNAL,
        description=(
            "A decision stored while no worker answered; judged by when it was made, against the "
            "deadline"
        ),
    )
    def on_decision(self, inp: DecisionInput) -> None:
        self.deciding.stored(inp)

    @workflow.update(
        name=COMMS_UPDATE,
        description=(
            "Approve or hold the customer-communications wording (the phase's business-impact "
            "authority)"
        ),
    )
    def approve_comms(self, inp: CommsApprovalInput) -> DecisionReply:
        """Approve or hold a held audience's wording; authority checked like a decision."""
        reply = self.comms.vote(inp)
        self.rb.details()
        return reply

    @workflow.signal(
        name=COMMS_SIGNAL,
        description=(
            "A wording approval stored while no worker answered; judged by when it was made"
        ),
    )
    def on_comms_approval(self, inp: CommsApprovalInput) -> None:
        self.comms.vote(inp, arrived_now=False)
        self.rb.details()

    @workflow.update(
        name=ESCALATION_ACK_UPDATE,
        description=(
            "Acknowledge an escalation (Slack, CLI, PagerDuty): it stops climbing the escalation "
            "path"
        ),
    )
    def acknowledge_escalation(self, ack: EscalationAck) -> DecisionReply:
        """Someone has it in hand: the escalation stops climbing (a person must hold a role
        of the escalation path; PagerDuty's word, verified by the gateway, is taken)."""
        return once(self.rb.state.replies, ack.request_id, lambda: self._acknowledge(ack))

    @workflow.signal(
        name=ESCALATION_ACK_SIGNAL,
        description="An escalation acknowledgement stored while no worker answered",
    )
    def on_escalation_ack(self, ack: EscalationAck) -> None:
        once(self.rb.state.replies, ack.request_id, lambda: self._acknowledge(ack, False))

    def _acknowledge(self, ack: EscalationAck, arrived_now: bool = True) -> DecisionReply:
        rb = self.rb
        if ack.person is not None:  # PagerDuty's word comes through the gateway, verified there
            made = min(ack.made_at or workflow.now(), workflow.now())
            verdict = prove(
                rb,
                "ack_escalation",
                ack.person,
                ack.proof,
                {
                    "window": ack.key or "all",
                    "choice": "ack",
                    "made_at": stamp(ack.made_at or made),
                    "request_id": ack.request_id or "",
                    "via": ack.via,
                },
                arrived_now=arrived_now,
            )
            record(rb, "ack_escalation", ack.person, verdict, choice=ack.key or "all", at=made)
            if isinstance(verdict, Refused):
                rb.record("escalation_ack_refused", verdict.reason, by=ack.person)
                return DecisionReply(accepted=False, message=verdict.reason, state=rb.status.state)
        problem = rb.escalations.problem(ack)
        if problem is not None:
            rb.record("escalation_ack_refused", problem, by=ack.person or ack.who or ack.via)
            return DecisionReply(accepted=False, message=problem, state=rb.status.state)
        message = rb.escalations.acknowledge(ack)
        return DecisionReply(accepted=True, message=message, state=rb.status.state)

    @workflow.query(
        name=STATUS_QUERY,
        description=(
            "The rollback: state, decision window, steps and actions, response times, escalations,"
            " timeline"
        ),
    )
    def status(self) -> RollbackStatus:
        s = self.rb.status
        return s.model_copy(
            update={
                "response_times": self.procedure.response_times(final=s.state in FINAL),
                "intervals": intervals(s.instants),
            }
        )

    @workflow.query(
        name=RUN_STATE_QUERY,
        description=(
            "Everything this run knows, as it would hand it to its next run (continue-as-new)"
        ),
    )
    def run_state(self) -> RollbackRun:
        return self._carried(self.rb.state.stage)

    def _prove_comms(self, inp: CommsApprovalInput, arrived_now: bool) -> Refused | None:
        """Who approved or held the wording, proven (None: it counts)."""
        rb = self.rb
        made = min(inp.made_at or workflow.now(), workflow.now())
        verdict = prove(
            rb,
            "comms",
            inp.person,
            inp.proof,
            {
                "window": inp.audience,
                "choice": inp.action,
                "reason": inp.reason,
                "made_at": stamp(inp.made_at or made),
                "request_id": inp.request_id or "",
                "via": inp.via,
            },
            arrived_now=arrived_now,
        )
        record(rb, "comms", inp.person, verdict, choice=inp.action, reason=inp.reason, at=made)
        return verdict if isinstance(verdict, Refused) else None

    # --- the end -------------------------------------------------------------------------

    async def _after_rollback(self) -> None:
        ended = await self.watch.run()
        if ended == "handover":
            self._handover = "after_rollback"

    def _carried(self, stage: Stage) -> RollbackRun:
        """What the next run starts from: this run's state whole, resuming at `stage`; a new
        incident (`start`) keeps only what must outlive it (repeats, verdicts and replies, the
        messages not sent yet, the triggers not judged yet)."""
        state = self.rb.snapshot()
        state.verdicts = {k: v for k, v in state.verdicts.items() if not v.next_run}
        if stage != "start":
            return state.model_copy(update={"stage": stage})
        return RollbackRun(
            status=fresh_status(self.rb.inp),
            deliveries=state.deliveries,
            verdicts=state.verdicts,
            replies=state.replies,
            outbox=state.outbox,
            inbox=state.inbox,
        )

    async def _end(self) -> RollbackStatus:
        """Every action settled, every background task and handler done; a trigger that comes
        in meanwhile is handed to a new run at once rather than dropped or kept waiting."""
        rb, s, state = self.rb, self.rb.status, self.rb.state
        if self._handover is None:
            await workflow.wait_condition(lambda: self.procedure.settled or bool(state.inbox))
            self.procedure.check()
            if s.state not in FINAL:
                rb.set_state("rolled_back" if s.outcome == "rolled back" else "incomplete")
        self.deciding.ending = True  # the clocks still waiting stop: nothing they wait for comes
        await rb.escalations.close(resolve=self._handover is None)
        self.intake.hand_over()  # a trigger from now on is the next run's, answered at once
        if self._handover is None and not await settle(
            rb.messenger, unless=lambda: bool(state.inbox)
        ):
            return self.status()
        if self._handover is not None:
            await quiesce(rb.messenger)
        else:
            await workflow.wait_condition(workflow.all_handlers_finished)
        stage: Stage = self._handover or "start"
        if stage == "start":
            rb.record("handover", f"{len(state.inbox)} trigger(s) arrived at the end: a new run")
        else:
            rb.record("handover", f"history long: continuing as new ({stage})")
        rb.flush()
        workflow.continue_as_new(
            RollbackInput(
                deployment=rb.deployment,
                policy=rb.policy,
                options=rb.inp.options,
                carried=self._carried(stage),
            )
        )
