"""`rollback demo --once` and `rollback drill`, run as a user runs them."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from runbook.loading import DEFAULT_POLICY
from tests.cli.stack_helpers import (
    Up,
    kill_processes_in,
    kill_processes_of,
    rollback,
    status,
    until,
)

DEMO_POLICY = DEFAULT_POLICY.parent / "demo.yaml"

pytestmark = pytest.mark.timeout(240)


def demo_once(env: dict[str, str], seconds: float) -> subprocess.CompletedProcess[str]:
    """`rollback demo --once`, and whatever it left of its stack stopped: the demo stops its
    parts on Ctrl-C (each runs in a session of its own: a killed demo would orphan them), then
    every process of its home is killed, however it ended."""
    argv = [sys.executable, "-m", "cli.main", "demo", "--once"]
    proc = subprocess.Popen(
        argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        out, err = proc.communicate(timeout=seconds)
        return subprocess.CompletedProcess(argv, proc.returncode, out, err)
    finally:
        try:
            if proc.poll() is None:
                proc.send_signal(signal.SIGINT)
                try:
                    proc.communicate(timeout=20)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.communicate()
        finally:
            kill_processes_of(f"ROLLBACK_HOME={env['ROLLBACK_HOME']}")
            kill_processes_in(Path(env["ROLLBACK_HOME"]))


def test_demo_once_plays_both_acts_and_passes(stack_env: dict[str, str]) -> None:
    done = demo_once(stack_env, seconds=200)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr
    out = done.stdout
    assert "Act 1" in out and "Act 2" in out
    assert "DEMO POLICY (sprint-1-demo)" in out  # short periods, named on screen
    assert "→ the watch raised error_rate" in out  # nobody posted the first alert
    assert "joined rollback-search-a" in out  # Alertmanager's, later, joins it
    assert "$ rollback decide -d search-b --approve --as qa-dri" in out
    assert "approved rollback" in out
    assert "Response times against the plan's targets" in out
    assert "/workflows/rollback-search-a" in out and "/workflows/rollback-search-b" in out
    assert "Demo passed" in out


def drill(env: dict[str, str], *args: str) -> tuple[int, dict[str, object], str]:
    done = rollback(env, "drill", *args, "--format", "json", "--within", "120", timeout=150)
    body = json.loads(done.stdout) if done.stdout.strip() else {}
    return done.returncode, body, done.stderr


def test_drills_measure_the_plan_and_say_when_it_fails(up: Up) -> None:
    env = up.env
    code, auto, err = drill(env, "-d", "search-a")
    assert code == 0, err
    assert auto["drill"] is True and auto["state"] == "rolled_back" and auto["passed"] is True
    names = [rt["name"] for rt in auto["response_times"]]  # type: ignore[union-attr]
    # The trigger's own target (30 s for Trigger 1) and the plan's generic one (60 s).
    assert names[:2] == [
        "Trigger 1: Critical Error Rate: trigger to traffic reversion",
        "Automated rollback: trigger to traffic reversion",
    ]
    assert all(rt["met"] for rt in auto["response_times"])  # type: ignore[union-attr]

    code, manual, err = drill(
        env,
        "-d",
        "search-b",
        "-t",
        "quality_regression",
        "--approve-as",
        "qa-dri",
        "--approve-as",
        "dri-search",
    )
    assert code == 0, err
    assert manual["passed"] is True
    seen = until(env, "search-b", {"rolled_back"})
    assert seen["drill"] is True
    assert {"qa-dri", "dri-search"} <= set(seen["decided_by"])  # type: ignore[arg-type]
    assert any(e["kind"] == "drill" for e in seen["timeline"])  # type: ignore[union-attr]

    # A deployment the target does not know: the preflight finds it before anything acts.
    code, failed, _ = drill(env, "-d", "search-unknown")
    assert code == 1
    assert failed["passed"] is False
    [why] = failed["failures"]  # type: ignore[misc]
    assert why.startswith("preflight: ") and "search-unknown" in why, why
    checks = {c["id"]: c["passed"] for c in failed["preflight"]}  # type: ignore[union-attr]
    assert checks["tools.slack"] is False  # reported, not fatal: the drills above ran without it


def test_a_detection_drill_injects_the_fault_and_the_watch_raises_it_after_its_sustain(
    up: Up,
) -> None:
    """The demo policy's 6 s sustain at a 1 s interval: detected no sooner than 6 s and within
    one interval (and the signal) of it; the deployment's own watch is paused, then runs again."""
    env = up.env
    target = env["ROLLBACK_TARGET_URL"]
    httpx.post(
        f"{target}/deployments", json={"name": "search-c", "treatment": 25}
    ).raise_for_status()
    short = {**env, "ROLLBACK_POLICY": str(DEMO_POLICY)}
    started = rollback(short, "watch", "-d", "search-c")
    assert started.returncode == 0, started.stderr
    code, body, err = drill(short, "-d", "search-c", "--detect")
    assert code == 0, (body, err)
    detection = body["detection"]
    assert isinstance(detection, dict)
    assert detection["source"] == "watch" and detection["passed"] is True, detection
    assert detection["fault"] == {"treatment_error_rate": 0.05}
    assert 6.0 <= detection["detected_seconds"] <= 6.0 + 1.0 + 1.0, detection
    assert body["state"] == "rolled_back"
    seen = status(env, "search-c")  # the rollback, and the watch that runs again
    assert seen["drill"] is True and seen["trigger"] == "error_rate"
    assert seen["evidence"]["condition"] == "error_rate"  # type: ignore[index]
    faults = httpx.get(f"{target}/faults").json()
    assert "search-c" not in faults["deployments"], "the drill clears its fault"
    watch = seen["watch"]
    assert isinstance(watch, dict)
    assert watch["drill"] is False and not watch["ended"], "the regular watch runs again"


def test_a_drill_never_joins_a_real_rollback(up: Up) -> None:
    env = up.env
    raised = rollback(
        env, "trigger", "-d", "search-a", "-t", "gate_failure", "-r", "real", "--as", "dri-backend"
    )
    assert raised.returncode == 0, raised.stderr
    done = rollback(env, "drill", "-d", "search-a")
    assert done.returncode == 2
    assert "a rollback of search-a is running" in done.stderr


@pytest.mark.parametrize(
    ("args", "complaint"),
    [
        (["-d", "search-a", "-t", "nope"], "--trigger: unknown trigger 'nope'"),
        (["-d", "search a"], "is not a deployment name"),
        (["-d", "search-a", "--approve-as", "mallory"], "'mallory' is not in the roster"),
        (["-d", "search-a", "--within", "0"], "--within"),
    ],
)
def test_bad_drill_arguments_are_one_line_and_exit_2(
    stack_env: dict[str, str], args: list[str], complaint: str
) -> None:
    done = rollback(stack_env, "drill", *args)
    assert done.returncode == 2
    assert complaint in done.stderr
    assert "Traceback" not in done.stderr
