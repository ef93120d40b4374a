"""A simulated search service under canary: the target systems (load balancer, config
service, feature flags, service control), its metrics and logs, with fault injection,
for any number of named deployments. Self-contained: imports nothing else of the repo.
"""

from simulator.app import create_app
from simulator.args import parse_deployment_arg
from simulator.server import SimulatorServer, ThreadedServer, serve

__all__ = ["SimulatorServer", "ThreadedServer", "create_app", "parse_deployment_arg", "serve"]
