"""The configuration cache in a real Redis: only its database is flushed; Redis down retries."""

from __future__ import annotations

import pytest
import redis.asyncio as aioredis
from temporalio.exceptions import ApplicationError

from activities.cache import ConfigCache, Flush


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
