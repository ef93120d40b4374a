"""The rollback report: what triggered it, who decided and when, each step against its budget,
every response time against the plan's target, recovery, escalations, the root-cause material
and the timeline. Built from the rollback's status, its follow-ups' status and the timeline
its history records; rendered as Markdown (`to_markdown`) or JSON (`model_dump(mode="json")`).

Pure: the caller fetches what it is built from (`cli/report_cmd.py`, `activities/report.py`).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Literal

from pydantic import BaseModel, ValidationError

from runbook.durations import format_duration, spoken
from runbook.history_timeline import HistoryEntry, HistoryTimeline, person_label
from runbook.identity import Proof, Verified, claimed, verify
from runbook.matrix import describe_role_sets, resolve
from runbook.policy import STEP_IDS, Policy, RoleSets
from runbook.status import (
    EscalationRecord,
    FollowUpsStatus,
    OpenDecision,
    PendingComms,
    PersonAct,
    RollbackStatus,
    RootCauseMaterial,
    StepRecord,
)
from runbook.timing import response_times, reversion_interval

REPORT_VERSION = 1
Result = Literal["pass", "fail", "pending", "n/a"]
ProcedureOver = ("following_up", "rolled_back", "incomplete", "continued", "rejected", "failed")
"""States in which every instant a response target measures has happened, or never will."""
SAME_INSTANT = timedelta(milliseconds=1)
"""History timestamps and the workflow's clock differ by rounding only."""


class TriggerReport(BaseModel):
    id: str | None
    name: str | None
    kind: Literal["automated", "manual"] | None
    condition: str | None
    phase: int | None
    """The canary phase the live split mapped to, in percent."""
    at: datetime | None
    source: str | None
    raised_by: str | None
    raised_by_name: str | None
    reason: str | None
    evidence: dict[str, str]
    links: list[str]
    received: int
    """Trigger events the rollback received, alerts of a storm included."""
    others: list[str]
    """Other triggers received (ids), in the order they first arrived."""


class DecisionReport(BaseModel):
    mode: Literal["auto", "manual"] | None
    verdict: Literal["rollback", "continue"] | None
    decided_by: list[str]
    """Roster ids; "system" for an automatic rollback, "default" when the window expired."""
    decided_by_names: list[str]
    decided_at: datetime | None
    seconds_after_trigger: float | None
    default_applied: bool
    window_seconds: float | None
    """The window the plan gives this trigger at this phase; None where nobody decides."""
    window_opened_at: datetime | None
    deadline: datetime | None
    """The window's last deadline (after any investigation extension)."""
    default_action: Literal["rollback", "continue"] | None
    approvers: str | None
    within_window: bool | None
    extended: bool
    rejected_attempts: int
    votes: dict[str, str]


class StepReport(BaseModel):
    id: str
    name: str
    started_at: datetime
    ended_at: datetime | None
    duration_seconds: float | None
    budget_seconds: float
    within_budget: bool | None
    outcome: Literal["running", "ok", "failed"]
    late: bool
    summary: str


class ResponseTimeReport(BaseModel):
    id: str
    name: str
    start: str | None
    end: str | None
    seconds: float | None
    target_seconds: float
    result: Result
    basis: Literal["plan", "trigger"] = "plan"
    """`trigger`: the trigger's own response target (Trigger 1: 30 s); `plan`: a generic one."""
    plan_target_seconds: float | None = None
    """The plan's own target when another applied (an investigation extension), and why."""
    why: str = ""


class ActionReport(BaseModel):
    """One Phase 1 action: confirmed, or why not."""

    id: str
    step: str
    name: str
    command: str
    state: str
    settled_at: datetime | None
    detail: str
    error: str


class RecoveryTargetReport(BaseModel):
    id: str
    name: str
    description: str
    result: Literal["pass", "fail", "pending", "not_measured"]
    evidence: str


class FollowUpReport(BaseModel):
    id: str
    name: str
    owner: str
    check: str
    due_at: datetime
    state: str
    done_by: str | None
    done_at: datetime | None
    detail: str


class RecoveryReport(BaseModel):
    targets: list[RecoveryTargetReport]
    escalations: int
    follow_ups_id: str | None
    follow_ups: list[FollowUpReport]
    incidents_after_rollback: int | None
    """Triggers for the deployment after the rollback, as the follow-ups recorded them."""


