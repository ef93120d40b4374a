"""A real Prometheus scrapes the simulator (skipped where ``prometheus`` is not installed;
``apt-get install prometheus`` gives the 2.42 this was written against)."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from simulator import SimulatorServer

PROMETHEUS = shutil.which("prometheus")
pytestmark = pytest.mark.skipif(PROMETHEUS is None, reason="prometheus is not installed")

CONTROL_P99 = (
    "histogram_quantile(0.99, sum by (le) (rate("
    'search_request_duration_seconds_bucket{deployment="x",variant="control"}[30s])))'
)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def simulator() -> Iterator[SimulatorServer]:
    with SimulatorServer({"x": 25}) as server:
        yield server


@pytest.fixture
def prometheus(simulator: SimulatorServer, tmp_path: Path) -> Iterator[str]:
    assert PROMETHEUS is not None
    config = tmp_path / "prometheus.yml"
    config.write_text(
        "global:\n"
        "  scrape_interval: 1s\n"
        "  evaluation_interval: 1s\n"
        "scrape_configs:\n"
        "  - job_name: simulator\n"
        "    static_configs:\n"
        f"      - targets: ['127.0.0.1:{simulator.port}']\n"
    )
    port = _free_port()
    process = subprocess.Popen(
        [
            PROMETHEUS,
            f"--config.file={config}",
            f"--storage.tsdb.path={tmp_path / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--log.level=warn",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_for(lambda: _ready(url), "prometheus to be ready", process)
        yield url
    finally:
        process.terminate()
        try:
            process.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.communicate()


def _ready(url: str) -> bool:
    try:
        return httpx.get(f"{url}/-/ready", timeout=1).status_code == 200
    except httpx.TransportError:
        return False


def _query(url: str, promql: str) -> list[dict[str, Any]]:
    r = httpx.get(f"{url}/api/v1/query", params={"query": promql}, timeout=5)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["status"] == "success", body
    result: list[dict[str, Any]] = body["data"]["result"]
    return result


def _wait_for(
    check: Any, what: str, process: subprocess.Popen[str] | None = None, timeout: float = 20
) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        if result := check():
            return result
        if process is not None and process.poll() is not None:
            pytest.fail(f"prometheus exited: {process.communicate()[1]}")
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.25)


def test_prometheus_scrapes_the_simulator(simulator: SimulatorServer, prometheus: str) -> None:
    shares = _wait_for(
        lambda: _query(prometheus, 'search_traffic_share{deployment="x"}'), "a scrape"
    )
    by_variant = {s["metric"]["variant"]: float(s["value"][1]) for s in shares}
    assert by_variant == {"treatment": 0.25, "control": 0.75}

    up = _query(prometheus, 'up{job="simulator"}')
    assert [float(s["value"][1]) for s in up] == [1.0]

    p99 = _wait_for(lambda: _query(prometheus, CONTROL_P99), "two scrapes for rate()")
    assert float(p99[0]["value"][1]) == pytest.approx(0.18, rel=0.05)

    # irate: rate() over a window longer than the series' life underestimates. Prometheus
    # stamps a scrape when it starts and the simulator counts up to when it answers: on a busy
    # machine the two clocks drift apart by a share of the scrape interval (930/s seen in CI).
    rps = _query(prometheus, 'sum(irate(search_requests_total{deployment="x"}[30s]))')
    assert float(rps[0]["value"][1]) == pytest.approx(1000, rel=0.15)
