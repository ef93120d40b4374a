"""Step 2 against the simulator and a real Redis: each action once, only the cache database."""

from __future__ import annotations

import pytest
import redis.asyncio as aioredis
from temporalio.exceptions import ApplicationError

from activities.cache import ConfigCache, Flush
from activities.models import ConfigurationRevertInput
from activities.procedure import RollbackActivities
from simulator import SimulatorServer
from tests.activities.helpers import calls_of, ctx, deploy, sim_get

COMMANDS = [
    "systemctl stop hedging-service",
    "config-update --disable-early-stop",
    "feature-flag --disable hedging ta_nra_optimization",
    "redis-cli FLUSHDB",
]


async def fill_databases(redis_url: str, *dbs: int) -> None:
    for db in dbs:
        client = aioredis.Redis.from_url(redis_url.rsplit("/", 1)[0] + f"/{db}")
        await client.mset({f"key-{i}": "v" for i in range(3)})
        await client.aclose()


async def dbsize(redis_url: str, db: int) -> int:
    client = aioredis.Redis.from_url(redis_url.rsplit("/", 1)[0] + f"/{db}")
    try:
        return int(await client.dbsize())
    finally:
        await client.aclose()


async def test_configuration_revert_acts_once_and_flushes_only_the_cache(
    acts: RollbackActivities, simulator: SimulatorServer, redis_url: str
) -> None:
    deployment = await deploy(simulator, 25)
    await fill_databases(redis_url, 0, 1, 2)
    inp = ConfigurationRevertInput(ctx=ctx(deployment))

    first = await acts.configuration_revert(inp)
    again = await acts.configuration_revert(inp)

    assert [a.command for a in first.actions] == COMMANDS
    assert [a.outcome for a in first.actions] == ["done"] * 4
    assert [a.outcome for a in again.actions] == ["already"] * 4
    assert all(f"`{c}`" in first.summary for c in COMMANDS)
    assert "database 1: 3 key(s) flushed" in first.summary
    assert (await sim_get(simulator, f"/services/{deployment}/hedging-service"))["status"] == (
        "stopped"
    )
    assert (await sim_get(simulator, f"/config/{deployment}"))["ta_nra_early_stop"] is False
    flags = (await sim_get(simulator, f"/flags/{deployment}"))["flags"]
    assert flags == {"hedging": False, "ta_nra_optimization": False}
    assert [await dbsize(redis_url, db) for db in (0, 1, 2)] == [3, 0, 3]
    assert first.integrity is not None and first.integrity.result == "pass"
    assert "other databases unchanged (db0: 3 key(s), db2: 3 key(s))" in first.integrity.evidence

    applied = [c for c in await calls_of(simulator, deployment) if c["outcome"] == "applied"]
    assert sorted(c["route"] for c in applied) == [
        "PATCH /config/{d}",
        "POST /services/{d}/hedging-service/stop",
        "PUT /flags/{d}/hedging",
        "PUT /flags/{d}/ta_nra_optimization",
    ]
    assert {c["idempotency_key"] for c in applied} == {
        f"rollback-{deployment}/run-1/configuration_revert/{action}"
        for action in (
            "stop:hedging-service",
            "disable-early-stop",
            "disable:hedging",
            "disable:ta_nra_optimization",
        )
    }


async def test_the_cache_database_setting_wins_over_the_url(redis_url: str) -> None:
    await fill_databases(redis_url, 5, 6)
    cache = ConfigCache(redis_url.rsplit("/", 1)[0] + "/5", db=6, timeout=1)
    try:
        assert (await cache.flush()).keys == 3
        assert (await cache.flush()).keys == 0
    finally:
        await cache.aclose()
    assert [await dbsize(redis_url, 5), await dbsize(redis_url, 6)] == [3, 0]


async def test_redis_down_is_retryable() -> None:
    cache = ConfigCache("redis://:secret@127.0.0.1:9/0", db=1, timeout=0.5)
    try:
        with pytest.raises(ApplicationError) as caught:
            await cache.flush()
    finally:
        await cache.aclose()
    assert caught.value.type == "TargetUnavailable" and not caught.value.non_retryable
    assert caught.value.message.startswith("Redis redis://127.0.0.1:9/0 database 1 unreachable")
    assert "secret" not in caught.value.message


async def test_a_flush_that_other_databases_see_change_fails_data_integrity() -> None:
    flush = Flush(db=1, keys=3, others_before={"db0": 3}, others_after={"db0": 0})
    verdict = flush.integrity()
    assert verdict.result == "fail"
    assert "before {'db0': 3}, after {'db0': 0}" in verdict.evidence
