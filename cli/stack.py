"""The embedded stack behind `rollback up` and `rollback demo`: one process per part.

Temporal's dev server (SQLite under the home folder, Web UI, search attributes registered), a
real redis-server, the simulator, the worker and the gateway. Each part whose address in the
settings is on this machine is started here; a part that points elsewhere (a Temporal cluster,
a real Redis, real targets) is used as it is. Children run in their own session, so Ctrl-C
reaches only this process, which stops them in reverse order.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Self
from urllib.parse import urlsplit

import httpx

from cli.errors import Failure, UserError
from config.settings import Settings
from worker.binaries import MissingBinary, redis_server, temporal_cli
from workflows import search_attributes

LOCAL_HOSTS = {"127.0.0.1", "localhost", "::1", "0.0.0.0"}
DEV_SERVER_TUNING = [
    # SQLite in WAL mode, synced at checkpoints: a killed server loses nothing it acknowledged
    # (only a power cut can cost the last moments), and an alert storm is not serialized on
    # fsync per transaction.
    "--sqlite-pragma",
    "journal_mode=wal",
    "--sqlite-pragma",
    "synchronous=normal",
    # An activity a workflow task schedules on this worker's queue is handed back with the
    # task's answer: one round trip less on the way to the emergency stop.
    "--dynamic-config-value",
    "system.enableActivityEagerExecution=true",
]
READY_TIMEOUT_SECONDS = 60.0
STOP_TIMEOUT_SECONDS = 10.0
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
MAX_RESTARTS = 5
RESTART_WINDOW_SECONDS = 120.0
"""A part restarted this many times within this window is given up on: the stack stops."""


@dataclass(frozen=True)
class Endpoint:
    host: str
    port: int
    setting: str
    """The setting that chose this address, named in errors."""

    @property
    def local(self) -> bool:
        return self.host in LOCAL_HOSTS

    def __str__(self) -> str:
        return f"{self.host}:{self.port}"


def endpoint(address: str, setting: str, default_port: int) -> Endpoint:
    """`"127.0.0.1:7233"`, `"redis://h:6379/0"` or `"http://h:8100"` → host and port."""
    text = address if "//" in address else f"//{address}"
    try:
        parts = urlsplit(text)
        port = parts.port or default_port
    except ValueError as error:
        raise UserError(f"{setting}: {address!r} is not an address: {error}") from None
    if not parts.hostname:
        raise UserError(f"{setting}: {address!r} names no host")
    return Endpoint(parts.hostname, port, setting)


@dataclass
class Part:
    """One child process and how to tell it is ready."""

    name: str
    argv: list[str]
    where: str
    ready: Callable[[], bool]
    process: subprocess.Popen[bytes] | None = None
    log: Path | None = None
    env: dict[str, str] = field(default_factory=dict)
    """Settings of this part only."""
    restarts: list[float] = field(default_factory=list)
    """When it was restarted (monotonic), the last few."""


@dataclass
class Stack:
    settings: Settings
    home: Path
    deployments: dict[str, int] = field(default_factory=dict)
    simulator: bool = True
    gateway: bool = True
    watch: bool = True
    """Start the canary watch of each simulated deployment."""
    extra_env: dict[str, str] = field(default_factory=dict)
    """Settings for the children only (the demo shortens Step 4's observation)."""
    say: Callable[[str], None] = print
    parts: list[Part] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)

    # --- planning ----------------------------------------------------------------------

    def plan(self) -> list[Part]:
        """What this machine must run, checked before anything starts (busy ports included)."""
        s = self.settings
        temporal = endpoint(s.temporal_address, "ROLLBACK_TEMPORAL_ADDRESS", 7233)
        ui = endpoint(s.ui_url, "ROLLBACK_UI_URL", 8233)
        redis = endpoint(s.redis_url, "ROLLBACK_REDIS_URL", 6379)
        target = endpoint(s.target_url, "ROLLBACK_TARGET_URL", 80)
        gateway = Endpoint(s.gateway_host, s.gateway_port, "ROLLBACK_GATEWAY_PORT")
        parts: list[Part] = []
        if temporal.local:
            parts.append(self._temporal(temporal, ui))
        else:
            self.say(f"Temporal: using {temporal} ({temporal.setting})")
        if redis.local:
            parts.append(self._redis(redis))
        else:
            self.say(f"Redis: using {redis} ({redis.setting})")
        if self.simulator and target.local:
            parts.append(self._simulator(target))
        if s.worker_processes == 2:
            # Workflows and activities in two processes: each has a GIL of its own.
            for role in ("workflows", "activities"):
                parts.append(
                    Part(
                        f"worker-{role[0]}",
                        self._rollback("worker"),
                        f"{role} on task queue {s.task_queue}",
                        lambda: True,
                        env={"ROLLBACK_WORKER_ROLE": role},
                    )
                )
        else:
            parts.append(
                Part("worker", self._rollback("worker"), f"task queue {s.task_queue}", lambda: True)
            )
        if self.gateway:
            parts.append(self._gateway(gateway))
        self._check_ports(temporal, ui, redis, target, gateway, parts)
        return parts

    def _check_ports(
        self,
        temporal: Endpoint,
        ui: Endpoint,
        redis: Endpoint,
        target: Endpoint,
        gateway: Endpoint,
        parts: list[Part],
    ) -> None:
        names = {p.name for p in parts}
        wanted = {
            "temporal": [temporal, ui],
            "redis": [redis],
            "simulator": [target],
            "gateway": [gateway],
        }
        seen: dict[int, Endpoint] = {}
        for name, endpoints in wanted.items():
            if name not in names:
                continue
            for ep in endpoints:
                if ep.port in seen:
                    raise UserError(
                        f"{ep.setting} and {seen[ep.port].setting} both want port {ep.port}"
                    )
                seen[ep.port] = ep
                if not port_free(ep.host, ep.port):
                    raise UserError(
                        f"{ep.setting}: port {ep.port} on {ep.host} is already in use "
                        f"(another `rollback up`? stop it, or choose another port)"
                    )

    def _temporal(self, temporal: Endpoint, ui: Endpoint) -> Part:
        try:
            binary = temporal_cli()
        except MissingBinary as error:
            raise Failure(str(error)) from None
        argv = [
            binary,
            "server",
            "start-dev",
            "--ip",
            temporal.host,
            "--port",
            str(temporal.port),
            "--ui-port",
            str(ui.port),
            "--db-filename",
            str(self.home / "temporal.db"),
            "--namespace",
            self.settings.temporal_namespace,
            "--log-level",
            "warn",
            *search_attributes.cli_flags(),
            *DEV_SERVER_TUNING,
        ]
        describe = [
            binary,
            "operator",
            "namespace",
            "describe",
            "--namespace",
            self.settings.temporal_namespace,
            "--address",
            str(temporal),
        ]

        def ready() -> bool:
            if not (port_open(temporal.host, temporal.port) and port_open(ui.host, ui.port)):
                return False
            return subprocess.run(describe, capture_output=True, timeout=10).returncode == 0

        return Part("temporal", argv, f"{temporal} (Web UI {self.settings.ui_url})", ready)

    def _redis(self, redis: Endpoint) -> Part:
        try:
            binary = redis_server()
        except MissingBinary as error:
            raise Failure(str(error)) from None
        argv = [
            binary,
            "--bind",
            redis.host,
            "--port",
            str(redis.port),
            "--dir",
            str(self.home.resolve()),
            "--dbfilename",
            "redis.rdb",
            "--save",
            "60 1",
            # Every write in the append-only file, fsynced each second: the databases Step 2
            # must leave alone survive a restart, a kill -9 included (a second at most lost).
            "--appendonly",
            "yes",
            "--appendfsync",
            "everysec",
        ]
        return Part("redis", argv, f"redis://{redis}", lambda: port_open(redis.host, redis.port))

    def _simulator(self, target: Endpoint) -> Part:
        argv = self._rollback("simulate", "--host", target.host, "--port", str(target.port))
        for name, share in sorted(self.deployments.items()):
            argv += ["--deployment", f"{name}={share}"]
        url = f"http://{target}"
        return Part("simulator", argv, url, lambda: http_ok(f"{url}/healthz"))

    def _gateway(self, gateway: Endpoint) -> Part:
        url = f"http://{gateway}"
        return Part(
            "gateway",
            self._rollback("gateway"),
            f"{url} (alerts: {url}/alerts/alertmanager, {url}/alerts/grafana)",
            lambda: http_ok(f"{url}/openapi.json"),
        )

    @staticmethod
    def _rollback(*args: str) -> list[str]:
        return [sys.executable, "-m", "cli.main", *args]

    # --- running -----------------------------------------------------------------------

    def start(self) -> Self:
        self.home.mkdir(parents=True, exist_ok=True)
        (self.home / "logs").mkdir(exist_ok=True)
        planned = self.plan()
        self.env = {**os.environ, **self.child_env()}
        try:
            for part in planned:
                self._start(part)
            if self.simulator and self.deployments and self.watch:
                self._watch(sorted(self.deployments))
        except BaseException:
            self.stop()
            raise
        return self

    def _watch(self, deployments: list[str]) -> None:
        """The canary watch of each simulated deployment (`rollback watch -d A -d B …`)."""
        names = [arg for name in deployments for arg in ("-d", name)]
        done = subprocess.run(
            self._rollback("watch", *names, "--format", "json"),
            env=self.env,
            capture_output=True,
            text=True,
            timeout=60 + len(deployments),
        )
        if done.returncode != 0:
            raise Failure(f"`rollback watch {' '.join(names)}` failed: {done.stderr.strip()}")
        shown = ", ".join(deployments[:6]) + (
            f" and {len(deployments) - 6} more" if len(deployments) > 6 else ""
        )
        self.say(f"  {'watch':<10} {shown} (rollback status -d NAME)")

    def child_env(self) -> dict[str, str]:
        """What every child must agree on: the alerts token (made once, kept in the home)."""
        token = self.settings.alerts_token or self.alerts_token()
        return {"ROLLBACK_ALERTS_TOKEN": token, "PYTHONUNBUFFERED": "1", **self.extra_env}

    def alerts_token(self) -> str:
        """Made once, private from its first byte, and put in place whole (a crash or a second
        `rollback up` never leaves an empty token that would refuse every alert)."""
        path = self.home / "alerts-token"
        existing = path.read_text().strip() if path.exists() else None
        if existing:
            return existing
        partial = self.home / f"alerts-token.{secrets.token_hex(8)}.partial"
        fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as out:
            out.write(secrets.token_urlsafe(24))
        try:
            if existing == "":  # left empty by a crash before this was fixed
                os.replace(partial, path)
            else:
                os.link(partial, path)  # never over a token another process just made
        except FileExistsError:
            pass
        finally:
            partial.unlink(missing_ok=True)
        return path.read_text().strip()

    def _start(self, part: Part, restart: bool = False) -> None:
        if not restart:
            self.parts.append(part)  # before it runs: a signal now still stops it
        part.log = self.home / "logs" / f"{part.name}.log"
        with part.log.open("ab") as log:
            part.process = subprocess.Popen(
                part.argv,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env={**self.env, **part.env},
                start_new_session=True,
            )
        self._write_pids()
        deadline = time.monotonic() + READY_TIMEOUT_SECONDS
        while not part.ready():
            if part.process.poll() is not None:
                raise Failure(f"{part.name} exited at start-up:\n{self.tail(part)}")
            if time.monotonic() > deadline:
                raise Failure(f"{part.name} not ready after {READY_TIMEOUT_SECONDS:g} s")
            time.sleep(0.1)
        if part.name.startswith("worker"):
            time.sleep(0.5)  # a worker that cannot start fails within this
            if part.process.poll() is not None:
                raise Failure(f"worker exited at start-up:\n{self.tail(part)}")
        self.say(f"  {part.name:<10} {part.where}   log: {part.log}")

    def check(self) -> None:
        """A part that died is a failure, with the end of its log."""
        for part in self.parts:
            if part.process is not None and part.process.poll() is not None:
                raise Failure(
                    f"{part.name} stopped (exit {part.process.returncode}):\n{self.tail(part)}"
                )

    def wait(self) -> None:
        """Supervise until stopped (Ctrl-C, SIGTERM, SIGHUP): a part that dies is restarted with
        backoff while the others keep running; one that keeps dying stops the stack."""
        while True:
            for part in list(self.parts):
                if part.process is not None and part.process.poll() is not None:
                    self._restart(part)
            time.sleep(0.5)

    def _restart(self, part: Part) -> None:
        assert part.process is not None
        code = part.process.returncode
        now = time.monotonic()
        part.restarts = [t for t in part.restarts if now - t < RESTART_WINDOW_SECONDS]
        if len(part.restarts) >= MAX_RESTARTS:
            raise Failure(
                f"{part.name} keeps dying (exit {code}, {MAX_RESTARTS} restarts in "
                f"{RESTART_WINDOW_SECONDS:g} s): stopping the stack. Its log:\n{self.tail(part)}"
            )
        delay = min(2.0 ** len(part.restarts) * 0.5, 8.0)
        self.say(
            f"  {part.name} exited (code {code}); restarting in {delay:g} s "
            f"(restart {len(part.restarts) + 1} of {MAX_RESTARTS}; log: {part.log})"
        )
        time.sleep(delay)
        part.restarts.append(time.monotonic())
        try:
            self._start(part, restart=True)  # in its place: the stop order stays the start order
        except Failure as error:
            self.say(f"  {part.name} did not come back: {str(error).splitlines()[0]}")
        else:
            assert part.process is not None
            self.say(f"  {part.name} restarted (pid {part.process.pid})")

    def stop(self) -> None:
        """Every part, in reverse order; signals meanwhile are ignored (the stop finishes)."""
        previous = {}
        with contextlib.suppress(ValueError):  # not the main thread: nothing to guard
            previous = {sig: signal.signal(sig, signal.SIG_IGN) for sig in STOP_SIGNALS}
        try:
            self._stop_parts()
        finally:
            for sig, old in previous.items():
                signal.signal(sig, old)

    def _stop_parts(self) -> None:
        for part in reversed(self.parts):
            proc = part.process
            if proc is None or proc.poll() is not None:
                continue
            proc.send_signal(signal.SIGINT if part.name != "redis" else signal.SIGTERM)
            try:
                proc.wait(timeout=STOP_TIMEOUT_SECONDS)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        self.parts.clear()

    def _write_pids(self) -> None:
        """`ROLLBACK_HOME/stack.json`: each part's pid and log, for operators (and tests)."""
        parts = {
            p.name: {"pid": p.process.pid, "log": str(p.log), "restarts": len(p.restarts)}
            for p in self.parts
            if p.process is not None
        }
        # Written aside and renamed: a reader (an operator's script, `rollback stop`) never sees
        # a half-written file while a part is being restarted.
        partial = self.home / "stack.json.partial"
        partial.write_text(json.dumps({"pid": os.getpid(), "parts": parts}))
        os.replace(partial, self.home / "stack.json")

    def tail(self, part: Part, lines: int = 15) -> str:
        if part.log is None or not part.log.exists():
            return "(no log)"
        text = part.log.read_text(errors="replace").splitlines()[-lines:]
        return "\n".join(f"    {line}" for line in text) + f"\n  (full log: {part.log})"

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


class StopRequested(KeyboardInterrupt):
    """SIGTERM, SIGHUP or SIGINT: stop every part, in reverse order."""


@contextlib.contextmanager
def stop_on_signals() -> Iterator[None]:
    """What systemd, docker and supervisord send stops the stack as Ctrl-C does, in the
    foreground or the background (where a shell may have set SIGINT to be ignored). A second
    signal while stopping is ignored: the stop finishes."""
    stopping = False

    def handler(signum: int, frame: object) -> None:
        nonlocal stopping
        if stopping:
            return
        stopping = True
        raise StopRequested(signal.Signals(signum).name)

    previous = {sig: signal.signal(sig, handler) for sig in STOP_SIGNALS}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def port_free(host: str, port: int) -> bool:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def port_open(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def http_ok(url: str) -> bool:
    try:
        return httpx.get(url, timeout=1.0).status_code < 500
    except httpx.HTTPError:
        return False
