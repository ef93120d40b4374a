"""The gateway's HTTP app: /healthz, alert webhooks and Slack, nothing else."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs

from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from client import answers
from config.settings import Settings
from gateway.alert_routes import alerts_router
from gateway.metrics import GatewayMetrics
from gateway.pagerduty_routes import pagerduty_router
from gateway.slack_handler import BadSlackRequest, Handled, SlackHandler
from gateway.temporal_link import TemporalLink
from runbook.policy import Policy

log = logging.getLogger("gateway")


class Health(BaseModel):
    ok: bool
    temporal: str
    address: str


class Readiness(BaseModel):
    ok: bool
    temporal: str
    workers: str


def create_app(settings: Settings, policy: Policy, link: TemporalLink | None = None) -> FastAPI:
    link = link or TemporalLink(settings)
    slack = SlackHandler(settings, policy, link)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        yield
        await slack.http.aclose()

    app = FastAPI(
        lifespan=lifespan,
        title="Rollback gateway",
        description="Alert webhooks and Slack interactivity, turned into Temporal calls.",
        version="1",
    )
    app.add_middleware(BodyLimit, limit=settings.max_body_bytes)
    metrics = GatewayMetrics()
    app.include_router(alerts_router(settings, policy, link, metrics))
    app.include_router(pagerduty_router(settings, link, metrics))
    background: set[asyncio.Task[None]] = set()

    @app.get("/healthz", response_model=Health, tags=["health"])
    async def healthz() -> JSONResponse:
        """Whether Temporal is reachable: 200 if so, 503 if not."""
        ok, detail = await link.healthy()
        body = Health(ok=ok, temporal=detail, address=settings.temporal_address)
        return JSONResponse(body.model_dump(), status_code=200 if ok else 503)

    @app.get("/livez", tags=["health"])
    async def livez() -> dict[str, bool]:
        """Liveness: the process answers (restart it if not)."""
        return {"ok": True}

    @app.get("/readyz", response_model=Readiness, tags=["health"])
    async def readyz() -> JSONResponse:
        """Readiness: Temporal answers and a worker polls the task queue (alerts would
        otherwise only be stored): 200 if both, 503 naming what is missing."""
        ok, detail = await link.healthy()
        live, workers_detail = 0, "not checked: Temporal does not answer"
        if ok:
            try:
                found = await answers.workers(await link.client(), settings.task_queue)
                live = found.live
                workers_detail = (
                    f"{found.live} polling {settings.task_queue!r}" if live else found.explain()
                )
            except Exception as error:
                workers_detail = f"cannot describe the task queue: {error}"
        body = Readiness(ok=ok and live > 0, temporal=detail, workers=workers_detail)
        return JSONResponse(body.model_dump(), status_code=200 if body.ok else 503)

    @app.get("/metrics", tags=["health"], response_class=Response)
    async def metrics_text() -> Response:
        """The gateway's metrics in Prometheus' text format."""
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    async def signed_form(request: Request) -> tuple[dict[str, str], datetime]:
        """The verified form, and when the person acted: no later than Slack's signed
        timestamp (to the second it states) nor than its arrival here. Anything unsigned,
        stale or unreadable is a 401 or a 400, never a 500."""
        raw = await request.body()
        arrived = datetime.now(UTC)
        secret = settings.slack_signing_secret
        if not secret:
            raise HTTPException(401, "the gateway has no ROLLBACK_SLACK_SIGNING_SECRET")
        signed = verified_timestamp(secret, raw, request.headers, arrived)
        try:
            form = parse_qs(raw.decode("utf-8"), keep_blank_values=True, strict_parsing=False)
        except UnicodeDecodeError:
            raise HTTPException(400, "body is not UTF-8") from None
        made_at = min(arrived, signed + timedelta(seconds=1))
        return {key: values[0] for key, values in form.items()}, made_at

    def answer(handled: Handled) -> Response:
        if handled.later is not None:
            task = asyncio.ensure_future(_logged(handled.later))
            background.add(task)
            task.add_done_callback(background.discard)
        if handled.ack is None:
            return Response(status_code=200)
        return JSONResponse(handled.ack)

    async def counted(kind: str, handle: Callable[[], Awaitable[Response]]) -> Response:
        try:
            response = await handle()
        except HTTPException as error:
            verdict = "unsigned" if error.status_code == 401 else "invalid"
            metrics.slack.labels(kind, verdict).inc()
            raise
        metrics.slack.labels(kind, "taken").inc()
        return response

    @app.post("/slack/interactions", tags=["slack"])
    async def slack_interactions(request: Request) -> Response:
        """Slack button clicks; signed; answered at once, decided in the background."""

        async def handle() -> Response:
            form, made_at = await signed_form(request)
            try:
                payload = json.loads(form["payload"])
                if not isinstance(payload, dict):
                    raise ValueError("payload is not an object")
                return answer(slack.interaction(payload, made_at))
            except KeyError:
                raise HTTPException(400, "form field 'payload' is missing") from None
            except (ValueError, TypeError, BadSlackRequest) as error:
                raise HTTPException(400, f"payload: {error}") from None

        return await counted("interaction", handle)

    @app.post("/slack/commands", tags=["slack"])
    async def slack_commands(request: Request) -> Response:
        """The `/rollback` slash command; signed."""

        async def handle() -> Response:
            form, made_at = await signed_form(request)
            try:
                return answer(slack.command(form, made_at))
            except (ValueError, TypeError, BadSlackRequest) as error:
                raise HTTPException(400, f"command: {error}") from None

        return await counted("command", handle)

    app.state.slack = slack
    app.state.link = link
    app.state.metrics = metrics
    return app


SLACK_MAX_AGE = timedelta(minutes=5)


def verified_timestamp(
    secret: str, raw: bytes, headers: Mapping[str, str], now: datetime
) -> datetime:
    """Slack's request signature, checked on the raw bytes (v0 HMAC-SHA256 of
    `v0:<timestamp>:<body>`); the signed timestamp, which must be within 5 minutes of now."""
    stamp = headers.get("x-slack-request-timestamp", "")
    signature = headers.get("x-slack-signature", "")
    if not stamp.isascii() or not stamp.isdigit() or not signature:
        raise HTTPException(401, "missing Slack signature or timestamp")
    signed = datetime.fromtimestamp(int(stamp), UTC)
    if abs(now - signed) > SLACK_MAX_AGE:
        raise HTTPException(401, "expired Slack signature (older than 5 minutes)")
    base = b"v0:" + stamp.encode() + b":" + raw
    expected = "v0=" + hmac.new(secret.encode(), base, hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected.encode(), signature.encode("utf-8", "replace")):
        raise HTTPException(401, "invalid Slack signature")
    return signed


async def _logged(job: Callable[[], Awaitable[None]]) -> None:
    try:
        await job()
    except Exception:
        log.exception("a Slack follow-up failed")


class BodyLimit:
    """413 for bodies over the limit, whether announced by Content-Length or streamed."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        length = headers.get(b"content-length", b"")
        if length.isdigit() and int(length) > self.limit:
            await _too_large(send, self.limit)
            return
        seen = 0

        async def limited() -> Message:
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > self.limit:
                raise _TooLarge
            return message

        try:
            await self.app(scope, limited, send)
        except _TooLarge:
            await _too_large(send, self.limit)


class _TooLarge(Exception):
    pass


async def _too_large(send: Send, limit: int) -> None:
    body = json.dumps({"detail": f"body over {limit} bytes"}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 413,
            "headers": [(b"content-type", b"application/json")],
        }
    )
    await send({"type": "http.response.body", "body": body})
