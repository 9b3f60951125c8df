"""Prometheus metrics: what a worker runs, and what Redis says about each agent's streams.

Counters and histograms are updated where the work happens (one call per finished task).
Stream figures (length, lag, pending, consumers, dead letters, desired consumers) and cache
counters live in Redis, which a scrape cannot await, so a poller copies them into gauges
every ``interval`` seconds.  Daemons serve ``/metrics`` with ``--metrics-port``; the HTTP
API serves it on its own port.
"""

from __future__ import annotations

import asyncio
import logging

from prometheus_client import Counter, Gauge, Histogram
from redis.asyncio import Redis

from streamproc.cache import cache_stats
from streamproc.config import RedisSettings
from streamproc.daemon import pause
from streamproc.keys import Keyspace
from streamproc.registry import registered
from streamproc.retrying import until_redis_answers
from streamproc.status import agent_stats, known_agents

log = logging.getLogger(__name__)

TASKS = Counter("streamproc_tasks", "Task attempts finished by this process", ["agent", "outcome"])
TASK_SECONDS = Histogram(
    "streamproc_task_duration_seconds",
    "Time an agent took on one attempt",
    ["agent"],
    buckets=(0.001, 0.005, 0.02, 0.1, 0.5, 1, 2, 5, 10, 30, 60, 300),
)
STREAM = Gauge(
    "streamproc_agent_stream",
    "Per agent over all shards: length, lag, pending, consumers, dead_letters, desired",
    ["agent", "figure"],
)
CACHE = Gauge(
    "streamproc_search_cache", "Search cache counters (hit, miss, upstream)", ["provider", "kind"]
)
FIGURES = ("length", "lag", "pending", "consumers", "dead_letters")


def task_finished(agent: str, outcome: str, seconds: float) -> None:
    TASKS.labels(agent, outcome).inc()
    TASK_SECONDS.labels(agent).observe(seconds)


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
