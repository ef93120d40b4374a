"""The Slack app manifest points at the gateway's real routes and asks for what is used."""

from __future__ import annotations

from pathlib import Path

import yaml

from activities.slack_messages import APPROVE, DENY, INVESTIGATING
from config.settings import Settings
from gateway.app import create_app
from gateway.slack_handler import ACTIONS
from runbook.policy import Policy

MANIFEST = Path(__file__).resolve().parents[2] / "gateway" / "slack-manifest.yaml"


def test_manifest_urls_are_gateway_routes(policy: Policy) -> None:
    manifest = yaml.safe_load(MANIFEST.read_text())
    paths = set(create_app(Settings(), policy).openapi()["paths"])
    interactions = manifest["settings"]["interactivity"]["request_url"]
    [command] = manifest["features"]["slash_commands"]
    assert interactions.endswith("/slack/interactions") and "/slack/interactions" in paths
    assert command["command"] == "/rollback" and command["url"].endswith("/slack/commands")
    assert {"chat:write", "commands"} <= set(manifest["oauth_config"]["scopes"]["bot"])
    assert set(ACTIONS) == {APPROVE, DENY, INVESTIGATING}  # the buttons the messages carry
