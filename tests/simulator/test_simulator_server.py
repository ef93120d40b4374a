"""Running for real: ``SimulatorServer``, ``parse_deployment_arg`` and the command line."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from simulator import SimulatorServer, parse_deployment_arg

REPO = Path(__file__).resolve().parents[2]


def test_sync_server_on_a_free_port() -> None:
    with SimulatorServer({"search-a": 25}) as server:
        assert server.url.startswith("http://127.0.0.1:")
        assert server.port > 0
        r = httpx.get(f"{server.url}/lb/search-a/split")
        assert r.json() == {"deployment": "search-a", "treatment": 25, "control": 75}
        assert server.app.state.simulator.names == ["search-a"]
        url = server.url
    with pytest.raises(httpx.TransportError):
        httpx.get(f"{url}/healthz", timeout=1)


async def test_async_server_and_two_at_once() -> None:
    async with SimulatorServer({"a": 10}) as one, SimulatorServer({"b": 20}) as two:
        assert one.port != two.port
        async with httpx.AsyncClient() as client:
            assert (await client.get(f"{one.url}/deployments")).json() == {"deployments": ["a"]}
            assert (await client.get(f"{two.url}/lb/b/split")).json()["treatment"] == 20


async def test_slow_call_the_client_gave_up_on_still_applies_once() -> None:
    """The case idempotency keys exist for: a timed-out call that did take effect."""
    async with SimulatorServer({"a": 25}) as server, httpx.AsyncClient(base_url=server.url) as c:
        fault = {"api": "lb", "mode": "slow", "count": 1, "delay_seconds": 0.5}
        assert (await c.post("/faults/api", json=fault)).status_code == 201
        body = {"treatment": 0, "control": 100}
        headers = {"Idempotency-Key": "rollback-a-1"}
        with pytest.raises(httpx.TimeoutException):
            await c.put("/lb/a/split", json=body, headers=headers, timeout=0.1)
        retry = await c.put("/lb/a/split", json=body, headers=headers)  # served at once
        assert retry.status_code == 200
        await c.put("/lb/a/split", json={"treatment": 3, "control": 97})
        for _ in range(100):  # the delayed original lands about 0.5 s after it was sent
            calls = (await c.get("/calls")).json()
            if len(calls["calls"]) == 3:
                break
            await asyncio.sleep(0.05)
        # The delayed original found the retry's response and was replayed, not applied.
        assert [x["outcome"] for x in calls["calls"]] == ["applied", "applied", "replayed"]
        assert calls["counts"] == {"PUT /lb/{d}/split": 2}
        assert (await c.get("/lb/a/split")).json()["treatment"] == 3


def test_server_refuses_a_taken_port() -> None:
    with SimulatorServer({"a": 1}) as server, pytest.raises(OSError):
        SimulatorServer({"a": 1}, port=server.port).start()


@pytest.mark.parametrize(
    ("text", "expected"),
    [("search-a=25", ("search-a", 25)), ("b=0", ("b", 0)), ("c=100", ("c", 100))],
)
def test_parse_deployment_arg(text: str, expected: tuple[str, int]) -> None:
    assert parse_deployment_arg(text) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("x", "expected NAME=TREATMENT_PERCENT, got 'x'"),
        ("=25", "expected NAME=TREATMENT_PERCENT, got '=25'"),
        ("a=", "expected NAME=TREATMENT_PERCENT, got 'a='"),
        ("a=101", "treatment percent must be an integer from 0 to 100"),
        ("a=-1", "treatment percent must be an integer from 0 to 100"),
        ("a=2.5", "treatment percent must be an integer from 0 to 100"),
        ("a b=5", "invalid deployment name 'a b'"),
    ],
)
def test_parse_deployment_arg_errors(text: str, message: str) -> None:
    with pytest.raises(ValueError, match="^" + message.replace(".", r"\.")):
        parse_deployment_arg(text)


def _run_cli(*args: str) -> subprocess.Popen[str]:
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
    }
    return subprocess.Popen(
        [sys.executable, "-m", "simulator", *args],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


@pytest.mark.parametrize(
    "args",
    [
        ["--deployment", "search-a"],
        ["--deployment", "a=150"],
        ["--deployment", "a=1", "--deployment", "a=2"],
        ["--port", "http"],
    ],
)
def test_cli_bad_arguments_exit_2_with_one_line(args: list[str]) -> None:
    process = _run_cli(*args)
    try:
        _, stderr = process.communicate(timeout=20)
    finally:
        _stop(process)  # one that took the arguments and serves instead
    assert process.returncode == 2
    assert len(stderr.strip().splitlines()) == 1, stderr
    assert stderr.startswith("python -m simulator: error: ")
    assert "Traceback" not in stderr


def test_cli_serves() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    process = _run_cli("--port", str(port), "--deployment", "search-a=25", "--deployment", "b=50")
    try:
        deadline = time.monotonic() + 15
        while True:
            try:
                r = httpx.get(f"http://127.0.0.1:{port}/deployments", timeout=1)
                break
            except httpx.TransportError:
                assert process.poll() is None, process.communicate()
                assert time.monotonic() < deadline, "the simulator did not come up"
                time.sleep(0.05)
        assert r.json() == {"deployments": ["search-a", "b"]}
    finally:
        _stop(process)


def _stop(process: subprocess.Popen[str]) -> None:
    """Stopped if still running (gently, then not), and reaped."""
    if process.poll() is None:
        process.terminate()
        try:
            process.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.communicate()