class EscalationReport(BaseModel):
    at: datetime
    reason: str
    source: Literal["rollback", "follow_ups"]
    told: list[str] = []
    """Roles told, in the order the climb reached them."""
    paged: list[str] = []
    acknowledged: str | None = None
    """ "Sam (pagerduty) after 3m12s", when someone acknowledged."""


class RootCauseReport(BaseModel):
    source: Literal["status", "history"]
    material: RootCauseMaterial
    recovery_plan: str | None
    """Step 7's plan (Markdown), when its result is in the history."""


class SignatureCheck(BaseModel):
    """One signed act from the history, verified again offline (runbook/identity.py): by whom
    and what it signed, and whether the signature holds against the policy the rollback ran
    under."""

    at: datetime
    event: str
    person: str
    act: str
    choice: str
    holds: bool
    detail: str
    """The key's fingerprint (or the Slack user and workspace), or why it does not hold."""


class CommsReport(BaseModel):
    audience: str
    name: str
    channel: str
    outcome: str
    decided_by: list[str]
    sent: bool


class TimelineLine(BaseModel):
    at: datetime
    kind: str
    message: str
    by: str | None = None
    step: str | None = None


class RollbackReport(BaseModel):
    report_version: int = REPORT_VERSION
    deployment: str
    workflow_id: str
    run_id: str | None
    drill: bool
    policy: str | None
    state: str
    outcome: str | None
    outcome_detail: str = ""
    """What the outcome rests on: the unconfirmed actions and why, or when the last one was."""
    closed: str | None
    """How the workflow run ended (completed, terminated, …); None while it runs."""
    generated_at: datetime
    trigger: TriggerReport
    decision: DecisionReport
    steps: list[StepReport]
    actions: list[ActionReport] = []
    response_times: list[ResponseTimeReport]
    reversion_measured_from: Literal["trigger", "decision"] | None = None
    """What `TrafficReversionSeconds` measures: from the trigger (automated rollback) or the
    decision (manual: the plan's "decision to traffic reversion")."""
    intervals: dict[str, float]
    recovery: RecoveryReport
    escalations: list[EscalationReport]
    root_cause: RootCauseReport | None
    comms: list[CommsReport]
    timeline_source: Literal["history", "status"]
    timeline: list[TimelineLine]
    notes: list[str]
    acts: list[PersonAct] = []
    """People's acts, each with how the rollback knew who made it (as it judged them)."""
    signatures: list[SignatureCheck] = []
    """Every signature in the history, verified again offline against the recorded policy."""

    def to_markdown(self) -> str:
        return _markdown(self)


def build_report(
    status: RollbackStatus,
    *,
    generated_at: datetime,
    policy: Policy | None = None,
    follow_ups: FollowUpsStatus | None = None,
    history: HistoryTimeline | None = None,
    notes: list[str] | None = None,
) -> RollbackReport:
    """`policy`: the one the rollback ran under (its input); without it names fall back to ids
    and the response times are the status' own."""
    incidents = {}
    for incident in status.escalations:  # an incident holds every reason that joined it
        incidents.update({r.text: incident for r in incident.reasons})
        incidents[incident.reason] = incident
    escalations = [
        _escalation(e.at, e.message, incidents.get(e.message), policy)
        for e in status.timeline
        if e.kind == "escalation"
    ]
    if follow_ups is not None:
        escalations += [
            EscalationReport(at=e.at, reason=e.message, source="follow_ups")
            for e in follow_ups.timeline
            if e.kind == "escalation"
        ]
    escalations.sort(key=lambda e: e.at)
    return RollbackReport(
        deployment=status.deployment,
        workflow_id=history.workflow_id if history else f"rollback-{status.deployment}",
        run_id=history.run_id if history else None,
        drill=status.drill or (history.drill if history else False),
        policy=policy.name if policy else None,
        state=status.state,
        outcome=status.outcome,
        outcome_detail=status.outcome_detail,
        closed=history.close_status if history else None,
        generated_at=generated_at,
        trigger=_trigger(status, policy, history),
        decision=_decision(status, policy),
        steps=[_step(s) for s in status.steps],
        actions=[
            ActionReport(
                id=a.id,
                step=a.step,
                name=a.name,
                command=a.command,
                state=a.state,
                settled_at=a.settled_at,
                detail=a.detail,
                error=a.error,
            )
            for a in status.actions
        ],
        response_times=_response_times(status, policy),
        reversion_measured_from=reversion_interval(status.mode)[0] if status.mode else None,
        intervals=dict(status.intervals),
        recovery=_recovery(status, policy, follow_ups, len(escalations)),
        escalations=escalations,
        root_cause=_root_cause(status, history),
        comms=[_comms(c) for c in status.comms],
        timeline_source="history" if history else "status",
        timeline=_timeline(status, history),
        notes=list(notes or []),
        acts=list(status.acts),
        signatures=signature_checks(history, policy),
    )


