"""`rollback watch -d D` starts the deployment's canary watch; `rollback watch stop -d D` ends it.
`rollback status -d D` shows what it sees."""

from __future__ import annotations

import asyncio
from typing import Annotated

import typer
from temporalio.service import RPCError, RPCStatusCode

from cli.errors import Failure, UserError
from cli.output import Format, print_json
from cli.policy_cmd import read_policy
from cli.rollback_cmds import Deployment, FormatOption, check_deployment
from cli.temporal import client_for, explain_rpc
from client import operations
from config.settings import Settings, load_settings
from contract.rollback import RollbackOptions
from runbook.durations import format_duration
from runbook.policy import Policy
from runbook.watching import conditions

app = typer.Typer(
    help="The engine's own canary watch: every trigger's condition with its sustain period. "
    "Start: rollback watch -d search-a; stop: rollback watch stop -d search-a.",
    no_args_is_help=False,
    invoke_without_command=True,
)


@app.callback()
def watch(
    ctx: typer.Context,
    deployment: Annotated[
        list[str] | None,
        typer.Option("--deployment", "-d", help="deployment to watch; repeatable"),
    ] = None,
    drill: Annotated[
        bool, typer.Option("--drill", help="a rehearsal: what it raises is a drill rollback")
    ] = False,
    format: FormatOption = Format.text,
) -> None:
    """Start the canary watch of a deployment (or say that it runs).

    It reads the policy's metrics every `watch.interval` and raises a trigger into the rollback
    once its condition has held for its sustain period, as an alert would.

    Example: rollback watch -d search-a
    """
    if ctx.invoked_subcommand is not None:
        return
    if not deployment:
        raise UserError("--deployment: name the deployment to watch (rollback watch -d NAME)")
    for name in deployment:
        check_deployment(name)
    if len(set(deployment)) != len(deployment):
        raise UserError("--deployment: a deployment is named twice")
    settings = load_settings()
    policy = read_policy(settings.policy)
    if policy.metrics is None:
        raise UserError(f"{settings.policy}: the policy has no metrics section: nothing to read")
    started = asyncio.run(_start(settings, policy, deployment, drill))
    if format is Format.json:
        found = [{"workflow_id": s.workflow_id, "started": s.started} for s in started]
        print_json(found[0] if len(found) == 1 else found)
        return
    for name, one in zip(deployment, started, strict=True):
        verb = "started" if one.started else "already running (now judging the canary)"
        typer.echo(f"Canary watch of {name} {verb}: {one.workflow_id}")
    typer.echo(describe(policy))


def describe(policy: Policy) -> str:
    lines = [f"Every {format_duration(policy.watch.interval)}, with policy {policy.name!r}:"]
    for c in conditions(policy):
        raises = f"→ {c.trigger}" if c.raises else "(shown only)"
        lines.append(f"  {c.name}: {c.describe()} for {format_duration(c.sustain)} {raises}")
    lines.append(
        f"A monitoring blind spot after {policy.watch.unreadable_intervals} unreadable readings; "
        f"done at 100 % and healthy for {format_duration(policy.watch.bake_time)}."
    )
    return "\n".join(lines)


@app.command()
def stop(deployment: Deployment) -> None:
    """Stop the canary watch of a deployment.

    Example: rollback watch stop -d search-a
    """
    check_deployment(deployment)
    asyncio.run(_stop(load_settings(), deployment))
    typer.echo(f"Canary watch of {deployment}: stop requested")


async def _start(
    settings: Settings, policy: Policy, deployments: list[str], drill: bool
) -> list[operations.WatchStart]:
    client = await client_for(settings)
    options = RollbackOptions(ui_metadata=settings.ui_metadata, drill=drill)
    started = []
    for deployment in deployments:
        try:
            started.append(
                await operations.start_watch(
                    client,
                    task_queue=settings.task_queue,
                    policy=policy,
                    deployment=deployment,
                    options=options,
                )
            )
        except RPCError as error:
            done = f" ({len(started)} started before it)" if started else ""
            raise Failure(
                f"Temporal refused to start the watch of {deployment}: {error.message}{done}"
            ) from None
    return started


async def _stop(settings: Settings, deployment: str) -> None:
    client = await client_for(settings)
    try:
        await operations.stop_watch(client, deployment)
    except RPCError as error:
        if error.status == RPCStatusCode.NOT_FOUND:
            raise UserError(f"--deployment: no canary watch of {deployment!r} is running") from None
        raise explain_rpc(error, deployment) from None
