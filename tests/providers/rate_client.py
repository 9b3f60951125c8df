"""One process of the shared-rate test: take slots of ``serpapi`` from the limiter in a loop.

``python -m tests.providers.rate_client REDIS_URL NAMESPACE RATE SECONDS``: says ``ready``
once connected, reads the start time (epoch seconds) on stdin, then for SECONDS takes slots,
sleeping each booked wait, and prints the times it was let go as one JSON list.
"""

from __future__ import annotations

import asyncio
import sys
import time

import orjson
from redis.asyncio import Redis

from streamproc.outbound.limit_settings import BreakerSettings, LimitSettings
from streamproc.outbound.limiter import SharedLimiter
from streamproc.store.keys import Keyspace


async def take_slots(url: str, namespace: str, rate: float, seconds: float) -> list[float]:
    limits = {"serpapi": LimitSettings(rate=rate, breaker=BreakerSettings(enabled=False))}
    async with Redis.from_url(url) as redis:
        limiter = SharedLimiter(redis, Keyspace(namespace), limits)
        await redis.ping()
        print("ready", flush=True)
        start = float(await asyncio.to_thread(sys.stdin.readline))
        await asyncio.sleep(max(0.0, start - time.time()))
        granted = []
        while time.time() < start + seconds:
            admission = await limiter.admit("serpapi")
            assert admission.verdict == "go", admission
            await asyncio.sleep(admission.wait)
            granted.append(time.time())
        return granted


if __name__ == "__main__":
    url, namespace, rate, seconds = sys.argv[1:5]
    times = asyncio.run(take_slots(url, namespace, float(rate), float(seconds)))
    print(orjson.dumps(times).decode(), flush=True)