def signature_checks(
    history: HistoryTimeline | None, policy: Policy | None
) -> list[SignatureCheck]:
    """Every signal and update in the history that carries a proof, its signature and signer
    checked again against `policy` (the recorded one): what an incident reviewer can trust
    without trusting the engine's word, or its status."""
    if history is None or policy is None:
        return []
    checks = []
    for entry in history.entries:
        raw = entry.payload.get("proof") if entry.kind in ("signal", "update") else None
        if not isinstance(raw, dict):
            continue
        try:
            proof = Proof.model_validate(raw)
        except ValueError:
            continue
        statement = claimed(proof)
        if statement is None:
            checks.append(
                SignatureCheck(
                    at=entry.at,
                    event=f"{entry.kind} {entry.name}",
                    person=str(entry.person or "?"),
                    act=entry.name,
                    choice="",
                    holds=False,
                    detail="the signed statement is not one of ours",
                )
            )
            continue
        person = policy.people.get(statement.person)
        verdict = verify(
            statement,
            proof,
            person_keys=list(person.signing_keys) if person else [],
            person_slack=person.slack_user_id if person else "",
            gateway_keys=list(policy.identity.gateway_keys) if policy.identity else [],
            signed=True,
        )
        checks.append(
            SignatureCheck(
                at=entry.at,
                event=f"{entry.kind} {entry.name}",
                person=statement.person,
                act=statement.act,
                choice=statement.choice,
                holds=isinstance(verdict, Verified),
                detail=verdict.detail if isinstance(verdict, Verified) else verdict.reason,
            )
        )
    return checks


# --- sections ------------------------------------------------------------------------------


def _trigger(
    status: RollbackStatus, policy: Policy | None, history: HistoryTimeline | None
) -> TriggerReport:
    spec = policy.triggers.get(status.trigger) if policy and status.trigger else None
    at = status.instants.get("trigger")
    signals = (
        [e for e in history.entries if e.kind == "signal" and e.name == "trigger"]
        if (history)
        else []
    )
    adopted = _adopted(signals, status.trigger, at)
    payload = adopted.payload if adopted else {}
    if history:
        received = len(signals)
        seen = [e.trigger for e in signals if e.trigger]
    else:
        received = sum(1 for e in status.timeline if e.kind in ("trigger", "trigger_rejected"))
        seen = [status.trigger] if status.trigger else []
    return TriggerReport(
        id=status.trigger,
        name=spec.name if spec else status.trigger,
        kind=spec.kind if spec else None,
        condition=spec.condition if spec else None,
        phase=status.phase,
        at=at,
        source=payload.get("source"),
        raised_by=payload.get("raised_by"),
        raised_by_name=person_label(policy, payload["raised_by"])
        if payload.get("raised_by")
        else None,
        reason=payload.get("reason") or None,
        evidence={str(k): str(v) for k, v in (payload.get("evidence") or {}).items()},
        links=[str(link) for link in payload.get("links") or []],
        received=received,
        others=[t for t in dict.fromkeys(seen) if t != status.trigger],
    )


def _adopted(
    signals: list[HistoryEntry], trigger: str | None, at: datetime | None
) -> HistoryEntry | None:
    """The trigger event the rollback adopted: the signal its trigger instant was taken from."""
    same = [e for e in signals if e.trigger == trigger and e.payload.get("status") != "resolved"]
    if at is not None:
        for entry in same:
            clock = entry.workflow_time or entry.at
            if abs(clock - at) <= SAME_INSTANT:
                return entry
    return same[0] if same else None


