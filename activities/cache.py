"""The configuration cache in Redis: `FLUSHDB` on its own database, and no other."""

from __future__ import annotations

from redis import exceptions as redis_errors
from redis.asyncio import ConnectionPool, Redis
from redis.asyncio.connection import parse_url

from activities.targets import rejected, unavailable


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

    async def flush(self) -> int:
        """The keys there were; `FLUSHDB` again on an empty database is harmless."""
        try:
            keys = int(await self.redis.dbsize())
            await self.redis.flushdb()
        except (redis_errors.AuthenticationError, redis_errors.ResponseError) as error:
            raise rejected(f"{self.where} refused FLUSHDB: {error}") from None
        except (redis_errors.ConnectionError, redis_errors.TimeoutError, OSError) as error:
            raise unavailable(f"{self.where} unreachable: {error}") from None
        return keys

    async def aclose(self) -> None:
        await self.redis.aclose()


def _without_password(url: str) -> str:
    scheme, _, rest = url.partition("://")
    return f"{scheme}://{rest.rpartition('@')[2]}" if rest else url
