"""A simulated search service under canary: the target systems (load balancer, config
service, feature flags, service control), its metrics and logs, with fault injection,
for any number of named deployments. Self-contained: imports nothing else of the repo.

Its names load on first use, so that `simulator.args` (the CLI's) costs no web framework.
"""

from __future__ import annotations

import importlib
from typing import Any

_WHERE = {
    "SimulatorServer": "simulator.server",
    "ThreadedServer": "simulator.server",
    "serve": "simulator.server",
    "create_app": "simulator.app",
    "parse_deployment_arg": "simulator.args",
}

__all__ = ["SimulatorServer", "ThreadedServer", "create_app", "parse_deployment_arg", "serve"]


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module 'simulator' has no attribute {name!r}")
    return getattr(importlib.import_module(_WHERE[name]), name)