def _decision(status: RollbackStatus, policy: Policy | None) -> DecisionReport:
    window: OpenDecision | None = status.decision or status.last_decision
    decided_at = status.instants.get("decision")
    trigger_at = status.instants.get("trigger")
    default_applied = status.decided_by == ["default"]
    planned = _planned_window(status, policy)
    opened_at = window.opened_at if window else _first_at(status, "window_opened")
    deadline: datetime | None = None
    approvers: RoleSets = []
    default_action: Literal["rollback", "continue"] | None = None
    if window is not None:
        deadline, approvers, default_action = (
            window.deadline,
            window.approvers,
            window.default_action,
        )
    elif opened_at and planned and policy and status.trigger and status.phase is not None:
        res = resolve(policy, status.trigger, status.phase)
        deadline, approvers, default_action = opened_at + planned, res.approvers, res.default_action
    if default_applied and decided_at is not None:
        deadline = decided_at  # the workflow takes the decision instant from the window's end
    if planned is not None:
        window_seconds: float | None = planned.total_seconds()
    elif window is not None:
        window_seconds = (window.deadline - window.opened_at).total_seconds()
    else:
        window_seconds = None
    verdict: Literal["rollback", "continue"] | None = None
    if status.steps:
        verdict = "rollback"
    elif status.state == "continued":
        verdict = "continue"
    return DecisionReport(
        mode=status.mode,
        verdict=verdict,
        decided_by=list(status.decided_by),
        decided_by_names=[
            p if p in ("system", "default") else person_label(policy, p) for p in status.decided_by
        ],
        decided_at=decided_at,
        seconds_after_trigger=(
            (decided_at - trigger_at).total_seconds() if decided_at and trigger_at else None
        ),
        default_applied=default_applied,
        window_seconds=window_seconds if opened_at else None,
        window_opened_at=opened_at,
        deadline=deadline if opened_at else None,
        default_action=default_action,
        approvers=_approvers(policy, approvers),
        within_window=decided_at <= deadline if decided_at and deadline else None,
        extended=bool(window and planned and window.deadline > window.opened_at + planned),
        rejected_attempts=sum(1 for e in status.timeline if e.kind == "decision_rejected"),
        votes=dict(window.votes) if window else {},
    )


def _approvers(policy: Policy | None, approvers: RoleSets) -> str | None:
    if not approvers:
        return None
    if policy is not None:
        return describe_role_sets(policy, approvers)
    return " or ".join(" + ".join(s) for s in approvers)


def _planned_window(status: RollbackStatus, policy: Policy | None) -> timedelta | None:
    if policy is None or status.trigger not in policy.triggers or status.phase is None:
        return None
    if status.phase not in policy.decision_matrix.get(status.trigger, {}):
        return None
    res = resolve(policy, status.trigger, status.phase)
    return res.window if res.opens_window else None


def _first_at(status: RollbackStatus, kind: str) -> datetime | None:
    return next((e.at for e in status.timeline if e.kind == kind), None)


def _step(step: StepRecord) -> StepReport:
    took = (step.ended_at - step.started_at).total_seconds() if step.ended_at else None
    return StepReport(
        id=step.id,
        name=step.name,
        started_at=step.started_at,
        ended_at=step.ended_at,
        duration_seconds=took,
        budget_seconds=step.budget_seconds,
        within_budget=None if took is None else took <= step.budget_seconds,
        outcome=step.outcome,
        late=step.late,
        summary=step.summary,
    )


def _procedure_over(status: RollbackStatus) -> bool:
    """Every instant a target measures has happened, or never will: the rollback is past its
    procedure, or its last step has ended (the report posted at the end of Step 7)."""
    if status.state in ProcedureOver:
        return True
    last = status.steps[-1] if status.steps else None
    return last is not None and last.id == STEP_IDS[-1] and last.ended_at is not None


def _response_times(status: RollbackStatus, policy: Policy | None) -> list[ResponseTimeReport]:
    over = _procedure_over(status)
    measured = (
        response_times(
            policy,
            status.instants,
            status.mode,
            final=over,
            trigger=status.trigger,
            extended=status.decision_extended,
        )
        if policy is not None
        else status.response_times
    )
    reports = []
    for rt in measured:
        if rt.met is None:
            result: Result = "pending"
        elif rt.seconds is None and not status.steps:
            result = "n/a"  # no rollback happened: the canary continued
        else:
            result = "pass" if rt.met else "fail"
        reports.append(
            ResponseTimeReport(
                id=rt.id,
                name=rt.name,
                start=rt.start or None,
                end=rt.end or None,
                seconds=rt.seconds,
                target_seconds=rt.target_seconds,
                result=result,
                basis=rt.basis,
                plan_target_seconds=rt.plan_target_seconds,
                why=rt.why,
            )
        )
    return reports


