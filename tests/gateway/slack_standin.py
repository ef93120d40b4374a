"""A local stand-in for Slack: the Web API (`/api/<method>`) and response URLs, recording calls.

Requests to it are made by `slack_sdk.WebClient(base_url=…/api/)` and by the gateway's replies
to `response_url`, exactly as they would be made to Slack. Slack's failures can be queued in
`errors` (answered in order before anything succeeds again), and `channel_ids` turns a channel
name into the id Slack answers with, as Slack does.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlencode

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from simulator.server import ThreadedServer


@dataclass
class SlackCall:
    method: str
    body: dict[str, Any]
    error: str | None = None
    """Slack's error code when the stand-in failed this call (see `SlackStandIn.errors`)."""
    at: float = field(default_factory=time.monotonic)


@dataclass(frozen=True)
class SlackError:
    """One failed answer: `ratelimited` with 429, `internal_error` with 500, `invalid_auth`
    with 200 (Slack answers most of its errors with HTTP 200 and `ok: false`)."""

    error: str
    status: int = 200
    retry_after: int | None = None


@dataclass
class SlackStandIn:
    calls: list[SlackCall] = field(default_factory=list)
    responses: list[dict[str, Any]] = field(default_factory=list)
    next_ts: int = 1000
    errors: list[SlackError] = field(default_factory=list)
    channel_ids: dict[str, str] = field(default_factory=dict)
    down: bool = False
    """Slack is down: every Web API call is answered 503 until this is cleared."""
    refuse: Callable[[str, dict[str, Any]], bool] | None = None
    """Calls (method, body) answered 503 while this holds: Slack failing for some messages."""
    per_channel: float | None = None
    """Slack's message limit, enforced: this many posts a second per channel (with `burst`
    saved up at most); beyond it, 429 `ratelimited` with `Retry-After: 1`."""
    burst: int = 3
    _buckets: dict[str, tuple[float, float]] = field(default_factory=dict)

    def _limited(self, method: str, body: dict[str, Any]) -> bool:
        if self.per_channel is None or method not in ("chat.postMessage", "chat.update"):
            return False
        channel = str(body.get("channel", ""))
        now = time.monotonic()
        tokens, updated = self._buckets.get(channel, (float(self.burst), now))
        tokens = min(float(self.burst), tokens + (now - updated) * self.per_channel)
        if tokens < 1:
            self._buckets[channel] = (tokens, now)
            return True
        self._buckets[channel] = (tokens - 1, now)
        return False

    def app(self) -> FastAPI:
        app = FastAPI()

        @app.post("/api/{method}")
        async def web_api(method: str, request: Request) -> JSONResponse:
            raw = (await request.body()).decode()
            if request.headers.get("content-type", "").startswith("application/json"):
                body = json.loads(raw or "{}")
            else:
                body = {k: v[0] for k, v in parse_qs(raw).items()}
            refused = self.down or (self.refuse is not None and self.refuse(method, body))
            if not refused and self._limited(method, body):
                self.calls.append(SlackCall(method, body, "ratelimited"))
                return JSONResponse(
                    {"ok": False, "error": "ratelimited"},
                    status_code=429,
                    headers={"Retry-After": "1"},
                )
            if refused or self.errors:
                failure = SlackError("service_unavailable", 503) if refused else self.errors.pop(0)
                self.calls.append(SlackCall(method, body, failure.error))
                headers: dict[str, str] = {}
                if failure.retry_after is not None:
                    headers["Retry-After"] = str(failure.retry_after)
                return JSONResponse(
                    {"ok": False, "error": failure.error},
                    status_code=failure.status,
                    headers=headers,
                )
            problems = message_problems(body) if method in MESSAGE_METHODS else []
            if problems:
                error = (
                    "msg_too_long"
                    if problems == ["text: over 40000 characters"]
                    else (
                        "no_text" if problems == ["neither text nor blocks"] else "invalid_blocks"
                    )
                )
                self.calls.append(SlackCall(method, body, error))
                return JSONResponse({"ok": False, "error": error, "errors": problems})
            self.calls.append(SlackCall(method, body))
            self.next_ts += 1
            channel = body.get("channel", "C0")
            return JSONResponse(
                {
                    "ok": True,
                    "channel": self.channel_ids.get(channel, channel),
                    "ts": body.get("ts") or f"{self.next_ts}.000100",
                }
            )

        @app.post("/response/{key}")
        async def response_url(key: str, request: Request) -> JSONResponse:
            self.responses.append({"key": key, **json.loads(await request.body())})
            return JSONResponse({"ok": True})

        return app

    def method_calls(self, method: str) -> list[dict[str, Any]]:
        """The bodies of the calls of `method` that succeeded (failed ones stay in `calls`)."""
        return [c.body for c in self.calls if c.method == method and c.error is None]


