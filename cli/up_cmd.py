"""`rollback up`: the embedded stack in one command, until Ctrl-C."""

from __future__ import annotations

from typing import Annotated

import typer

from cli.errors import UserError
from cli.simulate_cmd import parse_deployments
from cli.stack import Stack, stop_on_signals
from config.settings import Settings, load_settings
from runbook.loading import load_policy

DEFAULT_DEPLOYMENTS = {"search-a": 25, "search-b": 50}


def up(
    deployment: Annotated[
        list[str] | None,
        typer.Option(
            "--deployment",
            "-d",
            metavar="NAME=TREATMENT_PERCENT",
            help="a simulated deployment in canary at that share; repeatable "
            "(default: search-a=25, search-b=50)",
        ),
    ] = None,
    simulator: Annotated[
        bool,
        typer.Option(help="run the simulated target when ROLLBACK_TARGET_URL is on this machine"),
    ] = True,
    gateway: Annotated[bool, typer.Option(help="run the gateway")] = True,
    watch: Annotated[
        bool, typer.Option(help="start the canary watch of each simulated deployment")
    ] = True,
) -> None:
    """Run the embedded stack: Temporal dev server + Web UI, Redis, simulator, worker, gateway.

    State lives under ROLLBACK_HOME (.rollback/): run it again and what was in flight resumes.

    Example: rollback up -d search-a=25 -d search-b=50
    """
    settings = load_settings()
    deployments = parse_deployments(deployment or []) or dict(DEFAULT_DEPLOYMENTS)
    if deployment and not simulator:
        raise UserError("--deployment needs the simulator (drop --no-simulator)")
    stack = Stack(
        settings, settings.home, deployments, simulator=simulator, gateway=gateway, watch=watch
    )
    typer.echo(f"Starting the rollback stack (state in {settings.home}/):")
    with stop_on_signals():
        try:
            with stack:
                typer.echo(ready_text(settings, stack))
                stack.wait()  # restarts a part that dies; returns only by a signal or failure
        except KeyboardInterrupt as stop:
            why = f" ({stop})" if str(stop) else ""
            typer.echo(f"\nStopped{why}: every part, in reverse order.")


def signing_hint(settings: Settings) -> str:
    """Under a signing policy, the example says how to sign (or how to try without)."""
    try:
        signed = load_policy(settings.policy).signed()
    except Exception:  # the stack reports a bad policy itself
        return ""
    if not signed:
        return ""
    return (
        " --key ~/.ssh/id_ed25519\n"
        "       (identity.cli is signed: your key must be in the policy; to try the engine "
        "without keys, ROLLBACK_POLICY=policies/asserted.yaml)"
    )


def ready_text(settings: Settings, stack: Stack) -> str:
    token_hint = (
        "ROLLBACK_ALERTS_TOKEN"
        if settings.alerts_token
        else f"the token in {settings.home}/alerts-token"
    )
    # Only a deployment this stack runs (a canary at a phase the gate decides by hand).
    running = [d for d, share in stack.deployments.items() if share > 0] if stack.simulator else []
    try_it = (
        f"  Try: rollback trigger -d {running[0]} -t gate_failure -r 'recall gate failed' "
        f"--as dri-backend{signing_hint(settings)}\n"
        if running
        else "  No simulated deployment runs here: your targets' deployments are the ones to "
        "trigger (rollback trigger -d <deployment> …)\n"
    )
    return (
        f"\nReady.  Web UI: {settings.ui_url}/namespaces/{settings.temporal_namespace}/workflows\n"
        f"  Alertmanager → http://{settings.gateway_host}:{settings.gateway_port}"
        f"/alerts/alertmanager (Bearer: {token_hint})\n"
        f"{try_it}"
        "       rollback status\n"
        "Ctrl-C (or SIGTERM, SIGHUP) stops everything; a part that dies is restarted; "
        "`rollback up` again resumes what was in flight."
    )
