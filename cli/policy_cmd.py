"""`rollback policy check|show`: the plan as the engine will apply it."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from cli.errors import UserError
from cli.output import Format, console, print_json
from runbook.durations import format_duration
from runbook.loading import PolicyError, load_policy
from runbook.matrix import Resolution, all_resolutions, describe_role_sets
from runbook.policy import Policy

app = typer.Typer(help="Check a policy file and show its decision and authority matrices.")

PolicyFile = Annotated[Path, typer.Argument(help="policy file, e.g. policies/sprint-1.yaml")]


def read_policy(path: Path) -> Policy:
    try:
        return load_policy(path)
    except PolicyError as error:
        raise UserError(str(error)) from None


@app.command(epilog="Example: rollback policy check policies/sprint-1.yaml")
def check(file: PolicyFile) -> None:
    """Validate a policy file: exit 0, or 2 with the file, the field path and the reason."""
    policy = read_policy(file)
    cells = len(policy.triggers) * len(policy.phases)
    console.print(
        f"{file}: ok ({len(policy.triggers)} triggers × {len(policy.phases)} phases "
        f"= {cells} cells, {len(policy.steps())} steps, {len(policy.people)} people)"
    )


@app.command(epilog="Example: rollback policy show policies/sprint-1.yaml --format json")
def show(
    file: PolicyFile,
    format: Annotated[Format, typer.Option("--format", help="text tables or JSON")] = Format.text,
) -> None:
    """Print the decision and authority matrices, resolved per trigger and phase."""
    policy = read_policy(file)
    rows = all_resolutions(policy)
    if format is Format.json:
        print_json([matrix_row(policy, row) for row in rows])
        return
    console.print(decision_table(policy, rows))
    console.print(authority_table(policy))


def matrix_row(policy: Policy, res: Resolution) -> dict[str, Any]:
    trigger = policy.triggers[res.trigger]
    return {
        "trigger": res.trigger,
        "trigger_name": trigger.name,
        "phase": res.phase,
        "mode": res.mode,
        "window_seconds": res.window.total_seconds() if res.window else None,
        "default_action": res.default_action,
        "approvers": res.approvers,
        "accountable": res.accountable,
        "authority": trigger.authority,
        "decided_by_initiator": res.decided_by_initiator,
        "extend_by_seconds": res.extend_by.total_seconds() if res.extend_by else None,
        "extend_until_seconds": res.extend_until.total_seconds() if res.extend_until else None,
    }


def decision_cell(policy: Policy, res: Resolution) -> str:
    if res.mode == "auto":
        return "Auto rollback"
    who = describe_role_sets(policy, res.approvers)
    if res.window is None:
        return f"Raised by {who}: rollback at once"
    text = f"Manual ({format_duration(res.window)}), {who}; then {res.default_action}"
    if res.extend_until is not None:
        text += f"; investigating extends to {format_duration(res.extend_until)}"
    return text


def decision_table(policy: Policy, rows: list[Resolution]) -> Table:
    table = Table(title="Decision matrix (canary phase rollback decisions)", show_lines=True)
    table.add_column("Trigger")
    for phase in policy.phases:
        table.add_column(f"{phase}% traffic")
    for trigger_id, trigger in policy.triggers.items():
        cells = [decision_cell(policy, r) for r in rows if r.trigger == trigger_id]
        table.add_row(f"{trigger.name}\n[dim]{trigger_id}[/dim]", *cells)
    return table


def authority_table(policy: Policy) -> Table:
    table = Table(title="Decision authority matrix", show_lines=True)
    table.add_column("Trigger type")
    for phase in policy.phases:
        table.add_column(f"{phase}%")
    for authority_id, row in policy.authority_matrix.items():
        cells = [
            "System" if row[p] == "system" else describe_role_sets(policy, row[p])  # type: ignore[arg-type]
            for p in policy.phases
        ]
        table.add_row(authority_id, *cells)
    return table
