"""Fixtures for the tests that run the embedded stack as a user would."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from runbook.loading import DEFAULT_POLICY
from tests.cli.stack_helpers import WINDOW_SECONDS, Up, free_ports


@pytest.fixture
def stack_env(tmp_path: Path) -> dict[str, str]:
    """Free ports, a home of its own, and a policy whose 25 % gate-failure window is short."""
    temporal, ui, redis, target, gateway = free_ports(5)
    policy = tmp_path / "policy.yaml"
    text = DEFAULT_POLICY.read_text()
    text = text.replace(
        "25: {mode: manual, window: 2m, default: rollback}",
        f"25: {{mode: manual, window: {WINDOW_SECONDS}s, default: rollback}}",
        1,
    )
    policy.write_text(text)
    env = {k: v for k, v in os.environ.items() if not k.startswith("ROLLBACK_")}
    env.update(
        ROLLBACK_HOME=str(tmp_path / "home"),
        ROLLBACK_POLICY=str(policy),
        ROLLBACK_TEMPORAL_ADDRESS=f"127.0.0.1:{temporal}",
        ROLLBACK_UI_URL=f"http://127.0.0.1:{ui}",
        ROLLBACK_REDIS_URL=f"redis://127.0.0.1:{redis}/0",
        ROLLBACK_TARGET_URL=f"http://127.0.0.1:{target}",
        ROLLBACK_GATEWAY_PORT=str(gateway),
        ROLLBACK_OBSERVE_SCALE="0.15",
    )
    return env


@pytest.fixture
def up(stack_env: dict[str, str]) -> Iterator[Up]:
    running = Up(stack_env)
    yield running
    if running.proc.poll() is None:
        running.stop()