def _recovery(
    status: RollbackStatus,
    policy: Policy | None,
    follow_ups: FollowUpsStatus | None,
    escalations: int,
) -> RecoveryReport:
    items = {i.id: i for i in follow_ups.items} if follow_ups else {}
    targets = []
    for target in policy.recovery_targets if policy else []:
        result: Literal["pass", "fail", "pending", "not_measured"] = "not_measured"
        evidence = "not measured by the engine"
        measured = status.recovery.get(target.id)
        if measured is not None:
            result, evidence = measured.result, measured.evidence
        # A target held over a period is evidenced by the measured follow-up due at its end.
        spec = next(
            (
                f
                for f in policy.follow_ups  # type: ignore[union-attr]
                if target.over is not None
                and f.after == target.over
                and f.check in ("baseline", "no_new_incident")
            ),
            None,
        )
        if spec is not None:
            item = items.get(spec.id)
            if item is None:
                result = "not_measured"
                evidence = (
                    "drill: no follow-ups are scheduled"
                    if status.drill
                    else f"{spec.name}: no follow-ups status"
                )
            elif item.state == "done":
                result, evidence = "pass", f"{item.name}: {item.detail or 'done'}"
            elif item.state == "missed":
                result, evidence = "fail", f"{item.name}: {item.detail or 'missed'}"
            else:
                result = "pending"
                evidence = f"{item.name}: {item.state}, due {item.due_at:%Y-%m-%d %H:%M} UTC"
        targets.append(
            RecoveryTargetReport(
                id=target.id,
                name=target.name,
                description=target.description,
                result=result,
                evidence=evidence,
            )
        )
    return RecoveryReport(
        targets=targets,
        escalations=escalations,
        follow_ups_id=status.follow_ups_id,
        follow_ups=[
            FollowUpReport(
                id=i.id,
                name=i.name,
                owner=i.owner,
                check=i.check,
                due_at=i.due_at,
                state=i.state,
                done_by=i.done_by,
                done_at=i.done_at,
                detail=i.detail,
            )
            for i in (follow_ups.items if follow_ups else [])
        ],
        incidents_after_rollback=len(follow_ups.incidents) if follow_ups else None,
    )


def _root_cause(status: RollbackStatus, history: HistoryTimeline | None) -> RootCauseReport | None:
    results = history.step_results if history else {}
    plan = results.get("recovery_planning", {}).get("markdown") or None
    if status.root_cause is not None:
        return RootCauseReport(source="status", material=status.root_cause, recovery_plan=plan)
    found = results.get("root_cause_analysis")
    if found is None:
        return None
    try:
        material = RootCauseMaterial.model_validate(found)
    except ValidationError:
        return None
    return RootCauseReport(source="history", material=material, recovery_plan=plan)


def _comms(pending: PendingComms) -> CommsReport:
    return CommsReport(
        audience=pending.audience,
        name=pending.name,
        channel=pending.channel,
        outcome=pending.outcome,
        decided_by=list(pending.decided_by),
        sent=pending.sent,
    )


def _timeline(status: RollbackStatus, history: HistoryTimeline | None) -> list[TimelineLine]:
    if history is None:
        return [
            TimelineLine(at=e.at, kind=e.kind, message=e.message, by=e.by)
            for e in status.timeline
            if e.kind != "state"
        ]
    return [
        TimelineLine(at=e.at, kind=e.kind, message=e.message, by=e.person, step=e.step)
        for e in history.entries
    ]


# --- Markdown ------------------------------------------------------------------------------

QUIET = ("timer_started", "timer_canceled")
"""Budget timers that started and were canceled in time: every step has two; not shown."""


