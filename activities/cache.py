"""The configuration cache in Redis: `FLUSHDB` on its own database, and no other."""

from __future__ import annotations

from dataclasses import dataclass

from redis import exceptions as redis_errors
from redis.asyncio import ConnectionPool, Redis
from redis.asyncio.connection import parse_url

from activities.targets import rejected, unavailable
from runbook.status import RecoveryMeasure


@dataclass(frozen=True)
class Flush:
    db: int
    keys: int
    others_before: dict[str, int]
    others_after: dict[str, int]

    def integrity(self) -> RecoveryMeasure:
        """Data integrity: the flush touched the configuration cache and nothing else."""
        others = ", ".join(f"{db}: {n} key(s)" for db, n in self.others_after.items()) or "none"
        if self.others_before == self.others_after:
            return RecoveryMeasure(
                result="pass",
                evidence=f"FLUSHDB emptied database {self.db} only; other databases unchanged "
                f"({others})",
            )
        return RecoveryMeasure(
            result="fail",
            evidence=f"other databases changed during the flush of database {self.db}: "
            f"before {self.others_before}, after {self.others_after}",
        )


class ConfigCache:
    """`db` wins over a database number in `url`: the URL says where Redis is, `db` which
    database holds the configuration cache."""

    def __init__(self, url: str, db: int, timeout: float) -> None:
        options = parse_url(url)
        options["db"] = db
        self.where = f"Redis {_without_password(url)} database {db}"
        self.db = db
        self.redis = Redis(
            connection_pool=ConnectionPool(
                **options, socket_timeout=timeout, socket_connect_timeout=timeout
            )
        )

    async def flush(self) -> Flush:
        """`FLUSHDB` here, with the key counts of every other database read before and after,
        so the rollback can show that nothing else changed; again on an empty one is harmless."""
        try:
            before = await self._other_databases()
            keys = int(await self.redis.dbsize())
            await self.redis.flushdb()
            after = await self._other_databases()
        except (redis_errors.AuthenticationError, redis_errors.ResponseError) as error:
            raise rejected(f"{self.where} refused FLUSHDB: {error}") from None
        except (redis_errors.ConnectionError, redis_errors.TimeoutError, OSError) as error:
            raise unavailable(f"{self.where} unreachable: {error}") from None
        return Flush(self.db, keys, before, after)

    async def probe(self) -> int:
        """Read-only (`DBSIZE`): the configuration cache answers with these credentials; its
        key count."""
        try:
            return int(await self.redis.dbsize())
        except (redis_errors.AuthenticationError, redis_errors.ResponseError) as error:
            raise rejected(f"{self.where} refused DBSIZE: {error}") from None
        except (redis_errors.ConnectionError, redis_errors.TimeoutError, OSError) as error:
            raise unavailable(f"{self.where} unreachable: {error}") from None

    async def _other_databases(self) -> dict[str, int]:
        keyspace = await self.redis.info("keyspace")
        mine = f"db{self.db}"
        return {db: int(v["keys"]) for db, v in sorted(keyspace.items()) if db != mine}

    async def aclose(self) -> None:
        await self.redis.aclose()


def _without_password(url: str) -> str:
    scheme, _, rest = url.partition("://")
    return f"{scheme}://{rest.rpartition('@')[2]}" if rest else url
