"""`rollback trigger|decide|status`: a rollback seen and steered from a terminal."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.table import Table
from temporalio.client import Client, WorkflowQueryFailedError, WorkflowQueryRejectedError
from temporalio.service import RPCError, RPCStatusCode

from cli.errors import Failure, UserError
from cli.output import Format, console, print_json, show_reply
from cli.policy_cmd import read_policy
from cli.signing import KeyOption, current_run, now_and_id, open_window, proof
from cli.temporal import (
    answered_or_stored,
    client_for,
    described,
    explain_rpc,
    live_workers,
    not_answered,
)
from client import answers, operations
from config.settings import Settings, load_settings
from contract.rollback import (
    DECIDE_UPDATE,
    DECISION_SIGNAL,
    DecisionInput,
    DecisionReply,
    RollbackOptions,
    TriggerEvent,
    deployment_problem,
    workflow_id,
)
from contract.watch import WatchStatus, watch_id
from runbook.durations import format_duration
from runbook.policy import Policy
from runbook.status import DecisionAction, RollbackStatus

Deployment = Annotated[str, typer.Option("--deployment", "-d", help="deployment name")]
FormatOption = Annotated[Format, typer.Option("--format", help="text or JSON")]


def check_deployment(name: str) -> str:
    problem = deployment_problem(name, "--deployment")
    if problem is not None:
        raise UserError(problem)
    return name


def check_person(policy: Policy, person: str) -> str:
    if person in policy.people:
        return person
    by_slack = policy.person_by_slack_id(person)
    if by_slack:
        return by_slack
    raise UserError(f"--as: {person!r} is not in the roster (known: {', '.join(policy.people)})")


def trigger(
    deployment: Deployment,
    trigger: Annotated[str, typer.Option("--trigger", "-t", help="trigger id from the policy")],
    reason: Annotated[str, typer.Option("--reason", "-r", help="why, for the record")],
    as_user: Annotated[str, typer.Option("--as", help="who raises it (roster person id)")],
    phase: Annotated[
        int | None, typer.Option("--phase", help="phase label; the live split wins")
    ] = None,
    drill: Annotated[bool, typer.Option("--drill", help="mark the rollback as a drill")] = False,
    key: KeyOption = None,
    format: FormatOption = Format.text,
) -> None:
    """Raise a trigger: starts the deployment's rollback, or joins the one running.

    Example: rollback trigger -d search-a -t gate_failure -r "recall gate failed" --as dri-backend
    """
    settings = load_settings()
    policy = read_policy(settings.policy)
    check_deployment(deployment)
    if trigger not in policy.triggers:
        raise UserError(
            f"--trigger: unknown trigger {trigger!r} (known: {', '.join(policy.triggers)})"
        )
    if phase is not None and phase not in policy.phases:
        raise UserError(f"--phase: {phase} is not a canary phase (phases: {policy.phases})")
    person = check_person(policy, as_user)
    made_at, request_id = now_and_id()
    event = TriggerEvent(
        trigger=trigger,
        phase=phase,
        reason=reason,
        source="cli",
        raised_by=person,
        received_at=made_at,
        delivery_key=request_id,
    )
    raised, why = asyncio.run(_trigger(settings, policy, deployment, event, drill, key))
    reply = raised.reply
    stored = f"{why}, so the trigger was stored durably; {STORED}"
    if format is Format.json:
        print_json(
            {
                "workflow_id": workflow_id(deployment),
                "run_id": raised.run_id,
                "trigger": trigger,
                "accepted": reply.accepted if reply else None,
                "stored": reply is None,
                "message": reply.message if reply else stored,
            }
        )
    elif reply is None:
        console.print(f"{policy.triggers[trigger].name} for {workflow_id(deployment)}: {stored}")
    else:
        verdict = "accepted" if reply.accepted else "rejected"
        console.print(
            f"{policy.triggers[trigger].name} {verdict} by {workflow_id(deployment)}: "
            f"{reply.message}"
            + (f"\nFollow it: rollback status -d {deployment} --watch" if reply.accepted else "")
        )
    if reply is not None and not reply.accepted:
        raise typer.Exit(1)


STORED = (
    "the rollback will judge it (authority, phase) when a worker takes it, from the moment it "
    "was raised"
)


async def _trigger(
    settings: Settings,
    policy: Policy,
    deployment: str,
    event: TriggerEvent,
    drill: bool,
    key: Path | None,
) -> tuple[operations.Raised, str]:
    """The rollback's verdict, or the trigger stored and why it was not answered."""
    assert event.raised_by is not None and event.received_at is not None
    signed = await proof(
        policy,
        act="trigger",
        person=event.raised_by,
        deployment=deployment,
        made_at=event.received_at,
        request_id=event.delivery_key or "",
        key=key,
        drill=drill,
        choice=event.trigger,
        reason=event.reason,
    )
    event = event.model_copy(update={"proof": signed})
    client = await client_for(settings)
    options = RollbackOptions(ui_metadata=settings.ui_metadata, drill=drill)
    found = await live_workers(client, settings)
    try:
        raised = await operations.raise_trigger(
            client,
            task_queue=settings.task_queue,
            policy=policy,
            deployment=deployment,
            event=event,
            options=options,
            no_worker=found.none,
        )
    except RPCError as error:
        raise explain_rpc(error, deployment) from None
    return raised, not_answered(found)