MESSAGE_METHODS = {"chat.postMessage", "chat.update", "chat.postEphemeral"}
BLOCK_TYPES = {"section", "header", "context", "actions", "divider", "rich_text", "image"}


def message_problems(body: dict[str, Any]) -> list[str]:
    """What Slack would refuse in a message, by its published limits: text ≤ 40,000
    characters; ≤ 50 blocks; a section's text ≤ 3,000; a header's plain text ≤ 150; ≤ 10
    context elements; ≤ 25 action elements; a button's text ≤ 75, value ≤ 2,000, action_id ≤
    255."""
    problems: list[str] = []
    blocks = body.get("blocks")
    if isinstance(blocks, str):
        blocks = json.loads(blocks)
    if not body.get("text") and not blocks:
        return ["neither text nor blocks"]
    if len(str(body.get("text") or "")) > 40_000:
        problems.append("text: over 40000 characters")
    blocks = blocks or []
    if len(blocks) > 50:
        problems.append(f"{len(blocks)} blocks: at most 50")
    for i, block in enumerate(blocks):
        kind = block.get("type")
        if kind not in BLOCK_TYPES:
            problems.append(f"block {i}: unknown type {kind!r}")
        text = block.get("text") or {}
        if kind == "section":
            if not (text.get("text") or block.get("fields")):
                problems.append(f"block {i}: section without text")
            if len(text.get("text", "")) > 3000:
                problems.append(f"block {i}: section text {len(text['text'])} > 3000")
        if kind == "header":
            if text.get("type") != "plain_text":
                problems.append(f"block {i}: header text must be plain_text")
            if len(text.get("text", "")) > 150:
                problems.append(f"block {i}: header text {len(text['text'])} > 150")
        if kind == "context" and len(block.get("elements", [])) > 10:
            problems.append(f"block {i}: more than 10 context elements")
        if kind == "actions":
            elements = block.get("elements", [])
            if len(elements) > 25:
                problems.append(f"block {i}: more than 25 elements")
            for element in elements:
                if element.get("type") == "button":
                    if len(element.get("text", {}).get("text", "")) > 75:
                        problems.append(f"block {i}: button text over 75")
                    if len(element.get("value", "")) > 2000:
                        problems.append(f"block {i}: button value over 2000")
                    if len(element.get("action_id", "")) > 255:
                        problems.append(f"block {i}: action_id over 255")
    return problems


class SlackServer(ThreadedServer):
    name = "slack stand-in"

    def __init__(self, standin: SlackStandIn) -> None:
        super().__init__(standin.app())
        self.standin = standin


def signed(secret: str, body: bytes, timestamp: int | None = None) -> dict[str, str]:
    """The headers Slack sends: `v0=` HMAC-SHA256 of `v0:{timestamp}:{body}`."""
    ts = str(int(time.time()) if timestamp is None else timestamp)
    digest = hmac.new(secret.encode(), f"v0:{ts}:".encode() + body, hashlib.sha256).hexdigest()
    return {
        "X-Slack-Request-Timestamp": ts,
        "X-Slack-Signature": f"v0={digest}",
        "Content-Type": "application/x-www-form-urlencoded",
    }


def interaction_body(payload: dict[str, Any]) -> bytes:
    return urlencode({"payload": json.dumps(payload)}).encode()


def click(
    user: str,
    action_id: str,
    deployment: str,
    response_url: str,
    message_ts: str = "1700000000.000100",
    channel: str = "C0SPRINT1",
) -> dict[str, Any]:
    """A `block_actions` payload as Slack sends it for a button click."""
    return {
        "type": "block_actions",
        "user": {"id": user, "username": user.lower(), "team_id": "T0"},
        "api_app_id": "A0",
        "token": "legacy",
        "container": {
            "type": "message",
            "message_ts": message_ts,
            "channel_id": channel,
            "is_ephemeral": False,
        },
        "trigger_id": "1.2.3",
        "team": {"id": "T0", "domain": "lens"},
        "channel": {"id": channel, "name": "sprint-1-channel"},
        "message": {"ts": message_ts, "text": "Decision needed"},
        "response_url": response_url,
        "actions": [
            {
                "action_id": action_id,
                "block_id": "decision",
                "value": deployment,
                "type": "button",
                "action_ts": f"{time.time():.6f}",
            }
        ],
    }
