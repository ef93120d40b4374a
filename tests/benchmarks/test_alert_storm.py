"""The storm benchmark stays runnable: a tiny storm through the real embedded stack. It
checks the figures are printed and that nothing was lost; it times nothing."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

pytestmark = pytest.mark.timeout(150)


def test_a_tiny_storm_runs_and_prints_every_figure() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ROLLBACK_")}
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "benchmarks.alert_storm",
            "--alerts",
            "12",
            "--deployments",
            "3",
            "--seconds",
            "0.5",
            "--calm",
            "2",
            "--flood",
            "40",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=140,
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
