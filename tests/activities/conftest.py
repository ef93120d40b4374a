"""One redis-server and one simulator for the activity tests; each test uses its own
deployment names, so they do not see each other's changes."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest

from activities.notify import ConsoleNotifier
from activities.procedure import RollbackActivities
from simulator import SimulatorServer
from tests.activities.servers import redis_url, settings_for

__all__ = ["redis_url"]


@pytest.fixture(scope="module")
def simulator() -> Iterator[SimulatorServer]:
    with SimulatorServer(window_seconds=0.3) as server:
        yield server


@pytest.fixture
def notifier() -> ConsoleNotifier:
    return ConsoleNotifier()


@pytest.fixture
async def acts(
    simulator: SimulatorServer, redis_url: str, notifier: ConsoleNotifier
) -> AsyncIterator[RollbackActivities]:
    activities = RollbackActivities(settings_for(simulator.url, redis_url), notifier=notifier)
    yield activities
    await activities.aclose()
