"""The Slack notifier: a rollback's messages in the deployment's channel, through `slack_sdk`.

Progress is a plain `chat.postMessage`; the decision request is a Block Kit message with buttons
(activities/slack_messages.py) that `chat.update` later turns into the outcome, buttons removed;
an escalation mentions the escalation path's people; a follow-up notice carries an Acknowledge
button, a wording approval request "Approve wording" and "Hold". The sync `WebClient` runs in a
worker thread (its async twin needs aiohttp).

Slack's errors become `ApplicationError`s: a rate limit, a 5xx or a dropped connection is
retryable (the activity retries, after Slack's `Retry-After` when it sends one); a bad token, an
unknown channel or any other refusal is not, and says what to fix.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import TYPE_CHECKING, Any, NamedTuple

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError, SlackClientError
from slack_sdk.models.blocks import ContextBlock, MarkdownTextObject
from temporalio.exceptions import ApplicationError

from activities import mrkdwn, slack_messages
from activities.channel_pace import ChannelPace
from activities.models import (
    CommsApprovalRequestInput,
    DecisionClosedInput,
    DecisionMessage,
    DecisionRequestInput,
    DecisionUpdateInput,
    EscalationInput,
    EscalationResult,
    FollowUpNoticeInput,
    StepContext,
)
from activities.notify import ConsoleNotifier, Notifier, people_of, prefix
from activities.slack_messages import SlackMessage

if TYPE_CHECKING:
    from config.settings import Settings

log = logging.getLogger("rollback.notify")

UNAVAILABLE = "SlackUnavailable"
"""Error type of a failure a retry may cure (rate limit, 5xx, network)."""
REFUSED = "SlackRefused"
"""Error type of a refusal a retry cannot cure (token, channel, scope, message)."""

HINTS = {
    "invalid_auth": "check ROLLBACK_SLACK_BOT_TOKEN (the app's xoxb- Bot User OAuth Token)",
    "not_authed": "set ROLLBACK_SLACK_BOT_TOKEN (the app's xoxb- Bot User OAuth Token)",
    "token_revoked": "reinstall the Slack app and update ROLLBACK_SLACK_BOT_TOKEN",
    "account_inactive": "reinstall the Slack app and update ROLLBACK_SLACK_BOT_TOKEN",
    "channel_not_found": "check the channel in the policy; a private channel must invite the app",
    "not_in_channel": "invite the app to the channel (/invite @<app>)",
    "is_archived": "the channel is archived: point the policy at a live channel",
    "missing_scope": "add the chat:write scope to the app and reinstall it",
}

# Slack error codes that a later attempt can get past.
RETRYABLE = {
    "ratelimited",
    "service_unavailable",
    "request_timeout",
    "internal_error",
    "fatal_error",
}


class Posted(NamedTuple):
    channel: str
    """The channel's id as Slack answers it (`chat.update` needs the id, not `#name`)."""
    ts: str


