"""`rollback ack` and `rollback comms`: one-line errors and exit codes without a server, and the
happy paths against the real dev server (follow-ups found through the rollback or visibility)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
from datetime import UTC, datetime, timedelta
from uuid import uuid4

import pytest

from activities.models import (
    CommsApprovalRequestInput,
    EscalationInput,
    FollowUpNoticeInput,
    StepContext,
)
from activities.notify import ConsoleNotifier
from cli.main import main
from client import operations
from contract.follow_ups import FollowUpsInput
from contract.rollback import RollbackOptions, TriggerEvent
from runbook.policy import Policy
from tests.cli.test_cli_live import Live
from tests.conftest import ASSERTED_POLICY
from workflows.follow_ups import FollowUpsWorkflow

NOWHERE = "127.0.0.1:1"


@pytest.fixture
def offline(monkeypatch: pytest.MonkeyPatch) -> None:
    """No Temporal: a command that gets past its checks fails to connect (exit 1)."""
    for name in list(os.environ):
        if name.startswith("ROLLBACK_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("ROLLBACK_TEMPORAL_ADDRESS", NOWHERE)
    monkeypatch.setenv("ROLLBACK_POLICY", str(ASSERTED_POLICY))


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (
            ["ack", "-d", "search-a", "nope", "--as", "dri-backend"],
            "unknown follow-up 'nope' (known: first_hour, performance_2h",
        ),
        (["ack", "-d", "search a", "first_hour", "--as", "dri-backend"], "--deployment:"),
        (["ack", "-d", "search-a", "first_hour", "--as", "mallory"], "--as: 'mallory' is not"),
        (["ack", "-d", "search-a", "first_hour"], "Missing option '--as'"),
        (["comms", "-d", "search-a", "--as", "sprint-pm"], "choose exactly one of --approve"),
        (
            ["comms", "-d", "search-a", "--approve", "--deny", "--as", "sprint-pm"],
            "choose exactly one of --approve",
        ),
        (
            ["comms", "-d", "search-a", "--approve", "--audience", "engineering", "--as", "vp-eng"],
            "--audience: 'engineering' has no wording to approve "
            "(audiences that need approval: customer_comms)",
        ),
        (["comms", "-d", "search-a", "--hold", "--as", "mallory"], "--as: 'mallory' is not"),
        (["ack", "-d", "search-a", "--as", "sre-oncall"], "name a FOLLOW_UP or --escalation KEY"),
        (
            ["ack", "-d", "search-a", "first_hour", "-e", "all", "--as", "sre-oncall"],
            "name a FOLLOW_UP or --escalation KEY (one of them)",
        ),
    ],
)
def test_bad_input_is_exit_2_in_one_line(
    offline: None, capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    code, out, err = run(capsys, *argv)
    assert code == 2, (out, err)
    first = err.splitlines()[0]
    assert first.startswith("error: ") and message in first, err
    assert "Traceback" not in err


@pytest.mark.parametrize(
    "argv",
    [
        ["ack", "-d", "search-a", "first_hour", "--as", "dri-backend"],
        ["comms", "-d", "search-a", "--approve", "--as", "U0SPRINTPM"],
    ],
)
def test_temporal_down_is_exit_1(
    offline: None, capsys: pytest.CaptureFixture[str], argv: list[str]
) -> None:
    code, _, err = run(capsys, *argv)
    assert code == 1 and f"cannot reach Temporal at {NOWHERE}" in err
    assert len(err.strip().splitlines()) == 1


@pytest.mark.parametrize("command", ["ack", "comms"])
def test_help_shows_an_example(capsys: pytest.CaptureFixture[str], command: str) -> None:
    code, out, _ = run(capsys, command, "--help")
    assert code == 0 and f"Example: rollback {command} -d search-a" in out


async def test_the_console_messages_name_commands_that_parse(policy: Policy) -> None:
    ctx = StepContext(deployment="search-a", rollback_id="rollback-search-a", channel="#sprint-1")
    console = ConsoleNotifier()
    await console.follow_up_notice(
        FollowUpNoticeInput(
            ctx=ctx,
            follow_up="short_term_24h",
            name="Short-term actions (24 hours)",
            kind="due",
            actions=["Detailed RCA"],
            owners=[],
        )
    )
    await console.request_comms_approval(
        CommsApprovalRequestInput(
            ctx=ctx,
            audience="customer_comms",
            audience_name="Customer Comms",
            channel="#customer-comms",
            wording="Search was degraded; it is restored.",
            approvers=[],
            approver_text="Sprint PM",
            deadline=datetime(2025, 1, 1, 12, 30, tzinfo=UTC),
            default="hold",
        )
    )
    await console.escalate(
        EscalationInput(ctx=ctx, reason="Step 3 failed", holders=[], key="failed:health_validation")
    )
    [notice] = console.texts("follow_up_notice")
    [request] = console.texts("comms_approval_request")
    assert "Acknowledge: rollback ack -d search-a short_term_24h --as <id>" in notice
    assert "> Search was degraded; it is restored." in request
    assert "before 12:30:00 UTC; if nobody answers by then, it is held" in request
    commands = [
        line.split(": ", 1)[1].replace("<id>", "sprint-pm")
        for line in (notice + "\n" + request + "\n" + console.texts("escalation")[0]).splitlines()
        if ": rollback " in line
    ]
    assert len(commands) == 4  # ack, approve, hold, acknowledge the escalation
    for command in commands:
        # Parsed and checked: each gets as far as connecting (exit 1, not a usage error).
        code = await asyncio.to_thread(_offline_main, command.split()[1:])
        assert code == 1, command


def _offline_main(argv: list[str]) -> int:
    saved = os.environ.get("ROLLBACK_TEMPORAL_ADDRESS")
    os.environ["ROLLBACK_TEMPORAL_ADDRESS"] = NOWHERE
    try:
        return main(argv)
    finally:
        if saved is None:
            del os.environ["ROLLBACK_TEMPORAL_ADDRESS"]
        else:
            os.environ["ROLLBACK_TEMPORAL_ADDRESS"] = saved


# --- against the dev server ------------------------------------------------------------------


@pytest.mark.timeout(60)
async def test_ack_after_the_rollback_closed_finds_the_follow_ups_by_visibility(
    live: Live, policy: Policy
) -> None:
    deployment = f"search-{uuid4().hex[:8]}"
    reverted = datetime.now(UTC) - timedelta(minutes=65)  # the first hour is due
    follow_ups = f"follow-ups-{deployment}-{reverted:%Y%m%dT%H%M%S}"
    handle = await live.client.start_workflow(
        FollowUpsWorkflow.run,
        FollowUpsInput(
            deployment=deployment,
            policy=policy,
            options=RollbackOptions(ui_metadata=False),
            reverted_at=reverted,
            rollback_id=f"rollback-{deployment}",
        ),
        id=follow_ups,
        task_queue=live.env["ROLLBACK_TASK_QUEUE"],
    )
    try:
        assert await live.visible(f'WorkflowId = "{follow_ups}"') == [follow_ups]

        code, out, _ = await live.cli("ack", "-d", deployment, "first_hour", "--as", "qa-dri")
        assert code == 1 and out.startswith("rejected: qa-dri may not acknowledge Immediate")
        code, out, _ = await live.cli(
            "ack", "-d", deployment, "short_term_24h", "--as", "dri-backend"
        )
        assert code == 1 and "is not due before" in out

        code, out, err = await live.cli(
            "ack", "-d", deployment, "first_hour", "--as", "dri-backend", "--note", "debrief held"
        )
        assert code == 0, err
        assert out.strip() == "accepted: Immediate actions (first hour): acknowledged"
        code, out, _ = await live.cli(
            "ack", "-d", deployment, "first_hour", "--as", "dri-search", "--format", "json"
        )
        answer = json.loads(out)
        assert code == 1 and answer["workflow_id"] == follow_ups
        assert answer["accepted"] is False and "already done (dri-backend)" in answer["message"]

        code, _, err = await live.cli(
            "ack", "-d", f"{deployment}x", "first_hour", "--as", "dri-backend"
        )
        assert code == 2 and f"no follow-ups for deployment '{deployment}x'" in err
        assert len(err.strip().splitlines()) == 1
    finally:
        with contextlib.suppress(Exception):
            await handle.terminate("test finished")


@pytest.mark.timeout(60)
async def test_ack_and_comms_on_a_running_rollback(live: Live, policy: Policy) -> None:
    live.standins.sla_breach = True  # the customer notification waits for its approval
    live.standins.unhealthy = True  # Step 3 fails: an escalation to acknowledge
    deployment = f"search-{uuid4().hex[:8]}"
    await operations.send_trigger(
        live.client,
        task_queue=live.env["ROLLBACK_TASK_QUEUE"],
        policy=policy,
        deployment=deployment,
        event=TriggerEvent(trigger="error_rate", source="test"),
    )
    try:
        status = await live.until_state(deployment, "following_up")
        for _ in range(100):
            if status["comms"] and status["follow_ups_id"]:
                break
            await asyncio.sleep(0.1)
            status = await live.status(deployment)
        assert str(status["follow_ups_id"]).startswith(f"follow-ups-{deployment}-")

        # Found through the rollback's status: the follow-up exists but is not due yet.
        code, out, _ = await live.cli(
            "ack", "-d", deployment, "first_hour", "--as", "dri-backend", "--format", "json"
        )
        answer = json.loads(out)
        assert code == 1 and answer["workflow_id"] == status["follow_ups_id"]
        assert "is not due before" in answer["message"]

        # At 25 % the Sprint PM holds the business-impact authority.
        code, out, _ = await live.cli("comms", "-d", deployment, "--approve", "--as", "eng-manager")
        assert code == 1 and out.startswith("rejected: ") and "needs Sprint PM" in out
        code, out, err = await live.cli(
            "comms", "-d", deployment, "--approve", "--as", "sprint-pm", "--note", "wording ok"
        )
        assert code == 0, err
        assert out.startswith("accepted: Customer Comms wording approved by Sprint PM")
        for _ in range(100):
            status = await live.status(deployment)
            if status["comms"][0]["sent"]:  # type: ignore[index]
                break
            await asyncio.sleep(0.1)
        assert status["comms"][0]["outcome"] == "approved"  # type: ignore[index]
        assert live.standins.count("send_audience") == 1

        # The failed Step 3 joined the rollback's one incident: acknowledging it by that
        # reason's key, a role of the escalation path stops the incident's climb.
        key = "failed:health_validation"
        code, out, _ = await live.cli("ack", "-d", deployment, "-e", key, "--as", "qa-dri")
        assert code == 1 and out.startswith("rejected: ") and "escalation path" in out
        code, out, err = await live.cli("ack", "-d", deployment, "-e", key, "--as", "sre-oncall")
        assert code == 0, err
        assert out.startswith(f"accepted: acknowledged the incident of {deployment}")
        acked = (await live.status(deployment))["escalations"]
        assert [e["acked_by"] for e in acked] == ["sre-oncall"]  # type: ignore[union-attr,index]
        assert [e["key"] for e in acked] == ["incident"]  # type: ignore[index]

        # An unknown deployment is bad input: exit 2, as from every command.
        code, _, err = await live.cli(
            "comms", "-d", f"{deployment}x", "--deny", "--as", "sprint-pm"
        )
        assert code == 2 and f"no rollback is running for deployment '{deployment}x'" in err
    finally:
        with contextlib.suppress(Exception):
            current = await operations.status(live.client, deployment)
            if current.follow_ups_id:
                await live.client.get_workflow_handle(current.follow_ups_id).terminate()
        with contextlib.suppress(Exception):
            await live.client.get_workflow_handle(f"rollback-{deployment}").terminate()
