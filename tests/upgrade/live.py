"""An engine upgrade with rollbacks in flight, shown live (minutes; not part of `make test`).

    .venv/bin/python -m tests.upgrade.live v0.1.0 [--keep]

1. The release's code, from git (`git worktree` at the tag), runs `rollback up` on a fresh home,
   with four deployments in the simulator, and puts a rollback in each long-lived state:
   - search-a (50 %): a quality regression; the two-person window open, the QA DRI's seat filled;
   - search-b (5 %): a quality regression; the QA DRI investigating (the window extended);
   - search-c (25 %): an automatic rollback done, in its stability watch, its follow-ups started;
   - search-d (25 %): its canary watch mid-sustain of an error-rate fault (the simulator, which
     keeps its state in memory, gets the fault again when it restarts with the stack).
2. The stack is stopped (SIGTERM), and today's code starts `rollback up` on the same home.
3. Each finishes under today's code: the Sprint DRI fills search-a's second seat, the QA DRI
   approves search-b, search-c's follow-ups take an acknowledgement, search-d's watch raises its
   rollback. Then every workflow's history is read for failed workflow tasks: there must be none.

Both codes run with this venv's interpreter (the release's dependencies must be this checkout's,
as they are within a minor version). Exit 0 when every run finished with no failed workflow
task; 1 otherwise, naming what failed.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from tests.cli.stack_helpers import free_ports, kill_processes_in, kill_processes_of

HERE = Path(__file__).resolve().parents[2]
DEPLOYMENTS = {"search-a": 50, "search-b": 5, "search-c": 25, "search-d": 25}


def say(text: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {text}", flush=True)


class Stack:
    """`rollback up` from a checkout (`code`), on a shared home and ports."""

    def __init__(self, code: Path, env: dict[str, str], log: Path) -> None:
        self.code, self.env, self.log = code, env, log
        argv = [sys.executable, "-m", "cli.main", "up"]
        for name, share in DEPLOYMENTS.items():
            argv += ["-d", f"{name}={share}"]
        with log.open("a") as out:
            self.proc = subprocess.Popen(argv, cwd=code, env=env, stdout=out, stderr=out)
        deadline = time.monotonic() + 120
        while "Ready." not in log.read_text():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"the stack at {code} did not start:\n{log.read_text()[-3000:]}")
            time.sleep(0.3)

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "cli.main", *args],
            cwd=self.code,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=90,
        )

    def status(self, deployment: str) -> dict[str, Any]:
        done = self.cli("status", "-d", deployment, "--format", "json")
        if done.returncode != 0:
            raise SystemExit(f"status -d {deployment}: {done.stdout}{done.stderr}")
        return json.loads(done.stdout)  # type: ignore[no-any-return]

    def until(self, deployment: str, check: Any, seconds: float, what: str) -> dict[str, Any]:
        deadline = time.monotonic() + seconds
        while True:
            current = self.status(deployment)
            if check(current):
                return current
            if time.monotonic() > deadline:
                raise SystemExit(f"{deployment}: {what} not reached: {json.dumps(current)[:6000]}")
            time.sleep(1)

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(timeout=90)


def must(done: subprocess.CompletedProcess[str], what: str) -> None:
    if done.returncode != 0:
        raise SystemExit(f"{what} failed: {done.stdout}{done.stderr}")
    say(f"{what}: {done.stdout.strip().splitlines()[0] if done.stdout.strip() else 'ok'}")


def before(stack: Stack) -> None:
    must(
        stack.cli(
            "trigger",
            "-d",
            "search-a",
            "-t",
            "quality_regression",
            "-r",
            "nDCG drop",
            "--as",
            "qa-dri",
        ),
        "search-a: quality regression",
    )
    stack.until("search-a", lambda s: s["state"] == "awaiting_decision", 30, "window open")
    must(stack.cli("decide", "-d", "search-a", "--approve", "--as", "qa-dri"), "search-a: seat 1")
    must(
        stack.cli(
            "trigger",
            "-d",
            "search-b",
            "-t",
            "quality_regression",
            "-r",
            "nDCG drop",
            "--as",
            "qa-dri",
        ),
        "search-b: quality regression",
    )
    stack.until("search-b", lambda s: s["state"] == "awaiting_decision", 30, "window open")
    must(
        stack.cli("decide", "-d", "search-b", "--investigating", "--as", "qa-dri"),
        "search-b: investigating",
    )
    must(
        stack.cli(
            "trigger",
            "-d",
            "search-c",
            "-t",
            "operational_anomaly",
            "-r",
            "odd results",
            "--as",
            "dri-search",
        ),
        "search-c: operational anomaly",
    )
    stack.until(
        "search-c",
        lambda s: s["state"] == "following_up" and s.get("follow_ups_id"),
        120,
        "stability watch",
    )
    target = stack.env["ROLLBACK_TARGET_URL"]
    httpx.post(f"{target}/faults/search-d", json={"treatment_error_rate": 0.05}).raise_for_status()
    say("search-d: error-rate fault injected; the watch's sustain clock runs (2 min)")
    time.sleep(40)


def after(stack: Stack) -> None:
    # The simulator keeps its state in memory and restarts with the stack: the fault a real
    # target would still have is injected again (the watch's clock restarts with the readings).
    target = stack.env["ROLLBACK_TARGET_URL"]
    httpx.post(f"{target}/faults/search-d", json={"treatment_error_rate": 0.05}).raise_for_status()
    must(
        stack.cli("decide", "-d", "search-a", "--approve", "--as", "dri-search"), "search-a: seat 2"
    )
    stack.until("search-a", lambda s: s["state"] == "following_up", 120, "rolled back")
    must(stack.cli("decide", "-d", "search-b", "--approve", "--as", "qa-dri"), "search-b: approve")
    stack.until("search-b", lambda s: s["state"] == "following_up", 120, "rolled back")
    early = stack.cli("ack", "-d", "search-c", "first_hour", "--as", "sre-oncall")
    say(f"search-c: follow-ups answered an acknowledgement: {early.stdout.strip()[:120]}")
    if "not due" not in early.stdout + early.stderr:
        raise SystemExit(f"search-c's follow-ups did not judge the acknowledgement: {early}")
    stack.until(
        "search-d",
        lambda s: s.get("trigger") == "error_rate" and s.get("state") == "following_up",
        240,
        "rolled back by its watch",
    )


def failed_tasks(stack: Stack) -> list[str]:
    """Every workflow of the home, each run, read for WorkflowTaskFailed events."""
    temporal = Path(sys.executable).parent / "temporal"
    address = stack.env["ROLLBACK_TEMPORAL_ADDRESS"]
    listed = subprocess.run(
        [str(temporal), "workflow", "list", "--address", address, "-o", "json", "--limit", "200"],
        capture_output=True,
        text=True,
        check=True,
    )
    failures = []
    runs = json.loads(listed.stdout or "[]")
    for run in runs:
        execution = run["execution"]
        shown = subprocess.run(
            [
                str(temporal),
                "workflow",
                "show",
                "--address",
                address,
                "-w",
                execution["workflowId"],
                "-r",
                execution["runId"],
                "-o",
                "json",
            ],
            capture_output=True,
            text=True,
            check=True,
        )
        events = json.loads(shown.stdout)["events"]
        failed = [e for e in events if e.get("eventType") in ("EVENT_TYPE_WORKFLOW_TASK_FAILED",)]
        if failed:
            failures.append(f"{execution['workflowId']}/{execution['runId']}: {len(failed)}")
    say(f"{len(runs)} workflow runs read; {len(failures)} with failed workflow tasks")
    return failures


def main(release: str, keep: bool) -> int:
    work = Path(tempfile.mkdtemp(prefix="rollback-upgrade-"))
    old = work / "old"
    subprocess.run(
        ["git", "-C", str(HERE), "worktree", "add", "--detach", str(old), release],
        check=True,
        capture_output=True,
    )
    temporal, ui, redis, target, gateway = free_ports(5)
    env = {k: v for k, v in os.environ.items() if not k.startswith("ROLLBACK_")}
    env.update(
        ROLLBACK_HOME=str(work / "home"),
        ROLLBACK_TEMPORAL_ADDRESS=f"127.0.0.1:{temporal}",
        ROLLBACK_UI_URL=f"http://127.0.0.1:{ui}",
        ROLLBACK_REDIS_URL=f"redis://127.0.0.1:{redis}/0",
        ROLLBACK_TARGET_URL=f"http://127.0.0.1:{target}",
        ROLLBACK_GATEWAY_PORT=str(gateway),
        ROLLBACK_OBSERVE_SCALE="0.05",
    )
    try:
        say(f"{release}: rollback up on {env['ROLLBACK_HOME']}")
        stack = Stack(old, env, work / "old.log")
        before(stack)
        say(f"{release}: stopping the stack with every run in flight")
        stack.stop()
        say("today's code: rollback up on the same home")
        # v0.1.0's plan took `--as` as said; today's bundled plan wants signed acts (issue 19),
        # and these people have no keys: the same plan with identities asserted, as v0.1.0 had.
        asserted = {**env, "ROLLBACK_POLICY": str(HERE / "policies" / "asserted.yaml")}
        stack = Stack(HERE, asserted, work / "new.log")
        after(stack)
        failures = failed_tasks(stack)
        stack.stop()
        if failures:
            say("FAILED workflow tasks: " + "; ".join(failures))
            return 1
        say("every run finished under today's code; 0 failed workflow tasks")
        return 0
    finally:
        kill_processes_of(f"ROLLBACK_HOME={env['ROLLBACK_HOME']}")
        kill_processes_in(work)
        subprocess.run(
            ["git", "-C", str(HERE), "worktree", "remove", "--force", str(old)],
            capture_output=True,
        )
        if not keep:
            subprocess.run(["rm", "-rf", str(work)], check=False)
        else:
            say(f"kept {work}")


if __name__ == "__main__":
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    if len(args) != 1:
        raise SystemExit(__doc__)
    sys.exit(main(args[0], "--keep" in sys.argv))
