"""A person's act from the terminal, signed with their key before it is sent (README: "Who
acted, proven"). The act is stamped first (the instant it was made, a request id), its statement
is built from what it says and what the rollback shows (the run, the open window), and it is
signed with `--key` (ROLLBACK_SIGNING_KEY) or the person's ssh-agent. Under `identity.cli:
asserted` nothing is signed unless a key is given, and the record says "asserted"."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer
from temporalio.client import Client

from cli.errors import UserError
from cli.temporal import described
from client import answers, operations
from client.signing import SigningError, sign
from runbook.identity import Act, Proof, Statement, stamp
from runbook.policy import Policy

KeyOption = Annotated[
    Path | None,
    typer.Option(
        "--key",
        envvar="ROLLBACK_SIGNING_KEY",
        help="your OpenSSH private key (ed25519) to sign the act with; without it, your "
        "ssh-agent signs (identity.cli: signed)",
        show_envvar=True,
    ),
]


def now_and_id() -> tuple[datetime, str]:
    """The instant the act was made and its request id: what it is signed with and judged by."""
    return datetime.now(UTC), f"cli:{uuid.uuid4()}"


async def proof(
    policy: Policy,
    *,
    act: Act,
    person: str,
    deployment: str,
    made_at: datetime,
    request_id: str,
    key: Path | None,
    drill: bool = False,
    rollback: str = "",
    window: str = "",
    choice: str = "",
    reason: str = "",
) -> Proof | None:
    """The signature the policy asks for (None: asserted, and no key given). A key that is not
    the person's, or no way to sign, is bad input (exit 2) and nothing is sent."""
    if not policy.signed(drill) and key is None:
        return None
    statement = Statement(
        act=act,
        person=person,
        deployment=deployment,
        rollback=rollback,
        window=window,
        choice=choice,
        reason=reason,
        made_at=stamp(made_at),
        request_id=request_id,
    )
    allowed = list(policy.people[person].signing_keys)
    try:
        return await sign(statement, key=key, allowed=allowed)
    except SigningError as error:
        raise UserError(str(error)) from None


async def current_run(client: Client, wid: str) -> str:
    """The rollback's current run id ("" when there is none: the act then names no run)."""
    description = await described(client, wid)
    return description.run_id or "" if description is not None else ""


async def open_window(client: Client, deployment: str) -> str:
    """The open decision window's opening instant, as the rollback shows it; "" when it cannot
    be read (no worker answers: the act is then bound to whichever window it is judged in)."""
    try:
        current = await operations.status(client, deployment, answers.WITHIN)
    except Exception:  # no worker, no rollback: the workflow judges the act without a window
        return ""
    return stamp(current.decision.opened_at) if current.decision is not None else ""
