"""`rollback preflight`: is everything the rollback needs in place, before the canary starts?
A table of checks, each with pass/fail and the fix; exit 0 only when every check passes."""

from __future__ import annotations

import asyncio
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from activities.preflight import all_passed, run_preflight
from cli.output import Format, console, print_json
from cli.policy_cmd import read_policy
from cli.rollback_cmds import check_deployment
from config.settings import load_settings
from runbook.readiness import Check

AREAS = {
    "authority": "Authority confirmation",
    "tools": "Tool access",
    "escalation": "Escalation path",
    "identity": "Who acted, proven",
}


def preflight(
    deployment: Annotated[
        str,
        typer.Option(
            "--deployment", "-d", help="the deployment about to go canary (its targets are read)"
        ),
    ],
    format: Annotated[Format, typer.Option("--format", help="text table or JSON")] = Format.text,
) -> None:
    """Check authority, tool access and the escalation path before a canary (the plan's
    pre-deployment validation). Reads only: nothing is changed anywhere.

    Uses the worker's settings (ROLLBACK_POLICY, ROLLBACK_…_URL, ROLLBACK_SSH_…,
    ROLLBACK_SLACK_BOT_TOKEN): run it where the worker runs, as its user. Exit 0 when every
    check passes, 1 otherwise.

    Example: rollback preflight -d search-a --format json
    """
    settings = load_settings()
    policy = read_policy(settings.policy)
    check_deployment(deployment)
    checks = asyncio.run(run_preflight(settings, policy, deployment))
    passed = all_passed(checks)
    if format is Format.json:
        print_json(
            {
                "deployment": deployment,
                "policy": str(settings.policy),
                "passed": passed,
                "checks": [c.model_dump(mode="json") for c in checks],
            }
        )
    else:
        console.print(checks_table(checks, f"Preflight of {deployment} ({settings.policy})"))
        failed = sum(not c.passed for c in checks)
        typer.echo(
            f"Preflight passed: {len(checks)} checks."
            if passed
            else f"Preflight failed: {failed} of {len(checks)} checks (fix column)."
        )
    if not passed:
        raise typer.Exit(1)


def checks_table(checks: list[Check], title: str = "Preflight") -> Table:
    table = Table(title=title, show_lines=True)
    table.add_column("Area")
    table.add_column("Check")
    table.add_column("Result")
    table.add_column("Detail")
    table.add_column("Fix")
    for check in checks:
        table.add_row(
            AREAS[check.area],
            escape(check.name),
            "[green]pass[/green]" if check.passed else "[red]FAIL[/red]",
            escape(check.detail),
            escape(check.fix),
        )
    return table
