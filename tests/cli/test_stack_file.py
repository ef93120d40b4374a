"""`ROLLBACK_HOME/stack.json` is read while the supervisor rewrites it (a part restarted):
the reader must always see a whole file (CI once read an empty one mid-restart)."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from pathlib import Path

from cli.stack import Part, Stack
from config.settings import Settings


def test_a_reader_never_sees_a_half_written_stack_file(tmp_path: Path) -> None:
    stack = Stack(Settings(), tmp_path, say=lambda _: None)
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        stack.parts.append(
            Part("worker", [], "here", ready=lambda: True, process=sleeper, log=tmp_path / "w")
        )
        stack._write_pids()
        stop = threading.Event()

        def rewrite() -> None:
            while not stop.is_set():
                stack._write_pids()

        writer = threading.Thread(target=rewrite)
        writer.start()
        try:
            seen = [
                json.loads((tmp_path / "stack.json").read_text())["parts"]["worker"]["pid"]
                for _ in range(3000)
            ]
        finally:
            stop.set()
            writer.join()
        assert set(seen) == {sleeper.pid}
    finally:
        sleeper.kill()
        sleeper.wait()


def test_the_alerts_token_is_private_whole_and_the_same_for_everyone(tmp_path: Path) -> None:
    stacks = [Stack(Settings(), tmp_path, say=lambda _: None) for _ in range(8)]
    tokens: list[str] = []
    threads = [threading.Thread(target=lambda s=s: tokens.append(s.alerts_token())) for s in stacks]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    path = tmp_path / "alerts-token"
    assert len(set(tokens)) == 1 and len(tokens[0]) >= 32
    assert path.stat().st_mode & 0o777 == 0o600
    assert sorted(p.name for p in tmp_path.iterdir()) == ["alerts-token"]  # no partial left

    path.write_text("")  # a crash between creating and writing, before this was fixed
    fresh = stacks[0].alerts_token()
    assert fresh and fresh != tokens[0] and path.read_text().strip() == fresh
