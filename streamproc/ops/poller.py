"""Copying what Redis knows about each agent's streams, and the search cache's counters, into
the gauges of ``metrics`` (a Prometheus scrape cannot await Redis)."""

from __future__ import annotations

import asyncio

from redis.asyncio import Redis

from streamproc.config import RedisSettings
from streamproc.engine.daemon import pause
from streamproc.metrics import CACHE, STREAM
from streamproc.ops.status import agent_stats, known_agents
from streamproc.outbound.cache import cache_stats
from streamproc.registry import registered
from streamproc.store.keys import Keyspace
from streamproc.transport.retrying import until_redis_answers

FIGURES = ("length", "lag", "pending", "consumers", "dead_letters")


class StreamPoller:
    """Copies stream and cache figures from Redis into gauges until ``stop`` is set."""

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
        for row in await agent_stats(self.redis, self.keyspace, names):
            for figure in FIGURES:
                STREAM.labels(row.agent, figure).set(getattr(row, figure))
            if row.desired is not None:
                STREAM.labels(row.agent, "desired").set(row.desired)
        for provider, counters in (await cache_stats(self.redis, self.keyspace)).items():
            for kind, value in counters.items():
                CACHE.labels(provider, kind).set(value)
