"""Reaching Temporal from the CLI, with errors that say what to do."""

from __future__ import annotations

from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode

from cli.errors import Failure, UserError
from config.connection import connect
from config.settings import Settings


async def client_for(settings: Settings) -> Client:
    try:
        return await connect(settings)
    except Exception as error:  # the SDK raises a bare RuntimeError on connect
        raise Failure(
            f"cannot reach Temporal at {settings.temporal_address} "
            f"(namespace {settings.temporal_namespace}): {error}. Start the embedded stack with "
            "`rollback up`, or set ROLLBACK_TEMPORAL_ADDRESS"
        ) from None


def explain_rpc(error: RPCError, deployment: str) -> Failure | UserError:
    """An unknown deployment is bad input (exit 2), like everywhere else in the CLI."""
    if error.status == RPCStatusCode.NOT_FOUND:
        return UserError(f"--deployment: no rollback is running for deployment {deployment!r}")
    return Failure(f"Temporal refused the call for {deployment!r}: {error.message}")