class SlackNotifier:
    """`Notifier` on Slack's Web API.

    Idempotency: a `key` seen before is not sent again; the key's (channel, ts) is kept in a
    bounded in-memory map, as `ConsoleNotifier` does. Slack's Web API has no idempotency key of
    its own, so this is best effort: after a worker restart the map is empty and a retried
    activity may post its message a second time.
    """

    REMEMBERED_KEYS = 10_000

    def __init__(self, web: WebClient, pace: ChannelPace | None = None) -> None:
        self.web = web
        self.pace = pace or ChannelPace(rate=1.0, burst=3)
        self._sent: OrderedDict[str, Posted] = OrderedDict()
        self._sending: dict[str, asyncio.Future[Posted]] = {}

    @classmethod
    def connect(
        cls,
        token: str,
        base_url: str | None = None,
        timeout: int = 5,
        pace: ChannelPace | None = None,
    ) -> SlackNotifier:
        url = base_url or WebClient.BASE_URL
        return cls(WebClient(token=token, base_url=url.rstrip("/") + "/", timeout=timeout), pace)

    async def post(self, channel: str, text: str, *, key: str | None = None) -> str | None:
        posted = await self._once(key, lambda: self._post(channel, text))
        return posted.ts

    async def post_document(
        self, channel: str, title: str, text: str, *, key: str | None = None, more: str = ""
    ) -> None:
        """A header and mrkdwn sections, each within Slack's limits, with a text fallback."""
        fallback, blocks = mrkdwn.sections(title, text, more)
        message = SlackMessage(text=fallback, blocks=blocks)
        await self._once(key, lambda: self._post(channel, message))

    async def request_decision(
        self, inp: DecisionRequestInput, *, key: str | None = None
    ) -> DecisionMessage:
        message = drill_marked(slack_messages.decision_request(inp), inp.ctx)
        posted = await self._once(key, lambda: self._post(inp.ctx.channel, message))
        return DecisionMessage(channel=posted.channel, ts=posted.ts)

    async def close_decision(self, inp: DecisionClosedInput, *, key: str | None = None) -> None:
        """The request's own message becomes the outcome; without one, the outcome is posted."""
        message = drill_marked(slack_messages.decision_outcome(inp), inp.ctx)
        request = inp.message
        if request is not None and request.ts:
            channel, ts = request.channel, request.ts
            await self._once(key, lambda: self._update(channel, ts, message))
        else:
            channel = request.channel if request is not None else inp.ctx.channel
            await self._once(key, lambda: self._post(channel, message))

    async def update_decision(self, inp: DecisionUpdateInput, *, key: str | None = None) -> None:
        """The request's own message shows the new deadline, buttons kept."""
        message = drill_marked(slack_messages.decision_request(inp.request, inp.note), inp.ctx)
        if inp.message is not None and inp.message.ts:
            channel, ts = inp.message.channel, inp.message.ts
            await self._once(key, lambda: self._update(channel, ts, message))
        else:
            await self._once(key, lambda: self._post(inp.ctx.channel, message))

    async def tell_accountable(self, inp: EscalationInput, *, key: str | None = None) -> None:
        message = drill_marked(slack_messages.accountable(inp), inp.ctx)
        await self._once(key, lambda: self._post(inp.ctx.channel, message))

    async def escalate(self, inp: EscalationInput, *, key: str | None = None) -> EscalationResult:
        """The incident's first message, or a reply in its thread (`inp.thread_ts`)."""
        built = slack_messages.escalation(inp)
        # Mentioned in the fallback too: it is the text Slack's notifications show.
        text = f"{built.text}\n{slack_messages.mentions(inp.holders) or 'nobody on the roster'}"
        message = drill_marked(SlackMessage(text=text, blocks=built.blocks), inp.ctx)
        posted = await self._once(
            key, lambda: self._post(inp.ctx.channel, message, thread_ts=inp.thread_ts)
        )
        return EscalationResult(notified=people_of(inp.holders), ts=inp.thread_ts or posted.ts)

    async def follow_up_notice(self, inp: FollowUpNoticeInput, *, key: str | None = None) -> None:
        """With an Acknowledge button while the follow-up is open."""
        message = drill_marked(slack_messages.follow_up_notice(inp), inp.ctx)
        await self._once(key, lambda: self._post(inp.ctx.channel, message))

    async def request_comms_approval(
        self, inp: CommsApprovalRequestInput, *, key: str | None = None
    ) -> None:
        """In the deployment's channel, with "Approve wording" and "Hold" buttons."""
        message = drill_marked(slack_messages.comms_approval_request(inp), inp.ctx)
        await self._once(key, lambda: self._post(inp.ctx.channel, message))

    async def aclose(self) -> None:
        return None  # the WebClient holds no connection between calls

    # --- sending once ---------------------------------------------------------------------

    async def _once(self, key: str | None, send: Callable[[], Awaitable[Posted]]) -> Posted:
        if key is None:
            return await send()
        if key in self._sent:
            return self._sent[key]
        # A timed-out attempt is cancelled, but its thread may still reach Slack: the retry
        # waits for that same send instead of starting a second one.
        sending = self._sending.get(key)
        if sending is None:
            sending = asyncio.ensure_future(self._remember(key, send))
            sending.add_done_callback(_retrieve)
            self._sending[key] = sending
        return await asyncio.shield(sending)

    async def _remember(self, key: str, send: Callable[[], Awaitable[Posted]]) -> Posted:
        try:
            posted = await send()
        finally:
            del self._sending[key]
        self._sent[key] = posted
        while len(self._sent) > self.REMEMBERED_KEYS:
            self._sent.popitem(last=False)
        return posted

    # --- Slack's Web API ------------------------------------------------------------------

    async def _post(
        self, channel: str, message: str | SlackMessage, thread_ts: str | None = None
    ) -> Posted:
        if isinstance(message, str):
            fields: dict[str, Any] = {"text": message}
        else:
            fields = {"text": message.text, "blocks": message.blocks}
        if thread_ts:
            fields["thread_ts"] = thread_ts
        answer = await self._call("chat.postMessage", self.web.chat_postMessage, channel, fields)
        posted = Posted(str(answer.get("channel") or channel), str(answer.get("ts", "")))
        log.info("%s %s: %s", channel, posted.ts, str(fields["text"]).replace("\n", "\n    "))
        return posted

    async def _update(self, channel: str, ts: str, message: SlackMessage) -> Posted:
        fields = {"ts": ts, "text": message.text, "blocks": message.blocks}
        answer = await self._call("chat.update", self.web.chat_update, channel, fields)
        posted = Posted(str(answer.get("channel") or channel), str(answer.get("ts") or ts))
        log.info("%s %s updated: %s", channel, ts, message.text)
        return posted

    async def _call(
        self, method: str, call: Callable[..., Any], channel: str, fields: dict[str, Any]
    ) -> dict[str, Any]:
        await self.pace.turn(channel)  # Slack's limit is per channel, whoever posts
        try:
            response = await asyncio.to_thread(call, channel=channel, **fields)
        except SlackApiError as error:
            failure = slack_error(method, channel, error)
            if error.response.status_code == 429:
                later = failure.next_retry_delay or timedelta(seconds=1)
                self.pace.hold(channel, later.total_seconds())
            raise failure from None
        except (SlackClientError, OSError) as error:
            raise ApplicationError(
                f"Slack {method} to {channel} failed: {error}; retrying", type=UNAVAILABLE
            ) from None
        return dict(response.data) if isinstance(response.data, dict) else {}


