"""`rollback gateway`: alert webhooks and Slack, over HTTP or Slack's Socket Mode."""

from __future__ import annotations

import logging
from typing import Annotated

import typer

from cli.errors import UserError
from cli.policy_cmd import read_policy
from config.settings import load_settings


def gateway(
    host: Annotated[str | None, typer.Option(help="listen address [ROLLBACK_GATEWAY_HOST]")] = None,
    port: Annotated[int | None, typer.Option(help="listen port [ROLLBACK_GATEWAY_PORT]")] = None,
    socket_mode: Annotated[
        bool, typer.Option("--socket-mode", help="serve Slack through Socket Mode (no public URL)")
    ] = False,
) -> None:
    """Run the gateway: /alerts/alertmanager, /alerts/grafana, /slack/…, /healthz.

    Example: ROLLBACK_ALERTS_TOKEN=secret rollback gateway --port 8000
    """
    # Imported here: every other `rollback` command (the worker too) starts without them.
    import uvicorn

    from gateway.app import create_app
    from gateway.slack_handler import SlackHandler
    from gateway.temporal_link import TemporalLink

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    settings = load_settings()
    policy = read_policy(settings.policy)
    if socket_mode:
        if not settings.slack_app_token or not settings.slack_bot_token:
            raise UserError(
                "--socket-mode needs ROLLBACK_SLACK_APP_TOKEN (xapp-…) and "
                "ROLLBACK_SLACK_BOT_TOKEN (xoxb-…)"
            )
        from slack_sdk import WebClient

        from gateway.socket_mode import serve_socket_mode

        web = WebClient(
            token=settings.slack_bot_token, base_url=settings.slack_api_url or WebClient.BASE_URL
        )
        serve_socket_mode(
            SlackHandler(settings, policy, TemporalLink(settings)), settings.slack_app_token, web
        )
        return
    app = create_app(settings, policy)
    uvicorn.run(
        app,
        host=host or settings.gateway_host,
        port=port or settings.gateway_port,
        log_level="info",
    )
