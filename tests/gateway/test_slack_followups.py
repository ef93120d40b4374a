"""Follow-up Acknowledge and wording Approve/Hold buttons: signed clicks through the gateway to
the follow-ups and rollback workflows (authority, double clicks, no worker running)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any, Literal, TypeVar
from uuid import uuid4

from temporalio.client import WorkflowHandle
from temporalio.testing import ActivityEnvironment

from activities import slack_messages
from activities.models import (
    CommsApprovalRequestInput,
    FollowUpNoticeInput,
    PersonRef,
    RoleHolders,
    StepContext,
)
from activities.notify import ConsoleNotifier
from activities.procedure import RollbackActivities
from activities.slack_notifier import SlackNotifier
from client import operations
from config.settings import Settings
from contract.follow_ups import FollowUpsInput
from contract.rollback import STATUS_QUERY, RollbackOptions, TriggerEvent
from gateway import slack_handler
from runbook.status import FollowUpsStatus
from tests.gateway.conftest import Gateway
from tests.gateway.slack_standin import SlackServer, click
from tests.gateway.test_slack import post_click
from workflows.follow_ups import FollowUpsWorkflow

T = TypeVar("T")
QA, DRI, EM, PM, STRANGER = "U0QADRI01", "U0DRISRCH", "U0ENGMGR1", "U0SPRINTPM", "U0NOBODY1"


def buttons(message: slack_messages.SlackMessage) -> dict[str, str]:
    """action_id → value of every button in a built message."""
    return {
        element["action_id"]: element["value"]
        for block in message.blocks
        if block["type"] == "actions"
        for element in block["elements"]
    }


def test_action_ids_match_the_message_builders() -> None:
    assert slack_handler.FOLLOW_UP_ACK == slack_messages.FOLLOW_UP_ACK
    assert slack_handler.ESCALATION_ACK == slack_messages.ESCALATION_ACK
    assert slack_handler.COMMS_ACTIONS == {
        slack_messages.COMMS_APPROVE: "approve",
        slack_messages.COMMS_HOLD: "deny",
    }


def notice(
    kind: Literal["due", "reminder", "done", "missed"] = "due",
    workflow_id: str | None = "follow-ups-search-a-20250101T100000",
) -> FollowUpNoticeInput:
    return FollowUpNoticeInput(
        ctx=StepContext(deployment="search-a", rollback_id="rollback-search-a", channel="#c"),
        follow_up="first_hour",
        name="Immediate actions (first hour)",
        kind=kind,
        actions=["Team Debrief: initial lessons learned discussion"],
        owners=[
            RoleHolders(
                role="sprint_dri",
                role_name="Sprint DRI",
                people=[PersonRef(id="dri-search", name="Sprint DRI (Search)", slack_user_id=DRI)],
            )
        ],
        workflow_id=workflow_id,
    )


async def test_slack_notices_carry_the_buttons_once_per_key(slack: SlackServer) -> None:
    notifier = SlackNotifier.connect("xoxb-test", f"{slack.url}/api/")
    await notifier.follow_up_notice(notice("due"), key="k1")
    await notifier.follow_up_notice(notice("due"), key="k1")  # a retried activity
    await notifier.follow_up_notice(notice("reminder"), key="k2")
    await notifier.follow_up_notice(notice("done"), key="k3")
    drill = notice("due").model_copy(
        update={"ctx": notice().ctx.model_copy(update={"drill": True})}
    )
    await notifier.follow_up_notice(drill, key="k4")
    await notifier.request_comms_approval(
        CommsApprovalRequestInput.model_validate(
            {**comms_request("search-a").model_dump(), "wording": "Line one\nLine two"}
        ),
        key="k5",
    )
    posts = slack.standin.method_calls("chat.postMessage")
    assert len(posts) == 5

    def actions(body: dict[str, Any]) -> list[str]:
        return [
            e["action_id"] for b in body["blocks"] if b["type"] == "actions" for e in b["elements"]
        ]

    due, reminder, done, drilled, comms = posts
    assert actions(due) == actions(reminder) == actions(drilled) == ["follow_up_ack"]
    assert actions(done) == []
    assert f"<@{DRI}>" in due["text"] and "rollback ack -d search-a first_hour" in due["text"]
    assert "reminder: still open" in reminder["text"]
    assert drilled["text"].startswith("[DRILL] ")
    assert actions(comms) == ["comms_approve", "comms_hold"]
    assert comms["blocks"][1]["text"]["text"] == "*To #customer-comms:*\n>Line one\n>Line two"
    assert (
        "Customer Comms message for search-a needs approval by Engineering Manager"
        in (comms["text"])
    )


async def test_the_activity_names_its_follow_ups_workflow_for_the_button() -> None:
    seen: list[FollowUpNoticeInput] = []

    class Recording(ConsoleNotifier):
        async def follow_up_notice(
            self, inp: FollowUpNoticeInput, *, key: str | None = None
        ) -> None:
            seen.append(inp)
            await super().follow_up_notice(inp, key=key)

    recording = Recording()
    acts = RollbackActivities(Settings(_env_file=None), notifier=recording)
    try:
        await ActivityEnvironment().run(acts.follow_up_notice, notice(workflow_id=None))
    finally:
        await acts.aclose()
    [sent] = seen
    assert sent.workflow_id == "test"  # the ActivityEnvironment's workflow id
    assert "Acknowledge: rollback ack -d search-a first_hour --as <id>" in recording.texts()[0]


# --- follow-ups ------------------------------------------------------------------------------


async def start_follow_ups(gw: Gateway) -> tuple[WorkflowHandle[Any, Any], str]:
    """Follow-ups whose first hour is due now (the rollback was 65 minutes ago)."""
    deployment = f"search-{uuid4().hex[:6]}"
    reverted = datetime.now(UTC) - timedelta(minutes=65)
    handle = await gw.client.start_workflow(
        FollowUpsWorkflow.run,
        FollowUpsInput(
            deployment=deployment,
            policy=gw.policy,
            options=RollbackOptions(ui_metadata=False),
            reverted_at=reverted,
            rollback_id=f"rollback-{deployment}",
        ),
        id=f"follow-ups-{deployment}-{reverted:%Y%m%dT%H%M%S}",
        task_queue=gw.settings.task_queue,
    )
    return handle, deployment


async def first_hour_due(handle: WorkflowHandle[Any, Any]) -> None:
    """As in Slack, where the button exists once the due notice went out."""
    await until(lambda: follow_ups_status(handle), lambda s: s.items[0].state == "due")


def ack_button(handle: WorkflowHandle[Any, Any], deployment: str) -> str:
    """The Acknowledge button's value, as the Slack notifier builds it for the due notice."""
    notice = FollowUpNoticeInput(
        ctx=StepContext(deployment=deployment, rollback_id=f"rollback-{deployment}", channel="#c"),
        follow_up="first_hour",
        name="Immediate actions (first hour)",
        kind="due",
        actions=["Team Debrief"],
        owners=[],
        workflow_id=handle.id,
    )
    return buttons(slack_messages.follow_up_notice(notice))[slack_messages.FOLLOW_UP_ACK]


