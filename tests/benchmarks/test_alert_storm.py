"""The storm benchmark stays runnable: a tiny storm through the real embedded stack. It
checks the figures are printed and that nothing was lost; it times nothing."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from uuid import uuid4

import pytest

from tests.cli.stack_helpers import kill_processes_in, kill_processes_of
from tests.conftest import SESSION_MARKER

pytestmark = pytest.mark.timeout(150)

MARKER = "ROLLBACK_TEST_STORM"
"""In the benchmark's environment, so in its stack's parts' (each in a session of its own): what
is killed when the test ends, however it ends. Its redis-server, whose environment cannot be
read, is found by its working directory: the stack's home, made under `tmp`."""


def storm(tmp: Path, *args: str, seconds: float) -> subprocess.CompletedProcess[str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("ROLLBACK_") or k == SESSION_MARKER  # the session's net, kept
    }
    marker = uuid4().hex
    env.update({MARKER: marker, "TMPDIR": str(tmp)})  # the benchmark's home: a mkdtemp
    argv = [sys.executable, "-m", "benchmarks.alert_storm", *args]
    proc = subprocess.Popen(
        argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        out, err = proc.communicate(timeout=seconds)
        return subprocess.CompletedProcess(argv, proc.returncode, out, err)
    finally:
        try:
            if proc.poll() is None:
                proc.terminate()  # the benchmark stops its stack on SIGTERM
                try:
                    proc.communicate(timeout=15)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.communicate()
        finally:
            kill_processes_of(f"{MARKER}={marker}")
            kill_processes_in(tmp)


def test_a_tiny_storm_runs_and_prints_every_figure(tmp_path: Path) -> None:
    done = storm(
        tmp_path,
        *("--alerts", "12", "--deployments", "3", "--seconds", "0.5"),
        *("--calm", "2", "--flood", "40"),
        seconds=120,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    out = done.stdout
    for figure in (
        "floor: a PUT straight to the load balancer",
        "calm (2 alerts, 1 s apart): webhook sent -> traffic reverted: p50",
        "storm: webhook sent -> traffic reverted: p50",
        "gateway latency: p50",
        "flood: 40 webhooks",
        "history events per workflow",
        "RSS worker:",
        "RSS gateway:",
        "CPU while the alerts were sent",
        "where the storm's milliseconds go",
        "first workflow task picked up",
        "split applied (simulator's ledger)",
        "workflow tasks of the storm's rollbacks:",
    ):
        assert figure in out, out
    assert "rollbacks started: 3 of 3; split changes applied: 3" in out
    assert "lost 0" in out and "goal 0 alerts lost: met" in out
