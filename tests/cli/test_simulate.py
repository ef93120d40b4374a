"""`rollback simulate` as a user runs it: a real process on a real port."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

ROLLBACK = str(Path(sys.executable).parent / "rollback")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for(url: str, seconds: float = 15.0) -> httpx.Response:
    deadline = time.monotonic() + seconds
    while True:
        try:
            return httpx.get(url, timeout=1.0)
        except httpx.TransportError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def test_named_deployments_start_in_canary_at_their_share() -> None:
    port = free_port()
    proc = subprocess.Popen(
        [ROLLBACK, "simulate", "--port", str(port), "-d", "search-a=25", "-d", "search-b=50"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        split = wait_for(f"http://127.0.0.1:{port}/lb/search-b/split").json()
        assert (split["treatment"], split["control"]) == (50, 50)
        assert wait_for(f"http://127.0.0.1:{port}/lb/search-a/split").json()["treatment"] == 25
    finally:
        proc.terminate()
        try:
            proc.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()


@pytest.mark.parametrize(
    ("args", "complaint"),
    [
        (["-d", "search-a"], "expected NAME=TREATMENT_PERCENT"),
        (["-d", "search-a=101"], "integer from 0 to 100"),
        (["-d", "a=5", "-d", "a=25"], "'a' given twice"),
        (["--port", "70000"], "--port"),
    ],
)
def test_bad_arguments_are_one_line_and_exit_2(args: list[str], complaint: str) -> None:
    done = subprocess.run([ROLLBACK, "simulate", *args], capture_output=True, text=True, timeout=30)
    assert done.returncode == 2
    assert complaint in done.stderr
    assert "Traceback" not in done.stderr


def test_a_port_in_use_is_named() -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        done = subprocess.run(
            [ROLLBACK, "simulate", "--port", str(port)], capture_output=True, text=True, timeout=30
        )
    assert done.returncode == 2
    assert f"127.0.0.1:{port} is already in use" in done.stderr
