"""Who made an act, checked inside the rollback before it counts (runbook/identity.py holds the
rules), and recorded with how it was proven: the status's `acts`, each vote's `proven`, the
timeline. A refused act changes nothing but the record."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from datetime import datetime

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from runbook.identity import Act, Proof, Refused, Verified, check, expected
    from runbook.status import PersonAct
    from workflows.rollback_record import RollbackRecord

ACTS_KEPT = 100


def prove(
    rb: RollbackRecord,
    act: Act,
    person: str,
    proof: Proof | None,
    fields: Mapping[str, str],
    accept: Mapping[str, Collection[str]] | None = None,
    *,
    arrived_now: bool = True,
) -> Verified | Refused:
    """`fields`: the act as received (choice, reason, made_at, request_id, via, window…);
    `rollback` defaults to this run, and a signature naming another run of this incident is
    taken. `arrived_now`: the act came as an update (its freshness is judged); a stored signal
    is judged by its binding and request id alone (it may have waited for a worker)."""
    values = {"rollback": workflow.info().run_id, **fields}
    runs = {*rb.state.runs, workflow.info().run_id}
    if fields.get("via") == "slack":
        runs.add("")  # the gateway names no run: a click is bound to its message and button
    statement = expected(
        act, person, rb.deployment, proof, values, {"rollback": runs, **(accept or {})}
    )
    now = workflow.now() if arrived_now else datetime.fromisoformat(statement.made_at)
    return check(rb.policy, statement, proof, drill=rb.inp.options.drill, now=now)


def record(
    rb: RollbackRecord,
    act: Act,
    person: str,
    verdict: Verified | Refused,
    *,
    choice: str = "",
    reason: str = "",
    accepted: bool = True,
    at: datetime | None = None,
) -> None:
    """One act on the record, with how it was proven (or why it was refused)."""
    acts = rb.status.acts
    if isinstance(verdict, Refused):
        how, detail, accepted = "refused", verdict.reason, False
    else:
        how, detail = verdict.how, verdict.detail
    acts.append(
        PersonAct(
            at=at or workflow.now(),
            act=act,
            person=person,
            choice=choice,
            how=how,
            detail=detail,
            reason=reason,
            accepted=accepted,
        )
    )
    del acts[:-ACTS_KEPT]
