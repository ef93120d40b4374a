"""``python -m simulator --port 8100 --deployment search-a=25 --deployment search-b=50``"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import NoReturn

from simulator.args import parse_deployment_arg
from simulator.server import serve


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        """One readable line and exit 2, instead of the usage block."""
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def _deployment(text: str) -> tuple[str, int]:
    try:
        return parse_deployment_arg(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="python -m simulator",
        description="Simulated search service under canary (load balancer, config, flags, "
        "service control, metrics, logs) for the rollback engine.",
    )
    parser.add_argument("--port", type=int, default=8100, help="port to listen on (default 8100)")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    parser.add_argument(
        "--deployment",
        action="append",
        type=_deployment,
        default=[],
        metavar="NAME=TREATMENT_PERCENT",
        help="a deployment in canary with that treatment share; repeatable",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    deployments: dict[str, int] = {}
    for name, treatment in args.deployment:
        if name in deployments:
            parser.error(f"argument --deployment: {name!r} given twice")
        deployments[name] = treatment
    if not 0 <= args.port <= 65535:
        parser.error(f"argument --port: must be 0..65535, got {args.port}")
    serve(args.port, deployments, host=args.host)
    return 0


if __name__ == "__main__":
    sys.exit(main())