def decide(
    deployment: Deployment,
    as_user: Annotated[str, typer.Option("--as", help="who decides (roster person id)")],
    approve: Annotated[bool, typer.Option("--approve", help="approve the rollback")] = False,
    deny: Annotated[bool, typer.Option("--deny", help="deny: the canary continues")] = False,
    investigating: Annotated[
        bool, typer.Option("--investigating", help="extend the window while investigating")
    ] = False,
    reason: Annotated[
        str,
        typer.Option(
            "--reason", "-r", help="why: required with --deny and --investigating, shown everywhere"
        ),
    ] = "",
    note: Annotated[str, typer.Option("--note", hidden=True, help="the old name of --reason")] = "",
    key: KeyOption = None,
    format: FormatOption = Format.text,
) -> None:
    """Decide an open decision window (authority is checked by the rollback itself; under
    `identity.cli: signed` the decision is signed with your key).

    Example: rollback decide -d search-b --approve --as qa-dri --key ~/.ssh/id_ed25519

    A deny says why: rollback decide -d search-b --deny -r "dip within noise" --as qa-dri
    """
    chosen = [
        name
        for name, on in (("approve", approve), ("deny", deny), ("investigating", investigating))
        if on
    ]
    if len(chosen) != 1:
        raise UserError("choose exactly one of --approve, --deny, --investigating")
    settings = load_settings()
    policy = read_policy(settings.policy)
    check_deployment(deployment)
    action: DecisionAction = chosen[0]  # type: ignore[assignment]
    why = (reason or note).strip()
    if action != "approve" and not why:
        raise UserError(
            f"--reason: say why you {'deny' if action == 'deny' else 'investigate'} (the "
            "record, the report and the channel show it): --reason TEXT"
        )
    made_at, request_id = now_and_id()
    decision = DecisionInput(
        action=action,
        person=check_person(policy, as_user),
        via="cli",
        reason=why,
        made_at=made_at,
        request_id=request_id,
    )
    reply = asyncio.run(_decide(settings, policy, deployment, decision, key))
    show_reply(reply, format)


async def _decide(
    settings: Settings,
    policy: Policy,
    deployment: str,
    decision: DecisionInput,
    key: Path | None,
) -> DecisionReply:
    client = await client_for(settings)
    assert decision.made_at is not None and decision.request_id is not None
    signed = await proof(
        policy,
        act="decide",
        person=decision.person,
        deployment=deployment,
        made_at=decision.made_at,
        request_id=decision.request_id,
        key=key,
        rollback=await current_run(client, workflow_id(deployment)),
        window=await open_window(client, deployment),
        choice=decision.action,
        reason=decision.reason,
    )
    decision = decision.model_copy(update={"proof": signed})
    return await answered_or_stored(
        client,
        settings,
        deployment,
        workflow_id(deployment),
        (DECIDE_UPDATE, DECISION_SIGNAL),
        decision,
        "decision",
    )


def status(
    deployment: Annotated[
        str | None, typer.Option("--deployment", "-d", help="one rollback in detail")
    ] = None,
    format: FormatOption = Format.text,
    watch: Annotated[bool, typer.Option("--watch", "-w", help="refresh every second")] = False,
    limit: Annotated[
        int, typer.Option("--limit", "-n", min=1, help="show at most this many, newest first")
    ] = 50,
    all_: Annotated[bool, typer.Option("--all", help="show every rollback")] = False,
) -> None:
    """Show rollbacks: the newest (how many of how many), or one with its timeline and
    response times.

    Example: rollback status -d search-a --format json
    """
    settings = load_settings()
    if deployment is not None:
        check_deployment(deployment)
    asyncio.run(_status(settings, deployment, format, watch, None if all_ else limit))


async def _status(
    settings: Settings, deployment: str | None, format: Format, watch: bool, limit: int | None
) -> None:
    client = await client_for(settings)
    while True:
        if deployment is None:
            rows, total = await _list(client, limit)
            if format is Format.json:
                print_json({"shown": len(rows), "total": total, "rollbacks": rows})
            else:
                console.print(list_table(rows))
                more = " (--all shows every one, --limit N more)" if len(rows) < total else ""
                console.print(f"{len(rows)} of {total} rollbacks shown, newest first{more}")
        else:
            current, watching = await _one(client, settings, deployment)
            if format is Format.json:
                data: dict[str, object] = current.model_dump(mode="json") if current else {}
                data["watch"] = watching.model_dump(mode="json") if watching else None
                print_json(data)
            else:
                if watch:
                    console.clear()
                if current is not None:
                    render_status(current)
                if watching is not None:
                    render_watch(watching)
        if not watch:
            return
        await asyncio.sleep(1)