def _acts_md(r: RollbackReport) -> list[str]:
    """Who acted, how each was proven, and the signatures checked again from the history."""
    out = ["## Who acted, proven", ""]
    if not r.acts:
        out += ["No person acted (or the rollback predates the record of acts).", ""]
    else:
        out += [
            "| At | Person | Act | Choice | Proven by | Reason |",
            "| --- | --- | --- | --- | --- | --- |",
        ]
        for a in r.acts:
            proven = a.detail if a.how != "refused" else f"refused: {a.detail}"
            if a.how == "asserted":
                proven = "asserted (not proven)"
            out.append(
                f"| {_when(a.at)} | {_cell(a.person)} | {a.act} | {_cell(a.choice)} | "
                f"{_cell(proven)} | {_cell(a.reason or '-')} |"
            )
        out.append("")
    if r.signatures:
        holding = sum(c.holds for c in r.signatures)
        out += [
            f"Signatures in the workflow's history, verified again offline against the policy "
            f"it ran under: **{holding} of {len(r.signatures)} hold**.",
            "",
        ]
        out += [
            f"- {_when(c.at)} {c.event}: {c.person} {c.act} {c.choice}: "
            + ("holds, " if c.holds else "DOES NOT HOLD: ")
            + c.detail
            for c in r.signatures
        ]
        out.append("")
    elif r.timeline_source == "history":
        out += ["No signed act in the workflow's history.", ""]
    return out


def _markdown(r: RollbackReport) -> str:
    drill = " (DRILL)" if r.drill else ""
    out = [f"# Rollback report: {r.deployment}{drill}", ""]
    if r.drill:
        out += [
            "> **Drill.** A rehearsal of the procedure; it was marked as a drill throughout.",
            "",
        ]
    run = f", run `{r.run_id}`" if r.run_id else ""
    ended = f" (workflow {r.closed})" if r.closed else " (workflow running)"
    out += [
        f"Workflow `{r.workflow_id}`{run}. State **{r.state}**{ended}; "
        f"outcome: **{r.outcome or 'not yet'}**. Policy: {r.policy or 'unknown'}. "
        f"Generated {_when(r.generated_at)}.",
        "",
    ]
    if r.outcome_detail:
        out += [f"Outcome: {r.outcome_detail}.", ""]
    out += _trigger_md(r.trigger)
    out += _decision_md(r.decision)
    out += _steps_md(r.steps)
    out += _actions_md(r.actions)
    out += _response_md(r)
    out += _recovery_md(r.recovery)
    out += ["## Escalations", ""]
    out += [
        f"- {_when(e.at)} ({e.source.replace('_', '-')}): {e.reason}"
        + (f" — told: {' → '.join(e.told)}" if e.told else "")
        + (f"; paged: {', '.join(e.paged)}" if e.paged else "")
        + (f"; acknowledged by {e.acknowledged}" if e.acknowledged else "")
        for e in r.escalations
    ]
    out += ["" if r.escalations else "None.", ""]
    out += _root_cause_md(r.root_cause)
    out += _acts_md(r)
    if r.comms:
        out += ["## Communications held for approval", ""]
        out += [
            f"- {c.name} to {c.channel}: {c.outcome}"
            + (f" by {', '.join(c.decided_by)}" if c.decided_by else "")
            + ("; sent" if c.sent else "; not sent")
            for c in r.comms
        ]
        out.append("")
    out += _timeline_md(r)
    if r.notes:
        out += ["## Notes", ""] + [f"- {n}" for n in r.notes] + [""]
    return "\n".join(out).rstrip() + "\n"


def _trigger_md(t: TriggerReport) -> list[str]:
    out = ["## Trigger", ""]
    if t.id is None:
        return [*out, "No trigger was adopted yet.", ""]
    kind = f", {t.kind}" if t.kind else ""
    phase = f" at **{t.phase}%** canary" if t.phase is not None else ""
    out.append(f"- **{t.name}** (`{t.id}`{kind}){phase}, {_when(t.at)}")
    if t.condition:
        out.append(f"- Condition: {t.condition}")
    if t.source or t.raised_by:
        by = f" by {t.raised_by_name or t.raised_by}" if t.raised_by else ""
        out.append(f"- Raised from {t.source or '?'}{by}")
    if t.reason:
        out.append(f"- Reason: {t.reason}")
    evidence = ", ".join(f"{k} = {v}" for k, v in sorted(t.evidence.items()))
    out.append(f"- Evidence: {evidence or 'none attached'}")
    if t.links:
        out.append(f"- Links: {' '.join(t.links)}")
    others = f" (also: {', '.join(t.others)})" if t.others else ""
    out += [f"- Trigger events received: {t.received}{others}", ""]
    return out


