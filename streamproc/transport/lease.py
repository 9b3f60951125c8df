"""A lease: one process at a time holds a key, with plain commands (no Lua).

``SET key holder NX PX ttl`` takes a free lease, and its holder renews it well before it
expires.  Renewing and giving up check the holder under WATCH, so the check and the change are
one step: a lease that expired meanwhile and went to another process is left alone.  Should a
holder stall past its ttl, two processes may each believe they hold the lease for a moment;
use it only for work that tolerates that (deciding a count that is written whole).
"""

from __future__ import annotations

from redis.asyncio import Redis
from redis.exceptions import WatchError


async def hold(redis: Redis, key: str, holder: str, ttl_ms: int) -> bool:
    """Take the lease or renew it for ``ttl_ms``; whether ``holder`` holds it now."""
    if await redis.set(key, holder, nx=True, px=ttl_ms):
        return True
    return await _if_held(redis, key, holder, ttl_ms)


async def release(redis: Redis, key: str, holder: str) -> bool:
    """Give the lease up if ``holder`` holds it, so another can take it at once."""
    return await _if_held(redis, key, holder, None)


async def _if_held(redis: Redis, key: str, holder: str, ttl_ms: int | None) -> bool:
    async with redis.pipeline(transaction=True) as pipe:
        await pipe.watch(key)
        if await pipe.get(key) != holder.encode():
            return False
        pipe.multi()  # type: ignore[no-untyped-call]
        if ttl_ms is None:
            pipe.delete(key)
        else:
            pipe.pexpire(key, ttl_ms)
        try:
            await pipe.execute()
        except WatchError:
            return False
    return True
