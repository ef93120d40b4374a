"""Slack's Web API through `slack_sdk` only: post and update messages.

The sync `WebClient` runs in a worker thread (its async twin needs aiohttp). Slack's own errors
are raised as `SlackFailure` with the method, the channel and Slack's error code, so a retry (rate
limit, 5xx) or a loud failure (bad token, unknown channel) follows from it.
"""

from __future__ import annotations

import asyncio
from typing import Any

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError, SlackClientError

from activities.slack_messages import SlackMessage

RETRYABLE = {
    "ratelimited",
    "service_unavailable",
    "request_timeout",
    "internal_error",
    "fatal_error",
}


class SlackFailure(Exception):
    def __init__(self, message: str, retryable: bool) -> None:
        super().__init__(message)
        self.retryable = retryable


class SlackClient:
    def __init__(self, token: str, base_url: str | None = None, timeout: float = 5) -> None:
        self.web = WebClient(
            token=token, base_url=base_url or WebClient.BASE_URL, timeout=int(timeout)
        )

    async def post(self, channel: str, message: SlackMessage) -> str:
        answer = await self._call(
            "chat_postMessage", channel, text=message.text, blocks=message.blocks
        )
        return str(answer.get("ts", ""))

    async def update(self, channel: str, ts: str, message: SlackMessage) -> None:
        await self._call("chat_update", channel, ts=ts, text=message.text, blocks=message.blocks)

    async def _call(self, method: str, channel: str, **kwargs: Any) -> dict[str, Any]:
        try:
            response = await asyncio.to_thread(getattr(self.web, method), channel=channel, **kwargs)
        except SlackApiError as error:
            code = str(error.response.get("error", "unknown_error"))
            status = error.response.status_code
            raise SlackFailure(
                f"Slack {method} to {channel} answered {status} {code}",
                retryable=code in RETRYABLE or status >= 500,
            ) from None
        except (SlackClientError, OSError) as error:
            raise SlackFailure(
                f"Slack {method} to {channel} failed: {error}", retryable=True
            ) from None
        return dict(response.data) if isinstance(response.data, dict) else {}
