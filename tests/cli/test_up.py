"""`rollback up` as a user runs it: starts every part, serves, stops cleanly on Ctrl-C, and a
decision window open before a restart still ends on time after it."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import httpx
import pytest

from cli.stack import port_free
from runbook.loading import DEFAULT_POLICY

pytestmark = pytest.mark.timeout(180)
WINDOW_SECONDS = 20


def free_ports(count: int) -> list[int]:
    socks = [socket.socket() for _ in range(count)]
    try:
        for sock in socks:
            sock.bind(("127.0.0.1", 0))
        return [int(sock.getsockname()[1]) for sock in socks]
    finally:
        for sock in socks:
            sock.close()


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
        ROLLBACK_OBSERVE_SCALE="0.05",
    )
    return env


def rollback(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "cli.main", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


class Up:
    def __init__(self, env: dict[str, str]) -> None:
        self.env = env
        self.out = Path(env["ROLLBACK_HOME"] + ".out")
        self.out.parent.mkdir(parents=True, exist_ok=True)
        with self.out.open("w") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "cli.main", "up"],
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + 90
        while "Ready." not in self.out.read_text():
            assert self.proc.poll() is None, self.out.read_text()
            assert time.monotonic() < deadline, self.out.read_text()
            time.sleep(0.2)

    def stop(self) -> int:
        self.proc.send_signal(signal.SIGINT)
        return self.proc.wait(timeout=60)


@pytest.fixture
def up(stack_env: dict[str, str]) -> Iterator[Up]:
    running = Up(stack_env)
    yield running
    if running.proc.poll() is None:
        running.stop()


def ports_of(env: dict[str, str]) -> list[int]:
    return [
        int(env["ROLLBACK_TEMPORAL_ADDRESS"].rsplit(":", 1)[1]),
        int(env["ROLLBACK_UI_URL"].rsplit(":", 1)[1]),
        int(env["ROLLBACK_REDIS_URL"].rsplit(":", 1)[1].split("/")[0]),
        int(env["ROLLBACK_TARGET_URL"].rsplit(":", 1)[1]),
        int(env["ROLLBACK_GATEWAY_PORT"]),
    ]


def status(env: dict[str, str], deployment: str) -> dict[str, object]:
    done = rollback(env, "status", "-d", deployment, "--format", "json")
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)  # type: ignore[no-any-return]


def until(env: dict[str, str], deployment: str, states: set[str], seconds: float = 60) -> dict:  # type: ignore[type-arg]
    deadline = time.monotonic() + seconds
    while True:
        current = status(env, deployment)
        if current["state"] in states:
            return current
        assert time.monotonic() < deadline, f"{deployment} never reached {states}: {current}"
        time.sleep(0.5)


def test_up_serves_every_part_and_stops_them_all(up: Up) -> None:
    env = up.env
    token = (Path(env["ROLLBACK_HOME"]) / "alerts-token").read_text().strip()
    gateway = f"http://127.0.0.1:{env['ROLLBACK_GATEWAY_PORT']}"
    assert httpx.get(f"{gateway}/healthz").status_code == 200
    assert httpx.get(f"{env['ROLLBACK_TARGET_URL']}/lb/search-a/split").json()["treatment"] == 25
    assert httpx.get(env["ROLLBACK_UI_URL"]).status_code == 200
    alert = {
        "version": "4",
        "status": "firing",
        "receiver": "rollback",
        "groupKey": "{}:{}",
        "alerts": [
            {
                "status": "firing",
                "labels": {"alertname": "x", "deployment": "search-a", "trigger": "error_rate"},
                "annotations": {"summary": "errors"},
                "startsAt": "2026-11-29T00:00:00Z",
                "fingerprint": "f1",
            }
        ],
    }
    answer = httpx.post(
        f"{gateway}/alerts/alertmanager", json=alert, headers={"Authorization": f"Bearer {token}"}
    )
    assert answer.status_code == 200, answer.text
    done = until(env, "search-a", {"following_up"})
    assert done["mode"] == "auto"
    assert httpx.get(f"{env['ROLLBACK_TARGET_URL']}/lb/search-a/split").json()["treatment"] == 0

    assert up.stop() == 0
    assert "Stopped." in up.out.read_text()
    for port in ports_of(env):
        assert port_free("127.0.0.1", port), f"port {port} still taken after Ctrl-C"


def test_a_window_open_before_a_restart_ends_on_time(up: Up) -> None:
    env = up.env
    raised = rollback(
        env, "trigger", "-d", "search-a", "-t", "gate_failure", "-r", "gate", "--as", "dri-backend"
    )
    assert raised.returncode == 0, raised.stderr
    opened = until(env, "search-a", {"awaiting_decision"})
    deadline = datetime.fromisoformat(opened["decision"]["deadline"])  # type: ignore[index]
    assert up.stop() == 0

    again = Up(env)
    try:
        done = until(env, "search-a", {"following_up", "rolled_back"}, seconds=WINDOW_SECONDS + 60)
        expired = next(e for e in done["timeline"] if e["kind"] == "window_expired")  # type: ignore[attr-defined]
        at = datetime.fromisoformat(expired["at"])
        assert deadline <= at < deadline + timedelta(seconds=5), (deadline, at)
        assert done["decided_by"] == ["default"]
    finally:
        again.stop()


def test_a_busy_port_is_a_clear_error(stack_env: dict[str, str]) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", int(stack_env["ROLLBACK_GATEWAY_PORT"])))
        busy.listen()
        done = rollback(stack_env, "up")
    assert done.returncode == 2
    assert "ROLLBACK_GATEWAY_PORT: port" in done.stderr
    assert "already in use" in done.stderr
    for port in ports_of(stack_env):
        if port != int(stack_env["ROLLBACK_GATEWAY_PORT"]):
            assert port_free("127.0.0.1", port)
