"""Slack over Socket Mode, for teams without a public URL: the same handlers as over HTTP."""

from __future__ import annotations

import asyncio
import logging
import threading

from slack_sdk import WebClient
from slack_sdk.socket_mode import SocketModeClient
from slack_sdk.socket_mode.client import BaseSocketModeClient
from slack_sdk.socket_mode.request import SocketModeRequest
from slack_sdk.socket_mode.response import SocketModeResponse

from gateway.slack_handler import BadSlackRequest, Handled, SlackHandler

log = logging.getLogger("gateway.socket_mode")


def dispatch(handler: SlackHandler, request: SocketModeRequest) -> Handled:
    """Route one envelope to the handler that serves the same request over HTTP."""
    try:
        if request.type == "interactive":
            return handler.interaction(request.payload)
        if request.type == "slash_commands":
            return handler.command({k: str(v) for k, v in request.payload.items()})
    except BadSlackRequest as error:
        log.warning("refused a Socket Mode %s envelope: %s", request.type, error)
    return Handled()


def serve_socket_mode(handler: SlackHandler, app_token: str, web: WebClient) -> None:
    """Blocks: acknowledges each envelope at once and runs the follow-up on an event loop."""
    loop = asyncio.new_event_loop()
    threading.Thread(target=loop.run_forever, name="slack-followups", daemon=True).start()
    client = SocketModeClient(app_token=app_token, web_client=web)

    def on_request(client: BaseSocketModeClient, request: SocketModeRequest) -> None:
        handled = dispatch(handler, request)
        client.send_socket_mode_response(
            SocketModeResponse(envelope_id=request.envelope_id, payload=handled.ack)
        )
        if handled.later is not None:
            asyncio.run_coroutine_threadsafe(handled.later(), loop)

    client.socket_mode_request_listeners.append(on_request)
    client.connect()
    log.info("Slack Socket Mode connected")
    threading.Event().wait()
