"""`rollback demo` (= `make demo`): the embedded stack and a scenario that tells the story."""

from __future__ import annotations

import asyncio
import os
import shutil
from typing import Annotated

import typer

from cli.demo import DEPLOYMENTS, Demo, DemoFailed
from cli.errors import Failure
from cli.output import console
from cli.rollback_cmds import response_table, timeline_table
from cli.stack import Stack, stop_on_signals
from cli.temporal import client_for
from config.settings import Settings, load_settings
from runbook.loading import DEFAULT_POLICY, load_policy
from runbook.policy import Policy

# Step 4 watches the system for 30 s; the demo watches for 4.5 s (the simulator averages over 2 s).
# The demo policy's short sustain periods let the canary watch detect a fault in seconds.
DEMO_POLICY = DEFAULT_POLICY.parent / "demo.yaml"
DEMO_ENV = {
    "ROLLBACK_OBSERVE_SCALE": "0.15",
    "ROLLBACK_HEALTH_POLL_INTERVAL": "0.5",
    "ROLLBACK_POLICY": str(DEMO_POLICY),
}


def demo(
    once: Annotated[
        bool, typer.Option("--once", help="exit when the scenario is over: 0 passed, 1 failed")
    ] = False,
) -> None:
    """Play the demo scenario on the embedded stack, then stay up until Ctrl-C.

    The canary watch detects a failing treatment (the demo policy's short sustain periods) and
    the rollback is automatic; then it detects a quality regression, decided by two people.

    Its state is fresh every time (ROLLBACK_HOME/demo/).

    Example: rollback demo --once
    """
    settings = load_settings()
    home = settings.home / "demo"
    shutil.rmtree(home, ignore_errors=True)
    extra = {k: v for k, v in DEMO_ENV.items() if k not in os.environ}
    # The story needs the demo policy's short periods, whatever ROLLBACK_POLICY says: every
    # part (the watches included) runs on it, and the screen names it.
    extra["ROLLBACK_POLICY"] = str(DEMO_POLICY)
    os.environ["ROLLBACK_POLICY"] = str(DEMO_POLICY)  # and the commands the story types
    stack = Stack(settings, home, dict(DEPLOYMENTS), extra_env=extra)
    typer.echo(f"Starting the embedded stack (state in {home}/, policy {DEMO_POLICY.name}):")
    with stack:
        token = stack.child_env()["ROLLBACK_ALERTS_TOKEN"]
        policy = load_policy(DEMO_POLICY)
        try:
            failures = asyncio.run(_play(settings, token, policy))
        except DemoFailed as error:
            failures = [str(error)]
        stack.check()
        if failures:
            raise Failure("the demo failed: " + "; ".join(failures))
        typer.echo(
            "\nDemo passed: both rollbacks met the plan's response targets, every step ok, "
            "no recovery measure failed, traffic back on control."
        )
        if once:
            return
        typer.echo("Everything stays up for exploring (rollback status, the Web UI). Ctrl-C stops.")
        with stop_on_signals():
            try:
                stack.wait()
            except KeyboardInterrupt as stop:
                typer.echo(f"\nStopping ({stop or 'SIGINT'})…")


async def _play(settings: Settings, token: str, policy: Policy) -> list[str]:
    client = await client_for(settings)
    scenario = Demo(settings, client, token, policy, say=typer.echo)
    failures = await scenario.play()
    for final in scenario.finals.values():
        console.rule(f"{final.deployment}: {final.state}, decided by {', '.join(final.decided_by)}")
        console.print(timeline_table(final, width=110))
        console.print(response_table(final))
    typer.echo("\nWeb UI:")
    for link in scenario.links():
        typer.echo(f"  {link}")
    return failures