async def _one(
    client: Client, settings: Settings, deployment: str
) -> tuple[RollbackStatus | None, WatchStatus | None]:
    """The deployment's rollback and its canary watch; an error when it has neither (exit 2),
    or when no worker would answer the queries (exit 1, within seconds)."""
    exists = [
        await described(client, wid) is not None
        for wid in (workflow_id(deployment), watch_id(deployment))
    ]
    if not any(exists):
        raise UserError(f"--deployment: no rollback or canary watch of {deployment!r} was found")
    found = await live_workers(client, settings)
    if found.none:
        raise Failure(f"cannot read the status of {deployment}: {found.explain()}")
    rollback = await _query(exists[0], operations.status(client, deployment, answers.WITHIN))
    watching = await _query(exists[1], operations.watch_status(client, deployment, answers.WITHIN))
    return rollback, watching


Q = TypeVar("Q")


async def _query(there: bool, call: Coroutine[Any, Any, Q]) -> Q | None:
    """A status query bounded in time: no worker answering is exit 1, not a hang."""
    if not there:
        call.close()
        return None
    try:
        return await call
    except (WorkflowQueryFailedError, WorkflowQueryRejectedError) as error:
        raise Failure(f"the status query failed: {error}") from None
    except RPCError as error:
        if error.status == RPCStatusCode.DEADLINE_EXCEEDED:
            raise Failure(
                f"no worker answered the status query within {answers.WITHIN.total_seconds():g} s"
            ) from None
        if error.status == RPCStatusCode.NOT_FOUND:
            return None
        raise Failure(f"Temporal refused the status query: {error.message}") from None


def render_watch(w: WatchStatus) -> None:
    mode = "reads the metrics" if w.evaluating else "records blind spots only"
    blind = w.blind_spot
    if blind is not None:
        console.print(
            f"[bold red]Monitoring blind spot[/bold red] since {blind.since:%H:%M:%S} UTC "
            f"({blind.source}): {blind.reason}. The engine does not roll back on missing data; a "
            f"Sprint DRI can: rollback trigger -d {w.deployment} -t operational_anomaly "
            '-r "<reason>" --as <id>'
        )
    ended = f"; ended ({w.ended})" if w.ended else ""
    at = f", canary at {w.treatment}%" if w.treatment is not None else ""
    console.print(
        f"Canary watch of {w.deployment}: {mode}{ended}; {w.readings} reading(s){at}; "
        f"{w.past_blind_spots} earlier blind spot(s)"
    )
    if w.conditions:
        table = Table("condition", "now", "state", "sustained", box=None)
        for c in w.conditions:
            now = f"{c.value:.4g}" if c.value is not None else "—"
            shown = "" if c.raises else " (shown only)"
            table.add_row(
                f"{c.name}: {c.condition}{shown}",
                now,
                c.state,
                f"{c.sustained_seconds:.0f} s of {c.sustain_seconds:.0f} s",
            )
        console.print(table)
    for r in w.raised[-5:]:
        sent = "" if r.sent else " (the rollback could not be reached: raised again)"
        console.print(f"  raised {r.trigger} at {r.at:%H:%M:%S} UTC: {r.reason}{sent}")


async def _list(client: Client, limit: int | None) -> tuple[list[dict[str, object]], int]:
    """The newest rollbacks (all when `limit` is None), and how many there are in all."""
    query = 'WorkflowType = "RollbackWorkflow"'
    try:
        total = (await client.count_workflows(query)).count
    except RPCError as error:
        raise Failure(f"Temporal refused to count the rollbacks: {error.message}") from None
    rows: list[dict[str, object]] = []
    async for wf in client.list_workflows(query, limit=limit):
        attrs = wf.typed_search_attributes
        get = {key.name: value for key, value in ((p.key, p.value) for p in attrs)}
        rows.append(
            {
                "workflow_id": wf.id,
                "deployment": get.get("Deployment"),
                "state": get.get("RollbackState"),
                "outcome": get.get("RollbackOutcome"),
                "trigger": get.get("Trigger"),
                "phase": get.get("CanaryPhase"),
                "decision_by": get.get("DecisionBy"),
                "started": wf.start_time.isoformat() if wf.start_time else None,
                "status": wf.status.name if wf.status else None,
            }
        )
    return rows, total