def slack_error(method: str, channel: str, error: SlackApiError) -> ApplicationError:
    status = error.response.status_code
    code = str(error.response.get("error") or "unknown_error")[:200]
    if status == 429 or status >= 500 or code in RETRYABLE:
        return ApplicationError(
            f"Slack {method} to {channel}: {code} (HTTP {status}); retrying",
            type=UNAVAILABLE,
            next_retry_delay=_retry_after(error.response.headers),
        )
    hint = HINTS.get(code, "see https://api.slack.com/methods/" + method)
    return ApplicationError(
        f"Slack refused {method} to {channel}: {code} (HTTP {status}); {hint}",
        type=REFUSED,
        non_retryable=True,
    )


def _retry_after(headers: Any) -> timedelta | None:
    value = (headers or {}).get("Retry-After") or (headers or {}).get("retry-after")
    try:
        return timedelta(seconds=float(value)) if value is not None else None
    except ValueError:
        return None


def _retrieve(future: asyncio.Future[Posted]) -> None:
    """Mark the failure of a send nobody awaits any more (its activity was cancelled) as seen."""
    if not future.cancelled():
        future.exception()


def drill_marked(message: SlackMessage, ctx: StepContext) -> SlackMessage:
    """A drill's message says so at its top and in its fallback text."""
    if not ctx.drill:
        return message
    banner = ContextBlock(
        elements=[MarkdownTextObject(text=f"*{prefix(ctx).strip()}* rollback drill: a rehearsal")]
    )
    return SlackMessage(text=prefix(ctx) + message.text, blocks=[banner.to_dict(), *message.blocks])


def notifier_from_settings(settings: Settings) -> Notifier:
    """Slack when `ROLLBACK_SLACK_BOT_TOKEN` is set (at `ROLLBACK_SLACK_API_URL` when that is
    set too); otherwise the console notifier, whose messages go to the log."""
    if not settings.slack_bot_token:
        return ConsoleNotifier()
    log.info("messages go to Slack at %s", settings.slack_api_url or WebClient.BASE_URL)
    pace = ChannelPace(rate=settings.slack_rate, burst=settings.slack_burst)
    return SlackNotifier.connect(settings.slack_bot_token, settings.slack_api_url, pace=pace)
