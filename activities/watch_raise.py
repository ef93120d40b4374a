"""The canary watch raising a sustained breach into `rollback-<deployment>`: the same
signal-with-start an alert takes through the gateway (client/operations.py), so whichever comes
first starts the rollback and the other joins it, and a repeat (same delivery key) counts once.

It needs the worker's Temporal client, so it lives apart from the target-facing activities.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from temporalio import activity
from temporalio.client import Client
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError

from client import operations
from contract.watch import WatchRaiseInput


class WatchActivities:
    def __init__(self, client: Client) -> None:
        self.client = client

    def activities(self) -> list[Callable[..., Any]]:
        return [self.raise_from_watch]

    @activity.defn(name="raise_from_watch")
    async def raise_from_watch(self, inp: WatchRaiseInput) -> str:
        """The rollback's workflow id; retried while Temporal does not answer."""
        try:
            handle = await operations.send_trigger(
                self.client,
                task_queue=activity.info().task_queue,
                policy=inp.policy,
                deployment=inp.deployment,
                event=inp.event,
                options=inp.options,
            )
        except RPCError as error:
            raise ApplicationError(
                f"could not raise {inp.event.trigger} into rollback-{inp.deployment}: "
                f"{error.message}",
                type="TemporalUnavailable",
            ) from None
        return handle.id
