"""Shared by the tests that run `rollback up`, `demo` and `drill` as a user would."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

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


def rollback(
    env: dict[str, str], *args: str, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "cli.main", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


class Up:
    def __init__(self, env: dict[str, str], background: bool = False) -> None:
        """`background`: started as `rollback up &` is from a script, SIGINT ignored. A stack
        that never gets ready is stopped, every part of it, before the test fails."""
        self.env = env
        self.out = Path(env["ROLLBACK_HOME"] + ".out")
        self.out.parent.mkdir(parents=True, exist_ok=True)
        with self.out.open("w") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "cli.main", "up"],
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                preexec_fn=(lambda: signal.signal(signal.SIGINT, signal.SIG_IGN))
                if background
                else None,
            )
        try:
            deadline = time.monotonic() + 90
            while "Ready." not in self.out.read_text():
                assert self.proc.poll() is None, self.out.read_text()
                assert time.monotonic() < deadline, self.out.read_text()
                time.sleep(0.2)
        except BaseException:
            self.close()
            raise

    def stop(self, sig: int = signal.SIGINT) -> int:
        self.proc.send_signal(sig)
        return self.proc.wait(timeout=60)

    def close(self) -> None:
        """Whatever state it is in: the supervisor stopped (gently, then not), and every process
        of this stack's home killed, the parts a killed supervisor would orphan included."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        kill_processes_of(f"ROLLBACK_HOME={self.env['ROLLBACK_HOME']}")
        kill_processes_in(Path(self.env["ROLLBACK_HOME"]))

    def parts(self) -> dict[str, int]:
        """Each part's pid, as the supervisor writes them (ROLLBACK_HOME/stack.json)."""
        data = json.loads((Path(self.env["ROLLBACK_HOME"]) / "stack.json").read_text())
        return {name: part["pid"] for name, part in data["parts"].items()}


def kill_processes_of(marker: str) -> list[int]:
    """SIGKILL every process whose environment holds `marker` (e.g. `ROLLBACK_HOME=/tmp/x`), but
    this one: what a test started, wherever it was reparented. The pids killed."""
    killed = []
    needle = marker.encode() + b"\0"
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            environ = (entry / "environ").read_bytes() + b"\0"
        except OSError:
            continue  # gone, or not ours to read
        if needle in environ:
            try:
                os.kill(int(entry.name), signal.SIGKILL)
                killed.append(int(entry.name))
            except ProcessLookupError:
                pass
    return killed


def kill_processes_in(directory: Path) -> list[int]:
    """SIGKILL every process (but this one) whose working directory is `directory` or below
    it; the pids killed. The redis-server of a stack works in its home (`--dir`) and is found
    only this way: it writes its process title over its environment, so no marker there is
    read."""
    root = str(directory.resolve())
    killed = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cwd = os.readlink(entry / "cwd").removesuffix(" (deleted)")
        except OSError:
            continue  # gone, or not ours to read
        if cwd == root or cwd.startswith(root + os.sep):
            try:
                os.kill(int(entry.name), signal.SIGKILL)
                killed.append(int(entry.name))
            except ProcessLookupError:
                pass
    return killed


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
