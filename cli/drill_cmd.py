"""`rollback drill`: rehearse the whole procedure and measure it against the plan's targets."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Annotated

import typer
from temporalio.client import Client, WorkflowExecutionStatus

from cli.drill_detect import (
    Detection,
    detectable,
    drill_watch,
    fault_for,
    injected,
    judge,
    last_run_id,
    wait_for_new_rollback,
    wait_until_judged,
)
from cli.errors import Failure, UserError
from cli.follow import SETTLED, follow
from cli.output import Format, console, print_json
from cli.policy_cmd import read_policy
from cli.rollback_cmds import check_deployment, check_person, response_table
from cli.temporal import client_for, described, require_worker
from client import operations
from config.settings import Settings, load_settings
from contract.rollback import DecisionInput, RollbackOptions, TriggerEvent, workflow_id
from runbook.policy import Policy
from runbook.status import RollbackStatus
from runbook.watching import Condition


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
    detect: Annotated[
        bool,
        typer.Option(
            "--detect",
            help="rehearse detection too: inject the trigger's fault into the simulator and let "
            "a drill canary watch raise it after its sustain period",
        ),
    ] = False,
    format: Annotated[Format, typer.Option("--format", help="text or JSON")] = Format.text,
) -> None:
    """Rehearse a rollback, marked as a drill, and judge it against the plan's targets.

    Runs against the simulator or a staging target (ROLLBACK_TARGET_URL). Exit 0 when every
    target was met, 1 when one was missed or a step failed. With --detect (simulator only), the
    trigger is not sent: its fault is injected and the canary watch must detect it within one
    interval of its sustain period.

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
    condition = detectable(policy, trigger) if detect else None
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
        how = " (detected by the canary watch)" if detect else ""
        typer.echo(f"Drill: {trigger} on {deployment}{how}, against {settings.target_url}")
    final, detection = asyncio.run(
        _drill(settings, policy, deployment, trigger, person, approvers, within, say, condition)
    )
    verdict = drill_failures(final)
    if detection is not None and not detection.passed:
        verdict.insert(0, f"detection: {detection.verdict}")
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
                "detection": detection.model_dump(mode="json") if detection else None,
            }
        )
    else:
        if detection is not None:
            typer.echo(f"Detection: {detection.verdict}")
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
    condition: Condition | None = None,
) -> tuple[RollbackStatus, Detection | None]:
    client = await client_for(settings)
    await require_worker(client, settings, "drill not started")
    await _refuse_if_running(client, deployment)
    detection = None
    if condition is None:
        event = TriggerEvent(trigger=trigger, reason="drill", source="drill", raised_by=person)
        await operations.send_trigger(
            client,
            task_queue=settings.task_queue,
            policy=policy,
            deployment=deployment,
            event=event,
            options=RollbackOptions(ui_metadata=settings.ui_metadata, drill=True),
        )
        return await _drive(client, deployment, approvers, within, say), None
    detection = Detection(
        condition=condition.id,
        fault=fault_for(condition),
        sustain_seconds=condition.sustain.total_seconds(),
        interval_seconds=policy.watch.interval.total_seconds(),
    )
    before = await last_run_id(client, deployment)
    async with drill_watch(client, settings, policy, deployment, say):
        await wait_until_judged(client, deployment, condition.id, within)
        async with injected(settings, deployment, detection.fault, say) as at:
            say(
                f"  fault injected: {detection.fault}; the watch judges every "
                f"{detection.interval_seconds:g} s, sustain {detection.sustain_seconds:g} s"
            )
            await wait_for_new_rollback(client, deployment, before, within)
            status, seen = await follow(
                client, deployment, lambda s: "trigger" in s.instants, within=within, say=say
            )
            detection.detected_seconds = (status.instants["trigger"] - at).total_seconds()
            # The watch's evidence names its condition; an alert's does not.
            watched = {"condition", "breaching_since"} <= status.evidence.keys()
            detection.source = "watch" if watched else "an alert or a person"
            final = await _drive(client, deployment, approvers, within, say, seen)
    return final, judge(detection)


async def _drive(
    client: Client,
    deployment: str,
    approvers: list[str],
    within: float,
    say: Callable[[str], None],
    seen: int = 0,
) -> RollbackStatus:
    """Follow the drill rollback, approving its window as the drill says, to its end."""
    status, seen = await follow(
        client,
        deployment,
        lambda s: s.decision is not None or s.state in SETTLED,
        within=within,
        say=say,
        seen=seen,
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
    found = await described(client, workflow_id(deployment))
    if found is not None and found.status == WorkflowExecutionStatus.RUNNING:
        raise UserError(
            f"--deployment: a rollback of {deployment} is running ({workflow_id(deployment)}); "
            "a drill would join it. Drill another deployment, or wait until it has ended"
        )
