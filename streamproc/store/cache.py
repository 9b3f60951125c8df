"""The search cache's entries (``ns:cache:<provider>:<sha>``): written here, read and touched
by the cache library's one function (``lua/cache.lua``), whose call is laid out here too."""

from __future__ import annotations

from typing import NamedTuple, cast

from redis.asyncio import Redis

from streamproc.store.fields import CacheField
from streamproc.store.functions import CACHE, Function


class Ttl(NamedTuple):
    """A hit stretches an entry's expiry to clamp(base * (1 + log2(1 + hits)), min, max)."""

    base_ms: int
    min_ms: int
    max_ms: int


TOUCH = Function("sp_cache_touch", CACHE, lambda reply: cast(bytes | None, reply))


async def touch(redis: Redis, key: str, ttl: Ttl) -> bytes | None:
    """The entry's reply (JSON), counting the hit and stretching its expiry; None when there
    is no entry."""
    return await TOUCH(redis, [1, key, *ttl])


async def put(
    redis: Redis, key: str, result: bytes, created_ms: int, empty: bool, ttl_ms: int
) -> None:
    """Write an entry, with no hits yet, expiring after ``ttl_ms``."""
    pipe = redis.pipeline(transaction=True)
    pipe.hset(
        key,
        mapping={
            CacheField.RESULT: result,
            CacheField.CREATED: created_ms,
            CacheField.HITS: 0,
            CacheField.EMPTY: int(empty),
        },
    )
    pipe.pexpire(key, ttl_ms)
    await pipe.execute()
