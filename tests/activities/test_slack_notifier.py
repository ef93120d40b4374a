"""The Slack notifier against a local stand-in of Slack's Web API, through slack_sdk's WebClient."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from temporalio.exceptions import ApplicationError

from activities import mrkdwn
from activities.channel_pace import ChannelPace
from activities.models import (
    DecisionClosedInput,
    DecisionMessage,
    DecisionRequestInput,
    DecisionUpdateInput,
    EscalationInput,
    PersonRef,
)
from activities.notify import ConsoleNotifier
from activities.procedure import RollbackActivities
from activities.slack_messages import APPROVE, DENY, ESCALATION_ACK, INVESTIGATING, SlackMessage
from activities.slack_notifier import SlackNotifier, notifier_from_settings
from config.settings import Settings
from tests.activities.helpers import ctx, holders
from tests.gateway.slack_standin import SlackError, SlackServer, SlackStandIn

CHANNEL, CHANNEL_ID = "#sprint-1-channel", "C0SPRINT1"
DEADLINE = datetime(2025, 9, 8, 16, 20, 0, tzinfo=UTC)


@pytest.fixture
async def slack() -> AsyncIterator[SlackServer]:
    async with SlackServer(SlackStandIn(channel_ids={CHANNEL: CHANNEL_ID})) as server:
        yield server


@pytest.fixture
def notifier(slack: SlackServer) -> SlackNotifier:
    return SlackNotifier.connect("xoxb-test", f"{slack.url}/api/")


def request(drill: bool = False, can_investigate: bool = True) -> DecisionRequestInput:
    return DecisionRequestInput(
        ctx=ctx("search-a", drill=drill),
        trigger="gate_failure",
        trigger_name="Trigger 4: Success Gate Failure",
        phase=25,
        reason="p95 gate failed",
        evidence={"p95_latency_ms": "412"},
        links=["https://grafana.example/d/canary"],
        approvers=[["sprint_dri"]],
        approver_text="Sprint DRI",
        deciders=[holders("sprint_dri", "Sprint DRI", "ann", "bob")],
        deadline=DEADLINE,
        default_action="rollback",
        can_investigate=can_investigate,
    )


def closed(message: DecisionMessage | None, drill: bool = False) -> DecisionClosedInput:
    return DecisionClosedInput(
        ctx=ctx("search-a", drill=drill),
        message=message,
        outcome="rollback approved",
        decided_by=["ann"],
        at=DEADLINE - timedelta(minutes=1),
    )


def escalation() -> EscalationInput:
    return EscalationInput(
        ctx=ctx("search-a"),
        reason="Step 1: Emergency Stop missed its budget of 10s; still retrying",
        holders=[holders("sre_oncall", "SRE On-call", "pager"), holders("vp", "VP Eng", "vera")],
    )


def posts(slack: SlackServer) -> list[dict[str, Any]]:
    return slack.standin.method_calls("chat.postMessage")


def buttons(body: dict[str, Any]) -> list[dict[str, Any]]:
    return [e for b in body["blocks"] if b["type"] == "actions" for e in b["elements"]]


async def test_decision_request_is_block_kit_with_fallback_and_buttons(
    slack: SlackServer, notifier: SlackNotifier
) -> None:
    message = await notifier.request_decision(request(), key="k-request")
    [body] = posts(slack)
    assert body["channel"] == CHANNEL
    assert message == DecisionMessage(channel=CHANNEL_ID, ts=message.ts) and message.ts
    assert body["text"].startswith("Rollback decision needed for search-a")
    assert "16:20:00 UTC, the rollback starts" in body["text"]
    approve, deny, investigating = buttons(body)
    assert [approve["action_id"], deny["action_id"], investigating["action_id"]] == [
        APPROVE,
        DENY,
        INVESTIGATING,
    ]
    assert approve["text"]["text"] == "Approve rollback" and approve["style"] == "danger"
    assert approve["confirm"]["confirm"]["text"] == "Roll back"
    assert deny["text"]["text"] == "Deny — continue canary"
    rendered = str(body["blocks"])
    assert "<@UANN>" in rendered and "<@UBOB>" in rendered and "p95_latency_ms" in rendered

    await notifier.request_decision(request(can_investigate=False), key="k-no-extension")
    assert [b["action_id"] for b in buttons(posts(slack)[1])] == [APPROVE, DENY]


async def test_close_decision_updates_the_same_message_without_buttons(
    slack: SlackServer, notifier: SlackNotifier
) -> None:
    message = await notifier.request_decision(request(), key="k-request")
    await notifier.close_decision(closed(message), key="k-close")
    [update] = slack.standin.method_calls("chat.update")
    assert (update["channel"], update["ts"]) == (CHANNEL_ID, message.ts)
    assert "rollback approved" in update["text"] and "by ann, 16:19:00 UTC" in update["text"]
    assert not buttons(update)
    assert "Decided by ann" in str(update["blocks"])
    assert len(posts(slack)) == 1


async def test_close_decision_without_a_posted_request_posts_the_outcome(
    slack: SlackServer, notifier: SlackNotifier
) -> None:
    await notifier.close_decision(closed(DecisionMessage(channel=CHANNEL)), key="k-close")
    [body] = posts(slack)
    assert body["channel"] == CHANNEL and "rollback approved" in body["text"]
    assert slack.standin.method_calls("chat.update") == []


async def test_a_repeated_key_sends_once(slack: SlackServer, notifier: SlackNotifier) -> None:
    first = await notifier.post(CHANNEL, "Phase 1 started", key="k-progress")
    again = await notifier.post(CHANNEL, "Phase 1 started", key="k-progress")
    both = await asyncio.gather(*(notifier.post(CHANNEL, "Phase 2", key="k-2") for _ in "ab"))
    assert first == again and both[0] == both[1]
    assert [b["text"] for b in posts(slack)] == ["Phase 1 started", "Phase 2"]
    assert "blocks" not in posts(slack)[0]  # progress is plain text

    message = await notifier.request_decision(request(), key="k-request")
    assert await notifier.request_decision(request(), key="k-request") == message
    await notifier.escalate(escalation(), key="k-escalate")
    await notifier.escalate(escalation(), key="k-escalate")
    await notifier.close_decision(closed(message), key="k-close")
    await notifier.close_decision(closed(message), key="k-close")
    assert len(posts(slack)) == 4 and len(slack.standin.method_calls("chat.update")) == 1

    await notifier.post(CHANNEL, "no key")
    await notifier.post(CHANNEL, "no key")
    assert len(posts(slack)) == 6


async def test_escalation_mentions_the_escalation_path(
    slack: SlackServer, notifier: SlackNotifier
) -> None:
    told = await notifier.escalate(escalation(), key="k-escalate")
    assert told.notified == ["pager", "vera"] and told.ts
    [body] = posts(slack)
    assert body["channel"] == CHANNEL
    assert "Step 1: Emergency Stop missed its budget" in body["text"]
    for where in (body["text"], str(body["blocks"])):
        assert "SRE On-call: <@UPAGER>" in where and "VP Eng: <@UVERA>" in where


async def test_a_drill_is_marked_on_every_message(
    slack: SlackServer, notifier: SlackNotifier
) -> None:
    message = await notifier.request_decision(request(drill=True), key="k-request")
    await notifier.close_decision(closed(message, drill=True), key="k-close")
    escalate = escalation().model_copy(update={"ctx": ctx("search-a", drill=True)})
    await notifier.escalate(escalate, key="k-escalate")
    [update] = slack.standin.method_calls("chat.update")
    for body in (*posts(slack), update):
        assert body["text"].startswith("[DRILL] ")
        assert "[DRILL]* rollback drill" in str(body["blocks"][0])


@pytest.mark.parametrize(
    ("error", "hint"),
    [
        ("invalid_auth", "ROLLBACK_SLACK_BOT_TOKEN"),
        ("channel_not_found", "check the channel in the policy"),
        ("not_in_channel", "invite the app to the channel"),
    ],
)
async def test_a_refusal_is_not_retryable_and_says_what_to_fix(
    slack: SlackServer, notifier: SlackNotifier, error: str, hint: str
) -> None:
    slack.standin.errors.append(SlackError(error))
    with pytest.raises(ApplicationError) as raised:
        await notifier.request_decision(request(), key="k-request")
    assert raised.value.non_retryable and raised.value.type == "SlackRefused"
    assert f"chat.postMessage to {CHANNEL}: {error}" in str(raised.value)
    assert hint in str(raised.value)


@pytest.mark.parametrize(
    ("answer", "delay"),
    [
        (SlackError("ratelimited", status=429, retry_after=3), timedelta(seconds=3)),
        (SlackError("internal_error", status=500), None),
        (SlackError("service_unavailable", status=503), None),
    ],
)
async def test_rate_limit_and_server_errors_are_retryable(
    slack: SlackServer, notifier: SlackNotifier, answer: SlackError, delay: timedelta | None
) -> None:
    slack.standin.errors.append(answer)
    with pytest.raises(ApplicationError) as raised:
        await notifier.post(CHANNEL, "Phase 1 started", key="k-progress")
    assert not raised.value.non_retryable and raised.value.type == "SlackUnavailable"
    assert raised.value.next_retry_delay == delay
    assert answer.error in str(raised.value) and CHANNEL in str(raised.value)
    # The retry of the activity (same key) posts, once.
    assert await notifier.post(CHANNEL, "Phase 1 started", key="k-progress")
    assert await notifier.post(CHANNEL, "Phase 1 started", key="k-progress")
    assert len(posts(slack)) == 1 and len(slack.standin.calls) == 2


async def test_a_retry_after_holds_every_post_to_the_channel(slack: SlackServer) -> None:
    """Slack's 429 met by one post holds the next post to the channel (another message, from
    another activity of the same worker) until Retry-After has passed: it is not refused."""
    slack.standin.per_channel, slack.standin.burst = 1.0, 1
    notifier = SlackNotifier.connect("xoxb-test", f"{slack.url}/api/", pace=ChannelPace(0, 1))
    await notifier.post(CHANNEL, "first", key="k-1")
    with pytest.raises(ApplicationError) as raised:
        await notifier.post(CHANNEL, "second", key="k-2")  # within the second: refused
    assert raised.value.next_retry_delay == timedelta(seconds=1)
    waited = await notifier.pace.turn(CHANNEL)
    assert waited > 0  # held by the Retry-After the other post met
    await notifier.post(CHANNEL, "third", key="k-3")
    assert [c.error for c in slack.standin.calls] == [None, "ratelimited", None]
    assert [b["text"] for b in posts(slack)] == ["first", "third"]


async def test_slack_out_of_reach_is_retryable() -> None:
    notifier = SlackNotifier.connect("xoxb-test", "http://127.0.0.1:9/api/", timeout=1)
    with pytest.raises(ApplicationError) as raised:
        await notifier.post(CHANNEL, "Phase 1 started")
    assert not raised.value.non_retryable and CHANNEL in str(raised.value)


async def test_the_factory_picks_slack_when_a_bot_token_is_set(slack: SlackServer) -> None:
    console = Settings(_env_file=None, slack_bot_token=None)  # type: ignore[call-arg]
    assert isinstance(notifier_from_settings(console), ConsoleNotifier)
    with_slack = Settings(
        _env_file=None,  # type: ignore[call-arg]
        slack_bot_token="xoxb-test",
        slack_api_url=f"{slack.url}/api",  # the trailing slash is added
    )
    notifier = notifier_from_settings(with_slack)
    assert isinstance(notifier, SlackNotifier)
    assert notifier.web.base_url == f"{slack.url}/api/"
    await notifier.post(CHANNEL, "hello")
    assert [b["text"] for b in posts(slack)] == ["hello"]

    acts = RollbackActivities(with_slack)
    try:
        assert isinstance(acts.notifier, SlackNotifier)
        assert acts.stakeholders.notifier is acts.notifier
    finally:
        await acts.aclose()
    acts = RollbackActivities(console)
    try:
        assert isinstance(acts.notifier, ConsoleNotifier)
    finally:
        await acts.aclose()


# --- issue 11: Slack done the Slack way -------------------------------------------------------


async def test_the_deciders_are_mentioned_with_their_names(
    slack: SlackServer, notifier: SlackNotifier
) -> None:
    message = await notifier.request_decision(request(), key="k-request")
    decided = closed(message).model_copy(
        update={"deciders": [PersonRef(id="ann", name="Ann Lee", slack_user_id="UANN")]}
    )
    await notifier.close_decision(decided, key="k-close")
    [update] = slack.standin.method_calls("chat.update")
    assert "Decided by <@UANN> Ann Lee at" in str(update["blocks"])
    assert "by Ann Lee, 16:19:00 UTC" in update["text"]


async def test_an_expired_window_says_nobody_decided(
    slack: SlackServer, notifier: SlackNotifier
) -> None:
    message = await notifier.request_decision(request(), key="k-request")
    expired = closed(message).model_copy(
        update={
            "outcome": "no decision by 16:20 UTC — default applied: rollback",
            "decided_by": [],
        }
    )
    await notifier.close_decision(expired, key="k-close")
    [update] = slack.standin.method_calls("chat.update")
    assert update["text"] == (
        "Rollback decision for search-a: no decision by 16:20 UTC — default applied: rollback"
    )
    assert "approved" not in str(update["blocks"]) and "Closed at" in str(update["blocks"])


async def test_an_extension_updates_the_channel_message_deadline(
    slack: SlackServer, notifier: SlackNotifier
) -> None:
    message = await notifier.request_decision(request(), key="k-request")
    later = request().model_copy(update={"deadline": DEADLINE + timedelta(minutes=10)})
    note = "Ann: investigating: deadline now 16:30:00 UTC"
    await notifier.update_decision(
        DecisionUpdateInput(request=later, message=message, note=note), key="k-extend"
    )
    [update] = slack.standin.method_calls("chat.update")
    assert (update["channel"], update["ts"]) == (CHANNEL_ID, message.ts)
    assert "16:30:00 UTC" in update["text"] and note in update["text"]
    assert [b["action_id"] for b in buttons(update)] == [APPROVE, DENY, INVESTIGATING]
    assert len(posts(slack)) == 1


async def test_a_climbing_escalation_carries_its_acknowledge_button(
    slack: SlackServer, notifier: SlackNotifier
) -> None:
    staged = escalation().model_copy(
        update={
            "key": "budget:emergency_stop",
            "stage_text": "not acknowledged within 5m: Engineering Manager now",
            "holders": [holders("engineering_manager", "Engineering Manager", "em")],
        }
    )
    await notifier.escalate(staged, key="k-staged")
    [body] = posts(slack)
    [ack] = buttons(body)
    assert ack["action_id"] == ESCALATION_ACK
    assert json.loads(ack["value"]) == {"deployment": "search-a", "key": "budget:emergency_stop"}
    rendered = str(body["blocks"])
    assert "Engineering Manager: <@UEM> Em" in rendered
    assert "not acknowledged within 5m: Engineering Manager now" in rendered
    assert "--escalation budget:emergency_stop" in rendered


async def test_the_accountable_person_is_mentioned(
    slack: SlackServer, notifier: SlackNotifier
) -> None:
    told = EscalationInput(
        ctx=ctx("search-a"),
        reason="automatic rollback of search-a: Trigger 4 at 50%; the plan makes Engineering "
        "Manager accountable",
        holders=[holders("engineering_manager", "Engineering Manager", "em")],
    )
    await notifier.tell_accountable(told, key="k-accountable")
    [body] = posts(slack)
    assert "Accountable: Engineering Manager: <@UEM> Em" in body["text"]


async def test_a_long_document_is_split_within_slacks_limits(
    slack: SlackServer, notifier: SlackNotifier
) -> None:
    markdown = "\n".join(
        f"## Issue {i}\n\n- [ ] **fix** issue {i}: " + "word " * 150 for i in range(300)
    )
    text = mrkdwn.from_markdown(markdown)
    await notifier.post_document(
        CHANNEL, "Recovery plan: search-a " + "x" * 200, text, key="k-doc", more="`rollback report`"
    )
    [body] = posts(slack)  # the stand-in refuses anything past Slack's limits
    blocks = body["blocks"]
    assert len(blocks) == 50
    assert blocks[0]["type"] == "header" and len(blocks[0]["text"]["text"]) <= 150
    assert all(len(b["text"]["text"]) <= 3000 for b in blocks if b["type"] == "section")
    assert "more section(s) left out: `rollback report`" in str(blocks[-1])
    assert "**" not in str(blocks) and "- [ ]" not in str(blocks) and "##" not in str(blocks)
    assert len(body["text"]) <= 3000


async def test_the_standin_refuses_what_slack_would(
    slack: SlackServer, notifier: SlackNotifier
) -> None:
    too_long = [{"type": "section", "text": {"type": "mrkdwn", "text": "x" * 3001}}]
    with pytest.raises(ApplicationError) as refused:
        await notifier._post(CHANNEL, SlackMessage(text="t", blocks=too_long))
    assert refused.value.non_retryable and "invalid_blocks" in refused.value.message