def list_table(rows: list[dict[str, object]]) -> Table:
    table = Table(title="Rollbacks")
    columns = (
        "deployment",
        "state",
        "outcome",
        "trigger",
        "phase",
        "decision_by",
        "started",
        "status",
    )
    for column in columns:
        table.add_column(column.replace("_", " ").title())
    for row in rows:
        table.add_row(*(str(row.get(c) or "") for c in columns))
    return table


def render_status(s: RollbackStatus) -> None:
    drill = " [yellow](drill)[/yellow]" if s.drill else ""
    console.print(f"[bold]Rollback of {s.deployment}[/bold]{drill}: [bold]{s.state}[/bold]")
    if s.outcome:
        color = {"rolled back": "green", "incomplete": "red"}.get(s.outcome, "yellow")
        detail = f" — {s.outcome_detail}" if s.outcome_detail else ""
        console.print(f"Outcome: [bold {color}]{s.outcome}[/bold {color}]{detail}")
    if s.trigger:
        console.print(
            f"Trigger: {s.trigger} at {s.phase}%  mode: {s.mode or '-'}  "
            f"decided by: {', '.join(s.decided_by) or '-'}"
        )
    if s.decision:
        d = s.decision
        left = d.deadline - datetime.now(UTC)
        console.print(
            f"Decision window: {' / '.join(d.triggers)}; ends {d.deadline:%H:%M:%S} UTC "
            f"(in {format_duration(max(left, timedelta(0)))}), then {d.default_action}; "
            f"approvers: {' or '.join(' + '.join(x) for x in d.approvers)}; "
            f"votes: {d.votes or 'none'}"
        )
    if s.acts:
        acts = Table(title="Who acted, proven")
        for column in ("At", "Person", "Act", "Choice", "Proven by", "Reason"):
            acts.add_column(column)
        for act in s.acts[-12:]:
            proven = {"asserted": "asserted (not proven)", "refused": f"refused: {act.detail}"}
            acts.add_row(
                f"{act.at:%H:%M:%S}",
                act.person,
                act.act,
                act.choice,
                proven.get(act.how, act.detail),
                act.reason,
            )
        console.print(acts)
    if s.steps:
        steps = Table(title="Steps")
        for column in ("Step", "Outcome", "Seconds", "Budget", "Summary"):
            steps.add_column(column)
        for step in s.steps:
            took = (step.ended_at - step.started_at).total_seconds() if step.ended_at else None
            steps.add_row(
                step.name,
                step.outcome + (" (late)" if step.late else ""),
                f"{took:.2f}" if took is not None else "…",
                f"{step.budget_seconds:g}",
                step.summary,
            )
        console.print(steps)
    if s.actions:
        actions = Table(title="Phase 1 actions")
        for column in ("Action", "Command", "State", "Detail"):
            actions.add_column(column)
        for a in s.actions:
            detail = a.detail if a.confirmed else a.error or a.detail
            actions.add_row(a.name, a.command, a.state.replace("_", " "), detail)
        console.print(actions)
    if s.received:
        counted = ", ".join(f"{trigger} ×{n}" for trigger, n in s.received.items())
        console.print(f"Triggers received: {counted}")
    console.print(response_table(s))
    if s.intervals:
        measured = ", ".join(f"{k.replace('_', ' ')} {v:.2f} s" for k, v in s.intervals.items())
        console.print(f"Measured: {measured}")
    console.print(timeline_table(s))


def timeline_table(s: RollbackStatus, width: int | None = None) -> Table:
    """`width` cuts each message to one line of that many characters."""
    timeline = Table(title="Timeline")
    for column in ("At (UTC)", "Kind", "What", "By"):
        timeline.add_column(column)
    for entry in s.timeline:
        if entry.kind != "state":
            what = entry.message
            if width is not None and len(what) > width:
                what = what[: width - 1] + "…"
            timeline.add_row(f"{entry.at:%H:%M:%S.%f}"[:-3], entry.kind, what, entry.by or "")
    return timeline


def response_table(s: RollbackStatus) -> Table:
    table = Table(title="Response times against the plan's targets")
    for column in ("Target", "Applies", "Measured", "Limit", "Result"):
        table.add_column(column)
    for rt in s.response_times:
        result = {True: "[green]met[/green]", False: "[red]missed[/red]", None: "pending"}[rt.met]
        measured = f"{rt.seconds:.2f} s" if rt.seconds is not None else "-"
        table.add_row(
            rt.name,
            "the trigger" if rt.basis == "trigger" else "the plan",
            measured,
            (
                f"< {format_duration_seconds(rt.target_seconds)}"
                if rt.plan_target_seconds is None
                else f"by {format_duration_seconds(rt.target_seconds)} (the plan's "
                f"{format_duration_seconds(rt.plan_target_seconds)}, extended: {rt.why})"
            ),
            result,
        )
    return table


def format_duration_seconds(seconds: float) -> str:
    return format_duration(timedelta(seconds=seconds))
