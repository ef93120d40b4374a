"""`rollback simulate`: the simulated search service under canary, until Ctrl-C."""

from __future__ import annotations

import errno
import socket
from typing import Annotated

import typer

from cli.errors import UserError
from simulator.args import parse_deployment_arg


def simulate(
    port: Annotated[int, typer.Option(help="port to listen on", min=1, max=65535)] = 8100,
    host: Annotated[str, typer.Option(help="address to bind")] = "127.0.0.1",
    deployment: Annotated[
        list[str] | None,
        typer.Option(
            "--deployment",
            "-d",
            metavar="NAME=TREATMENT_PERCENT",
            help="a deployment in canary with that treatment share; repeatable",
        ),
    ] = None,
) -> None:
    """Run the simulated canary target: load balancer, config, flags, services, metrics, logs.

    Example: rollback simulate --port 8100 --deployment search-a=25 --deployment search-b=50
    """
    deployments = parse_deployments(deployment or [])
    check_port_free(host, port, "--port")
    typer.echo(f"simulator on http://{host}:{port} with {deployments or 'no deployments yet'}")
    from simulator.server import serve  # uvicorn and FastAPI only for this command

    serve(port, deployments, host=host)


def parse_deployments(texts: list[str]) -> dict[str, int]:
    """`["a=25", "b=50"]` → `{"a": 25, "b": 50}`; a `UserError` names the bad argument."""
    deployments: dict[str, int] = {}
    for text in texts:
        try:
            name, treatment = parse_deployment_arg(text)
        except ValueError as error:
            raise UserError(f"--deployment: {error}") from None
        if name in deployments:
            raise UserError(f"--deployment: {name!r} given twice")
        deployments[name] = treatment
    return deployments


def check_port_free(host: str, port: int, option: str) -> None:
    """A port already in use is a clear error before anything starts."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as error:
            if error.errno == errno.EADDRINUSE:
                raise UserError(f"{option}: {host}:{port} is already in use") from None
            raise UserError(f"{option}: cannot listen on {host}:{port}: {error.strerror}") from None