async def follow_ups_status(handle: WorkflowHandle[Any, Any]) -> FollowUpsStatus:
    return await handle.query(STATUS_QUERY, result_type=FollowUpsStatus)


async def test_owner_acknowledges_from_slack_and_a_double_click_counts_once(
    gateway: Gateway,
) -> None:
    handle, deployment = await start_follow_ups(gateway)
    try:
        await first_hour_due(handle)
        value, url = ack_button(handle, deployment), gateway.response_url
        assert await post_click(gateway, click(DRI, "follow_up_ack", value, url)) == 200
        assert await post_click(gateway, click(DRI, "follow_up_ack", value, url)) == 200
        first, second = (await replies(gateway, 2))[:2]
        assert first["text"] == "✅ Immediate actions (first hour): acknowledged"
        assert first["response_type"] == "ephemeral" and second["text"] == first["text"]
        status = await follow_ups_status(handle)
        [first_hour] = [i for i in status.items if i.id == "first_hour"]
        assert first_hour.state == "done" and first_hour.done_by == "dri-search"
        done = [e for e in status.timeline if e.kind == "follow_up_done"]
        assert len(done) == 1 and not [e for e in status.timeline if e.kind == "ack_rejected"]
    finally:
        await handle.terminate("test finished")


async def test_acknowledgement_without_authority_is_explained(gateway: Gateway) -> None:
    handle, deployment = await start_follow_ups(gateway)
    try:
        await first_hour_due(handle)
        value, url = ack_button(handle, deployment), gateway.response_url
        assert await post_click(gateway, click(QA, "follow_up_ack", value, url)) == 200
        assert await post_click(gateway, click(STRANGER, "follow_up_ack", value, url)) == 200
        answers = await replies(gateway, 2)
        [qa] = [a for a in answers if "roster" not in a["text"]]
        [stranger] = [a for a in answers if "roster" in a["text"]]
        assert qa["text"].startswith("⛔") and "may not acknowledge" in qa["text"]
        assert "Sprint DRI" in qa["text"] and qa["response_type"] == "ephemeral"
        assert "not in the rollback roster" in stranger["text"]
        assert "owner's role or by the escalation path" in stranger["text"]
        assert stranger["response_type"] == "ephemeral"
        status = await follow_ups_status(handle)
        assert [i.state for i in status.items if i.id == "first_hour"] == ["due"]
    finally:
        await handle.terminate("test finished")