def _decision_md(d: DecisionReport) -> list[str]:
    rows: list[tuple[str, str]] = [
        ("Verdict", d.verdict or "pending"),
        ("Mode", d.mode or "-"),
        ("Decided by", ", ".join(d.decided_by_names) or "-"),
    ]
    after = (
        f" ({_secs(d.seconds_after_trigger)} after the trigger)"
        if d.seconds_after_trigger is not None
        else ""
    )
    rows.append(("Decided at", f"{_when(d.decided_at)}{after}" if d.decided_at else "-"))
    if d.window_seconds is not None:
        rows += [
            (
                "Window",
                f"{_budget(d.window_seconds)} for {d.approvers or '-'}, opened "
                f"{_when(d.window_opened_at)}, deadline {_when(d.deadline)}"
                + (" (extended)" if d.extended else ""),
            ),
            ("Default action", d.default_action or "-"),
            ("Within the window", _yes(d.within_window)),
        ]
    else:
        rows.append(("Window", "none: the plan has nobody decide (automatic or by the initiator)"))
    rows += [
        ("Default applied", "yes" if d.default_applied else "no"),
        ("Rejected attempts", str(d.rejected_attempts)),
    ]
    if d.votes:
        rows.append(("Votes", ", ".join(f"{p}: {v}" for p, v in d.votes.items())))
    return (
        ["## Decision", "", "| | |", "| --- | --- |"]
        + [f"| {k} | {_cell(v)} |" for k, v in rows]
        + [""]
    )


