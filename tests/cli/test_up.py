"""`rollback up` as a user runs it: starts every part, serves, stops cleanly on Ctrl-C, and a
decision window open before a restart still ends on time after it."""

from __future__ import annotations

import os
import signal
import socket
import time
from datetime import datetime, timedelta
from pathlib import Path

import httpx
import pytest
from redis import Redis

from cli.stack import port_free
from tests.cli.stack_helpers import WINDOW_SECONDS, Up, ports_of, rollback, until

pytestmark = pytest.mark.timeout(180)


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

    parts = up.parts()
    assert up.stop(signal.SIGTERM) == 0  # what systemd, docker and supervisord send
    assert "Stopped (SIGTERM)" in up.out.read_text()
    assert not any(alive(pid) for pid in parts.values())
    for port in ports_of(env):
        assert port_free("127.0.0.1", port), f"port {port} still taken after SIGTERM"


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
        again.close()


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


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"


def test_the_supervisor_restarts_each_part_and_a_signal_stops_them_all(
    stack_env: dict[str, str],
) -> None:
    """Started in the background (SIGINT ignored, as `rollback up &` from a script): each part
    killed with SIGKILL is restarted while the others keep running, Redis keeps its data, the
    stack still rolls back afterwards, and SIGINT stops every part, freeing every port."""
    up = Up(stack_env, background=True)
    try:
        env = stack_env
        redis = Redis.from_url(env["ROLLBACK_REDIS_URL"].rsplit("/", 1)[0] + "/5")
        redis.set("kept-by-step-2", "yes")  # a database the cache flush must leave alone
        before = up.parts()
        for name in ("redis", "simulator", "worker", "gateway", "temporal"):
            old = up.parts()
            os.kill(old[name], signal.SIGKILL)
            deadline = time.monotonic() + 60
            while up.parts()[name] == old[name] or not alive(up.parts()[name]):
                assert up.proc.poll() is None, up.out.read_text()[-2000:]
                assert time.monotonic() < deadline, f"{name} not restarted"
                time.sleep(0.2)
            others = {n: p for n, p in old.items() if n != name}
            assert all(alive(pid) for pid in others.values()), (name, others)
            assert {n: up.parts()[n] for n in others} == others  # untouched
        assert "worker exited (code -9); restarting" in up.out.read_text()
        assert redis.get("kept-by-step-2") == b"yes"  # appendonly, fsynced every second
        raised = rollback(
            env,
            "trigger",
            "-d",
            "search-a",
            "-t",
            "operational_anomaly",
            "-r",
            "after kills",
            "--as",
            "dri-search",
            timeout=60,
        )
        assert raised.returncode == 0, raised.stdout + raised.stderr
        assert until(env, "search-a", {"following_up"}, seconds=60)["mode"] == "manual"
        after = up.parts()
        assert up.stop(signal.SIGINT) == 0
        assert "Stopped (SIGINT)" in up.out.read_text()
        for pid in (*before.values(), *after.values()):
            assert not alive(pid), f"pid {pid} outlived the stack"
        for port in ports_of(env):
            assert port_free("127.0.0.1", port), f"port {port} still taken"
    finally:
        up.close()


def test_the_banner_suggests_only_a_deployment_the_stack_runs(tmp_path: Path) -> None:
    """Issue 21: the banner suggested `rollback trigger -d search-a …` while search-a was not
    running; run as suggested it rolled back a deployment that does not exist."""
    from cli.stack import Stack
    from cli.up_cmd import ready_text
    from config.settings import Settings

    settings = Settings(_env_file=None, home=tmp_path)  # type: ignore[call-arg]
    mine = Stack(settings, tmp_path, {"search-q": 25}, say=lambda _: None)
    assert "rollback trigger -d search-q " in ready_text(settings, mine)
    assert "search-a" not in ready_text(settings, mine)
    targets = Stack(settings, tmp_path, {}, simulator=False, say=lambda _: None)
    text = ready_text(settings, targets)
    assert "rollback trigger -d <deployment>" in text and "search-a" not in text