async def test_a_button_that_names_nothing_is_refused_plainly(gateway: Gateway) -> None:
    url = gateway.response_url
    assert await post_click(gateway, click(DRI, "follow_up_ack", "search-x", url)) == 200
    assert await post_click(gateway, click(EM, "comms_approve", '{"deployment": ""}', url)) == 200
    answers = await replies(gateway, 2)
    assert all("nothing was recorded" in a["text"] for a in answers)


async def test_acknowledgement_while_no_worker_runs_is_stored_and_applied_later(
    gateway_no_worker: Gateway,
) -> None:
    gw = gateway_no_worker
    handle, deployment = await start_follow_ups(gw)
    try:
        async with gw.new_worker():
            await first_hour_due(handle)
        url = gw.response_url
        value = ack_button(handle, deployment)
        assert await post_click(gw, click(DRI, "follow_up_ack", value, url)) == 200
        [reply] = await replies(gw, 1)
        assert "stored durably" in reply["text"] and "first_hour" in reply["text"]
        async with gw.new_worker():
            status = await until(
                lambda: follow_ups_status(handle), lambda s: s.items[0].state == "done"
            )
        assert status.items[0].done_by == "dri-search"
        assert [e.kind for e in status.timeline].count("follow_up_done") == 1
    finally:
        await handle.terminate("test finished")


# --- the customer notification's wording -------------------------------------------------------


async def open_comms(gw: Gateway) -> str:
    """A rollback at 50 % whose customer notification waits for the Engineering Manager."""
    gw.standins.sla_breach = True
    deployment = f"search-{uuid4().hex[:6]}"
    await operations.send_trigger(
        gw.client,
        task_queue=gw.settings.task_queue,
        policy=gw.policy,
        deployment=deployment,
        event=TriggerEvent(trigger="error_rate", source="test"),
    )
    await until(lambda: gw.status(deployment), lambda s: bool(s.comms))
    return deployment


def comms_buttons(deployment: str) -> dict[str, str]:
    message = slack_messages.comms_approval_request(comms_request(deployment))
    assert f"<@{EM}>" in str(message.blocks)
    return buttons(message)


def comms_request(deployment: str) -> CommsApprovalRequestInput:
    return CommsApprovalRequestInput(
        ctx=StepContext(deployment=deployment, rollback_id=f"rollback-{deployment}", channel="#c"),
        audience="customer_comms",
        audience_name="Customer Comms",
        channel="#customer-comms",
        wording="Search was degraded for some users; it is restored.",
        approvers=[
            RoleHolders(
                role="engineering_manager",
                role_name="Engineering Manager",
                people=[PersonRef(id="eng-manager", name="Engineering Manager", slack_user_id=EM)],
            )
        ],
        approver_text="Engineering Manager",
        deadline=datetime.now(UTC) + timedelta(minutes=30),
        default="hold",
    )


async def finish(gw: Gateway, deployment: str) -> None:
    """Terminate the rollback and its follow-ups (found by visibility: no query, no worker)."""
    prefix = f"follow-ups-{deployment}-"
    query = f'WorkflowId STARTS_WITH "{prefix}" AND ExecutionStatus = "Running"'
    with contextlib.suppress(Exception):
        async for wf in gw.client.list_workflows(query):
            await gw.client.get_workflow_handle(wf.id).terminate("test finished")
    with contextlib.suppress(Exception):
        await gw.client.get_workflow_handle(f"rollback-{deployment}").terminate("test finished")


