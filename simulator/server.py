"""Running the app: blocking (:func:`serve`) or in a background thread (``SimulatorServer``)."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from types import TracebackType
from typing import Self

import uvicorn
from fastapi import FastAPI

from simulator.app import create_app

STARTUP_TIMEOUT_SECONDS = 10.0


def serve(port: int, deployments: dict[str, int], host: str = "127.0.0.1") -> None:
    """Serve until interrupted."""
    uvicorn.run(create_app(deployments), host=host, port=port, log_level="warning")


class ThreadedServer:
    """Any ASGI app on a real port, in a daemon thread. ``port=0`` takes a free port.

    Use ``with`` or ``async with``; ``.url`` is the base URL.
    """

    name = "server"

    def __init__(self, app: FastAPI, port: int = 0, host: str = "127.0.0.1") -> None:
        self.app = app
        self.host = host
        self._requested_port = port
        self._socket: socket.socket | None = None
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        if self._socket is None:
            raise RuntimeError(f"{self.name} is not running")
        return int(self._socket.getsockname()[1])

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def start(self) -> None:
        if self._thread is not None:
            raise RuntimeError(f"{self.name} is already running")
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((self.host, self._requested_port))  # bound here: the port is known now
        except OSError:
            sock.close()
            raise
        config = uvicorn.Config(self.app, log_level="warning", timeout_graceful_shutdown=2)
        server = uvicorn.Server(config)
        thread = threading.Thread(
            target=server.run, kwargs={"sockets": [sock]}, name=self.name, daemon=True
        )
        self._socket, self._server, self._thread = sock, server, thread
        thread.start()
        deadline = time.monotonic() + STARTUP_TIMEOUT_SECONDS
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"{self.name} did not start on {self.host}:{self.port}")
            time.sleep(0.01)

    def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=STARTUP_TIMEOUT_SECONDS)
        if self._socket is not None:
            self._socket.close()
        self._socket, self._server, self._thread = None, None, None

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    async def __aenter__(self) -> Self:
        await asyncio.to_thread(self.start)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await asyncio.to_thread(self.stop)


class SimulatorServer(ThreadedServer):
    """The simulator on a real port, in a daemon thread, for tests and demos."""

    name = "simulator"

    def __init__(
        self,
        deployments: dict[str, int] | None = None,
        port: int = 0,
        host: str = "127.0.0.1",
        *,
        window_seconds: float = 2.0,
    ) -> None:
        super().__init__(create_app(deployments, window_seconds=window_seconds), port, host)
