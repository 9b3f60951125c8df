"""A worker killed outright leaves its consumers in its groups: the resolver removes those
whose worker no longer marks itself alive, idle past ``consumer_max_idle`` and holding
nothing, so ``status`` and submit's check stop counting the agent as served.  A live worker
whose slots are all busy elsewhere (idle by Redis's count) renews its mark every sweep and is
never taken for gone; a consumer holding entries stays until a sweep takes them over."""

from __future__ import annotations

import asyncio
from dataclasses import replace

from redis.asyncio import Redis

from streamproc import Client, Keyspace
from streamproc.engine.resolver import Resolver
from streamproc.transport.groups import join_group, served_agents
from tests.conftest import Engine, eventually, fast_resolver
from tests.http_helpers import GATED

MAX_IDLE = 1.0


async def consumers(redis: Redis, stream: str, group: str) -> dict[str, int]:
    """Each consumer of ``group`` by name, with its pending count."""
    return {c["name"].decode(): c["pending"] for c in await redis.xinfo_consumers(stream, group)}


async def test_a_killed_workers_consumers_are_removed_and_a_busy_live_one_is_kept(
    redis_url: str, redis: Redis, keyspace: Keyspace, client: Client
) -> None:
    engine = Engine(redis_url, keyspace)
    settings = replace(fast_resolver(keyspace), consumer_max_idle=MAX_IDLE)
    engine.tasks.append(
        asyncio.create_task(Resolver(engine.redis, settings).run(engine.stop_event))
    )
    worker = engine.start_worker(("gate", "echo"), concurrency=1)
    echo, heron = keyspace.tasks(0, "echo"), keyspace.tasks(0, "heron")
    gated = await client.submit(GATED)  # takes the worker's only slot: echo is not read
    try:
        await join_group(redis, echo, "echo", "killed-worker")  # as a worker killed -9 leaves it
        async with Client(client.redis_settings, client.settings) as plain:  # no registry
            await plain.submit({"tasks": [{"id": "h", "agent": "heron"}]})  # nobody serves it
        await join_group(redis, heron, "heron", "killed-holder")
        await redis.xreadgroup("heron", "killed-holder", {heron: ">"}, count=1)  # holds it

        async def reaped() -> bool:
            return "killed-worker" not in await consumers(redis, echo, "echo")

        await eventually(reaped)
        assert await consumers(redis, echo, "echo") == {worker.consumer: 0}  # busy, kept
        assert await consumers(redis, heron, "heron") == {"killed-holder": 1}  # holds an entry
        await redis.xgroup_delconsumer(heron, "heron", "killed-holder")  # as if taken over
        await join_group(redis, heron, "heron", "killed-worker")

        async def unserved() -> bool:
            return "heron" not in await served_agents(redis, keyspace, ["heron"])

        await eventually(unserved)
    finally:
        await redis.rpush(f"open:{gated}:slow", "go")
        await engine.stop()
