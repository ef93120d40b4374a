"""A Temporal client made on first use: the gateway starts, and says so, while Temporal is down."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from temporalio.client import Client

from config.connection import connect
from config.settings import Settings


class TemporalUnavailable(Exception):
    pass


class TemporalLink:
    def __init__(self, settings: Settings, client: Client | None = None) -> None:
        self._settings = settings
        self._client = client
        self._lock = asyncio.Lock()

    async def client(self) -> Client:
        if self._client is not None:
            return self._client
        async with self._lock:
            if self._client is None:
                try:
                    self._client = await asyncio.wait_for(
                        connect(self._settings, service="rollback-gateway"),
                        timeout=self._settings.alerts_answer_within,
                    )
                except Exception as error:
                    raise TemporalUnavailable(
                        f"Temporal at {self._settings.temporal_address} is unreachable: {error}"
                    ) from None
            return self._client

    async def healthy(self) -> tuple[bool, str]:
        try:
            client = await self.client()
            ok = await client.service_client.check_health(timeout=_seconds(2))
            return ok, "serving" if ok else "not serving"
        except Exception as error:
            return False, str(error)


def _seconds(n: float) -> timedelta:
    return timedelta(seconds=n)
