"""A real HAProxy (Debian `haproxy`) in front of two real backends, for the haproxy driver's
tests: a frontend on a loopback port, backend `search` with servers `treatment` and `control`,
and three stats sockets (UNIX at level admin, TCP at level admin, UNIX at level operator)."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from fastapi import Request, Response
from starlette.middleware.base import RequestResponseEndpoint

from simulator import SimulatorServer
from tests.activities.servers import free_port

HAPROXY = shutil.which("haproxy") or shutil.which("haproxy", path="/usr/sbin:/usr/local/sbin")


@dataclass
class Haproxy:
    url: str
    """The frontend: requests sent here are balanced between treatment and control."""
    admin_socket: str
    tcp_socket: str
    operator_socket: str

    def ask(self, command: str) -> str:
        """One Runtime API command on the admin socket (test setup, not the driver)."""
        with socket.socket(socket.AF_UNIX) as sock:
            sock.settimeout(2)
            sock.connect(self.admin_socket)
            sock.sendall(command.encode() + b"\n")
            answer = b""
            while chunk := sock.recv(65536):
                answer += chunk
        return answer.decode().strip()


class CountingBackend:
    """A simulator whose every request is counted as it arrives: the proof of where HAProxy
    sent traffic."""

    def __init__(self, variant: str) -> None:
        # The deployment `search` is all treatment on one, all control on the other: its
        # answers name the variant that served them.
        self.server = SimulatorServer({"search": 100 if variant == "treatment" else 0})
        self.hits = 0

        @self.server.app.middleware("http")
        async def count(request: Request, call_next: RequestResponseEndpoint) -> Response:
            self.hits += 1
            return await call_next(request)

    @property
    def port(self) -> int:
        return self.server.port


@contextmanager
def running_haproxy(
    workdir: Path, treatment: CountingBackend, control: CountingBackend, weights: tuple[int, int]
) -> Iterator[Haproxy]:
    if HAPROXY is None:
        pytest.skip("haproxy is not installed (Debian: apt-get install haproxy)")
    workdir.mkdir(parents=True, exist_ok=True)
    front, tcp = free_port(), free_port()
    haproxy = Haproxy(
        url=f"http://127.0.0.1:{front}",
        admin_socket=str(workdir / "admin.sock"),
        tcp_socket=f"tcp://127.0.0.1:{tcp}",
        operator_socket=str(workdir / "operator.sock"),
    )
    config = workdir / "haproxy.cfg"
    config.write_text(
        f"""global
    stats socket {haproxy.admin_socket} mode 600 level admin
    stats socket ipv4@127.0.0.1:{tcp} level admin
    stats socket {haproxy.operator_socket} mode 600 level operator

defaults
    mode http
    timeout connect 1s
    timeout client 5s
    timeout server 5s

frontend search
    bind 127.0.0.1:{front}
    default_backend search

backend search
    balance roundrobin
    server treatment 127.0.0.1:{treatment.port} weight {weights[0]}
    server control 127.0.0.1:{control.port} weight {weights[1]}
"""
    )
    log = (workdir / "haproxy.log").open("w")
    process = subprocess.Popen([HAPROXY, "-db", "-f", str(config)], stdout=log, stderr=log)
    try:
        deadline = time.monotonic() + 5
        while not _answers(haproxy):
            if process.poll() is not None or time.monotonic() > deadline:
                log.flush()
                pytest.skip(f"haproxy cannot run here: {(workdir / 'haproxy.log').read_text()}")
            time.sleep(0.02)
        yield haproxy
    finally:
        process.terminate()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


def _answers(haproxy: Haproxy) -> bool:
    try:
        return "treatment" in haproxy.ask("show servers state search")
    except OSError:
        return False


def through(haproxy: Haproxy, requests: int) -> list[str]:
    """`requests` searches through HAProxy, each on a new connection; the variant of each
    answer."""
    variants = []
    fresh = httpx.Limits(max_keepalive_connections=0)
    with httpx.Client(base_url=haproxy.url, timeout=5, limits=fresh) as http:
        for i in range(requests):
            answer = http.get("/search/search", params={"q": f"query {i}"})
            variants.append(str(answer.json()["variant"]))
    return variants
