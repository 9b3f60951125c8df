"""Copying what Redis knows about each agent's streams, and the search cache's counters, into
``metrics.POLLED`` (a Prometheus scrape cannot await Redis)."""

from __future__ import annotations

import asyncio

from redis.asyncio import Redis

from streamproc.config import RedisSettings
from streamproc.metrics import CACHE_COUNTERS, POLLED, STREAM_FIGURES
from streamproc.ops.status import agent_stats, known_agents
from streamproc.outbound.cache import cache_stats
from streamproc.registry import registered
from streamproc.store.keys import Keyspace
from streamproc.transport.pause import pause
from streamproc.transport.retrying import until_redis_answers


class StreamPoller:
    """Copies stream and cache figures from Redis into ``metrics.POLLED`` until ``stop`` is
    set."""

    def __init__(self, redis: RedisSettings, keyspace: Keyspace, interval: float = 10.0) -> None:
        self.redis: Redis = redis.connect()
        self.keyspace = keyspace
        self.interval = interval

    async def run(self, stop: asyncio.Event) -> None:
        try:
            while True:
                await until_redis_answers(self.poll_once)
                if await pause(stop, self.interval):
                    return
        finally:
            await self.redis.aclose()

    async def poll_once(self) -> None:
        names = sorted(set(await known_agents(self.redis, self.keyspace)) | set(registered()))
        rows = await agent_stats(self.redis, self.keyspace, names)
        streams = {f: {r.agent: getattr(r, f) for r in rows} for f in STREAM_FIGURES}
        streams["desired"] = {r.agent: r.desired for r in rows if r.desired is not None}
        totals = await cache_stats(self.redis, self.keyspace)
        cache = {kind: {p: c[kind] for p, c in totals.items()} for kind in CACHE_COUNTERS}
        POLLED.update(streams, cache)