async def test_approve_wording_from_slack_and_a_double_click_counts_once(
    gateway: Gateway,
) -> None:
    deployment = await open_comms(gateway)
    try:
        value, url = comms_buttons(deployment)["comms_approve"], gateway.response_url
        assert await post_click(gateway, click(EM, "comms_approve", value, url)) == 200
        assert await post_click(gateway, click(EM, "comms_approve", value, url)) == 200
        first, second = (await replies(gateway, 2))[:2]
        assert first["text"].startswith("✅") and "approved by Engineering Manager" in first["text"]
        assert second["text"] == first["text"] and first["response_type"] == "ephemeral"
        status = await until(lambda: gateway.status(deployment), lambda s: s.comms[0].sent)
        assert status.comms[0].outcome == "approved"
        assert [e.kind for e in status.timeline].count("comms_approved") == 1
        assert gateway.standins.count("send_audience") == 1
    finally:
        await finish(gateway, deployment)


async def test_hold_from_slack_keeps_the_message(gateway: Gateway) -> None:
    deployment = await open_comms(gateway)
    try:
        value, url = comms_buttons(deployment)["comms_hold"], gateway.response_url
        assert await post_click(gateway, click(EM, "comms_hold", value, url)) == 200
        [reply] = await replies(gateway, 1)
        assert reply["text"].startswith("✅") and "held by Engineering Manager" in reply["text"]
        status = await until(
            lambda: gateway.status(deployment), lambda s: s.comms[0].outcome == "denied"
        )
        assert not status.comms[0].sent
    finally:
        await finish(gateway, deployment)


async def test_wording_approval_without_authority_is_explained(gateway: Gateway) -> None:
    deployment = await open_comms(gateway)
    try:
        value, url = comms_buttons(deployment)["comms_approve"], gateway.response_url
        assert await post_click(gateway, click(PM, "comms_approve", value, url)) == 200
        assert await post_click(gateway, click(STRANGER, "comms_approve", value, url)) == 200
        answers = await replies(gateway, 2)
        [pm] = [a for a in answers if "roster" not in a["text"]]
        [stranger] = [a for a in answers if "roster" in a["text"]]
        assert pm["text"].startswith("⛔") and "needs Engineering Manager" in pm["text"]
        assert "wording is approved by the roles named in the message" in stranger["text"]
        assert {a["response_type"] for a in answers} == {"ephemeral"}
        assert (await gateway.status(deployment)).comms[0].outcome == "pending"
    finally:
        await finish(gateway, deployment)


async def test_wording_approval_while_no_worker_runs_is_stored(
    gateway_no_worker: Gateway,
) -> None:
    gw = gateway_no_worker
    async with gw.new_worker():
        deployment = await open_comms(gw)
        # Nothing in flight when the worker goes: an activity cut off would wait for its
        # start-to-close timeout before running again.
        await until(lambda: gw.status(deployment), lambda s: s.follow_ups_id is not None)
    try:
        value, url = comms_buttons(deployment)["comms_approve"], gw.response_url
        assert await post_click(gw, click(EM, "comms_approve", value, url)) == 200
        [reply] = await replies(gw, 1)
        assert "stored durably" in reply["text"]
        async with gw.new_worker():
            status = await until(lambda: gw.status(deployment), lambda s: s.comms[0].sent)
            assert status.comms[0].decided_by == ["eng-manager"]
            # The update left pending and the stored signal carry one request id: one vote.
            assert [e.kind for e in status.timeline].count("comms_approved") == 1
            assert "comms_rejected" not in [e.kind for e in status.timeline]
            await finish(gw, deployment)  # its status query needs a worker
    finally:
        await finish(gw, deployment)


async def replies(gw: Gateway, count: int, seconds: float = 15) -> list[dict[str, Any]]:
    """The answers posted to response URLs, once there are `count` of them."""
    for _ in range(int(seconds / 0.05)):
        if len(gw.slack.standin.responses) >= count:
            return gw.slack.standin.responses
        await asyncio.sleep(0.05)
    raise AssertionError(f"expected {count} replies, got {gw.slack.standin.responses}")


async def until(
    read: Callable[[], Awaitable[T]], check: Callable[[T], bool], attempts: int = 200
) -> T:
    """Assert eventually: `read()` until `check` holds (not-yet-started reads are retried)."""
    current: T | None = None
    for _ in range(attempts):
        with contextlib.suppress(Exception):
            current = await read()
            if current is not None and check(current):
                return current
        await asyncio.sleep(0.05)
    raise AssertionError(f"condition not met; last: {current}")