def _steps_md(steps: list[StepReport]) -> list[str]:
    out = ["## Steps", ""]
    if not steps:
        return [*out, "No step has run.", ""]
    out += [
        "| Step | Started | Ended | Duration | Budget | Outcome | Summary |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for s in steps:
        outcome = s.outcome + (" (late)" if s.late else "")
        out.append(
            f"| {_cell(s.name)} | {_clock(s.started_at)} | {_clock(s.ended_at)} | "
            f"{_secs(s.duration_seconds)} | {_budget(s.budget_seconds)} | {outcome} | "
            f"{_cell(s.summary)} |"
        )
    return [*out, ""]


def _actions_md(actions: list[ActionReport]) -> list[str]:
    if not actions:
        return []
    out = [
        "## Phase 1 actions",
        "",
        "| Action | Command | State | Settled | Detail |",
        "| --- | --- | --- | --- | --- |",
    ]
    for a in actions:
        detail = a.detail if a.state == "confirmed" else a.error or a.detail
        out.append(
            f"| {_cell(a.name)} | `{_cell(a.command)}` | **{a.state.replace('_', ' ')}** | "
            f"{_clock(a.settled_at)} | {_cell(detail)} |"
        )
    return [*out, ""]


def _response_md(r: RollbackReport) -> list[str]:
    out = ["## Response times", ""]
    if r.response_times:
        out += [
            "| Target | Applies | Measured | Limit | Result |",
            "| --- | --- | --- | --- | --- |",
        ]
        out += [
            f"| {_cell(t.name)} | {'the trigger' if t.basis == 'trigger' else 'the plan'} | "
            f"{_secs(t.seconds)} | {_limit(t)} | **{t.result.upper()}** |"
            for t in r.response_times
        ]
        if r.reversion_measured_from:
            out += [
                "",
                f"Traffic reversion (the `TrafficReversionSeconds` search attribute) is measured "
                f"from the {r.reversion_measured_from} to the confirmed split.",
            ]
    else:
        out.append("No target applies yet.")
    if r.intervals:
        measured = ", ".join(f"{k.replace('_', ' ')} {_secs(v)}" for k, v in r.intervals.items())
        out += ["", f"Measured intervals: {measured}."]
    return [*out, ""]


def _recovery_md(rec: RecoveryReport) -> list[str]:
    out = ["## Recovery", ""]
    if rec.targets:
        out += ["| Target | Result | Evidence |", "| --- | --- | --- |"]
        out += [
            f"| {_cell(t.name)}: {_cell(t.description)} | {t.result.replace('_', ' ')} | "
            f"{_cell(t.evidence)} |"
            for t in rec.targets
        ]
        out.append("")
    incidents = (
        f"; incidents after the rollback: {rec.incidents_after_rollback}"
        if rec.incidents_after_rollback is not None
        else ""
    )
    out += [f"Escalations: {rec.escalations}{incidents}.", ""]
    if rec.follow_ups:
        out += [
            f"Follow-ups (`{rec.follow_ups_id}`):",
            "",
            "| Follow-up | Owner | Due | State | By | Detail |",
            "| --- | --- | --- | --- | --- | --- |",
        ]
        out += [
            f"| {_cell(f.name)} | {f.owner} | {f.due_at:%Y-%m-%d %H:%M} UTC | {f.state} | "
            f"{f.done_by or '-'} | {_cell(f.detail)} |"
            for f in rec.follow_ups
        ]
        out.append("")
    elif rec.follow_ups_id:
        out += [f"Follow-ups: `{rec.follow_ups_id}` (status not available).", ""]
    return out


def _root_cause_md(rca: RootCauseReport | None) -> list[str]:
    out = ["## Root cause material", ""]
    if rca is None:
        return [*out, "Step 6 has not produced material yet.", ""]
    m = rca.material
    if m.summary:
        out += [m.summary, ""]
    ranked = [f"**{h.severity}** ({h.area}): {h.text}" for h in m.ranked] or m.hypotheses
    out += ["Hypotheses the evidence supports:", ""]
    out += [f"{i}. {h}" for i, h in enumerate(ranked, 1)] or ["none"]
    out.append("")
    if m.metrics:
        variants = sorted({v for figures in m.metrics.values() for v in figures})
        out += [
            "| Metric | " + " | ".join(variants) + " |",
            "| --- |" + " --- |" * len(variants),
        ]
        out += [
            f"| {name} | "
            + " | ".join(f"{figures[v]:.4g}" if v in figures else "-" for v in variants)
            + " |"
            for name, figures in m.metrics.items()
        ]
        out.append("")
    if m.log_excerpt:
        out += [f"Log excerpt ({m.log_lines} lines gathered):", "", "```"]
        out += m.log_excerpt
        out += ["```", ""]
    if rca.recovery_plan:
        out += ["<details><summary>Recovery plan (Step 7)</summary>", "", rca.recovery_plan, ""]
        out += ["</details>", ""]
    return out


def _timeline_md(r: RollbackReport) -> list[str]:
    source = (
        "reconstructed from the workflow history"
        if r.timeline_source == "history"
        else "as the workflow recorded it"
    )
    lines = [e for e in r.timeline if not (e.kind in QUIET and e.step)]
    out = [
        f"## Timeline ({source})",
        "",
        "| At (UTC) | Event | What | By |",
        "| --- | --- | --- | --- |",
    ]
    out += [
        f"| {_clock(e.at)} | {e.kind.replace('_', ' ')} | {_cell(e.message)} | {e.by or ''} |"
        for e in lines
    ]
    return [*out, ""]


def _when(at: datetime | None) -> str:
    return f"{at:%Y-%m-%d %H:%M:%S} UTC" if at else "-"


def _clock(at: datetime | None) -> str:
    return f"{at:%H:%M:%S.%f}"[:-3] if at else "…"


def _secs(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    return f"{seconds:.3f} s" if seconds < 10 else f"{seconds:.1f} s"


def _budget(seconds: float) -> str:
    return format_duration(timedelta(seconds=seconds))


def _yes(value: bool | None) -> str:
    return {True: "yes", False: "**no**", None: "-"}[value]


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _escalation(
    at: datetime, reason: str, incident: EscalationRecord | None, policy: Policy | None
) -> EscalationReport:
    if incident is None:
        return EscalationReport(at=at, reason=reason, source="rollback")

    def role(r: str) -> str:
        return policy.role_name(r) if policy else r

    acknowledged = None
    if incident.acked_at is not None:
        took = spoken(incident.acked_at - incident.opened_at)
        acknowledged = f"{incident.acked_by or 'someone'} ({incident.acked_via}) after {took}"
    return EscalationReport(
        at=at,
        reason=reason,
        source="rollback",
        told=[role(r) for r in incident.told],
        paged=list(incident.paged),
        acknowledged=acknowledged,
    )


def _limit(t: ResponseTimeReport) -> str:
    """ "< 10m", or the target that applied instead of the plan's, and why."""
    if t.plan_target_seconds is None:
        return f"< {_budget(t.target_seconds)}"
    return (
        f"by {_budget(t.target_seconds)} (the plan's {_budget(t.plan_target_seconds)}, "
        f"extended: {_cell(t.why)})"
    )
