"""`rollback drill`: rehearse the whole procedure and measure it against the plan's targets."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Annotated

import typer
from temporalio.client import Client, WorkflowExecutionStatus
from temporalio.service import RPCError, RPCStatusCode

from cli.errors import Failure, UserError
from cli.follow import SETTLED, follow
from cli.output import Format, console, print_json
from cli.policy_cmd import read_policy
from cli.rollback_cmds import check_deployment, check_person, response_table
from cli.temporal import client_for
from client import operations
from config.settings import Settings, load_settings
from contract.rollback import DecisionInput, RollbackOptions, TriggerEvent, workflow_id
from runbook.policy import Policy
from runbook.status import RollbackStatus


def drill(
    deployment: Annotated[str, typer.Option("--deployment", "-d", help="deployment to rehearse")],
    trigger: Annotated[
        str, typer.Option("--trigger", "-t", help="trigger id from the policy")
    ] = "error_rate",
    as_user: Annotated[
        str | None, typer.Option("--as", help="who raises it (needed for operational_anomaly)")
    ] = None,
    approve_as: Annotated[
        list[str] | None,
        typer.Option(
            "--approve-as",
            help="approve the decision window as this person; repeat for two-person approval "
            "(without it, the window runs to its default)",
        ),
    ] = None,
    within: Annotated[
        float, typer.Option("--within", help="give up after this many seconds", min=1)
    ] = 900,
    preflight: Annotated[
        bool,
        typer.Option(
            "--preflight/--no-preflight",
            help="run `rollback preflight` first: a target out of reach stops the drill, "
            "other failed checks are reported",
        ),
    ] = True,
    format: Annotated[Format, typer.Option("--format", help="text or JSON")] = Format.text,
) -> None:
    """Rehearse a rollback, marked as a drill, and judge it against the plan's targets.

    Runs against the simulator or a staging target (ROLLBACK_TARGET_URL). Exit 0 when every
    target was met, 1 when one was missed or a step failed.

    Example: rollback drill -d search-b -t quality_regression --approve-as qa-dri
    --approve-as dri-search
    """
    settings = load_settings()
    policy = read_policy(settings.policy)
    check_deployment(deployment)
    if trigger not in policy.triggers:
        raise UserError(
            f"--trigger: unknown trigger {trigger!r} (known: {', '.join(policy.triggers)})"
        )
    person = check_person(policy, as_user) if as_user else None
    approvers = [check_person(policy, p) for p in approve_as or []]
    say: Callable[[str], None] = (lambda _line: None) if format is Format.json else typer.echo
    from activities.preflight import run_preflight  # the activities' clients: only when needed
    from cli.preflight_cmd import checks_table

    checks = asyncio.run(run_preflight(settings, policy, deployment)) if preflight else []
    unreachable = [c for c in checks if not c.passed and _a_target(c.id)]
    if format is Format.text and preflight:
        failed = [c for c in checks if not c.passed]
        typer.echo(f"Preflight: {len(checks) - len(failed)} of {len(checks)} checks pass")
        if failed:
            console.print(checks_table(failed, "Preflight checks that fail"))
    if unreachable:
        names = "; ".join(f"{c.name}: {c.detail}" for c in unreachable)
        if format is Format.json:
            print_json(
                {
                    "deployment": deployment,
                    "drill": True,
                    "passed": False,
                    "failures": [f"preflight: {names}"],
                    "preflight": [c.model_dump(mode="json") for c in checks],
                }
            )
            raise typer.Exit(1)
        raise Failure(f"drill not started: a target is out of reach ({names})")
    if format is Format.text:
        typer.echo(f"Drill: {trigger} on {deployment}, against {settings.target_url}")
    final = asyncio.run(
        _drill(settings, policy, deployment, trigger, person, approvers, within, say)
    )
    verdict = drill_failures(final)
    if format is Format.json:
        print_json(
            {
                "deployment": deployment,
                "drill": True,
                "state": final.state,
                "passed": not verdict,
                "failures": verdict,
                "response_times": [rt.model_dump(mode="json") for rt in final.response_times],
                "intervals": final.intervals,
                "steps": [s.model_dump(mode="json") for s in final.steps],
                "preflight": [c.model_dump(mode="json") for c in checks],
            }
        )
    else:
        console.print(response_table(final))
        typer.echo("Drill passed." if not verdict else "Drill failed: " + "; ".join(verdict))
    if verdict:
        raise typer.Exit(1)


def _a_target(check_id: str) -> bool:
    """A check of a target the drill acts on (the load balancer, the services, the cache…):
    without it the rehearsal cannot act. Slack, PagerDuty and metrics are reported, not fatal."""
    return check_id.startswith("tools.") and not check_id.startswith(
        ("tools.slack", "tools.pagerduty", "tools.metrics")
    )


def drill_failures(final: RollbackStatus) -> list[str]:
    failures = [
        f"{rt.name}: {'never reached' if rt.seconds is None else f'{rt.seconds:.1f} s'}"
        for rt in final.response_times
        if rt.met is False
    ]
    failures += [f"{s.name} {s.outcome}" for s in final.steps if s.outcome != "ok"]
    if final.state != "rolled_back":
        failures.append(f"ended {final.state}")
    return failures


async def _drill(
    settings: Settings,
    policy: Policy,
    deployment: str,
    trigger: str,
    person: str | None,
    approvers: list[str],
    within: float,
    say: Callable[[str], None],
) -> RollbackStatus:
    client = await client_for(settings)
    await _refuse_if_running(client, deployment)
    event = TriggerEvent(trigger=trigger, reason="drill", source="drill", raised_by=person)
    await operations.send_trigger(
        client,
        task_queue=settings.task_queue,
        policy=policy,
        deployment=deployment,
        event=event,
        options=RollbackOptions(ui_metadata=settings.ui_metadata, drill=True),
    )
    status, seen = await follow(
        client,
        deployment,
        lambda s: s.decision is not None or s.state in SETTLED,
        within=within,
        say=say,
    )
    if status.decision is not None and approvers:
        for who in approvers:
            reply = await operations.decide(
                client, deployment, DecisionInput(action="approve", person=who, note="drill")
            )
            say(
                f"  approve as {who}: {'accepted' if reply.accepted else 'rejected'}: "
                f"{reply.message}"
            )
    final, _ = await follow(
        client, deployment, lambda s: s.state in SETTLED, within=within, say=say, seen=seen
    )
    return final


async def _refuse_if_running(client: Client, deployment: str) -> None:
    """A drill must not join a real rollback: signal-with-start would."""
    try:
        described = await client.get_workflow_handle(workflow_id(deployment)).describe()
    except RPCError as error:
        if error.status == RPCStatusCode.NOT_FOUND:
            return
        raise Failure(f"cannot check {workflow_id(deployment)}: {error.message}") from None
    if described.status == WorkflowExecutionStatus.RUNNING:
        raise UserError(
            f"--deployment: a rollback of {deployment} is running ({workflow_id(deployment)}); "
            "a drill would join it. Drill another deployment, or wait until it has ended"
        )
