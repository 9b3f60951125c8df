"""Streams are trimmed only below what every group acknowledged; a pending entry trimmed by
someone else becomes a dead letter with that reason, never a crash."""

from __future__ import annotations

import asyncio
from dataclasses import replace

from redis.asyncio import Redis

from streamproc import Client, ClientSettings, Keyspace, RedisSettings
from streamproc.engine.resolver import Resolver
from tests.conftest import Engine, eventually, fast_resolver, with_starts


async def test_acknowledged_entries_are_trimmed_and_pending_ones_kept(
    redis_url: str, engine: Engine, client: Client, redis: Redis, keyspace: Keyspace
) -> None:
    ghost_stream = keyspace.tasks(0, "manual")
    await redis.xgroup_create(ghost_stream, "manual", id="0", mkstream=True)
    ids = await client.submit_many(
        [{"tasks": [{"id": "a", "agent": "echo", "input": i}]} for i in range(50)]
    )
    stuck = await _unserved(redis_url, keyspace)
    await redis.xreadgroup("manual", "ghost", {ghost_stream: ">"}, count=1)  # pending forever
    for workflow_id in ids:
        await client.wait(workflow_id, timeout=20)
    await eventually(lambda: _shorter_than(redis, keyspace.tasks(0, "echo"), 50))
    await eventually(lambda: _shorter_than(redis, keyspace.done(0), 50))
    assert await redis.xlen(ghost_stream) == 1, "a pending entry must never be trimmed"
    assert (await client.get(stuck)).status == "running"


async def test_pending_entry_trimmed_by_someone_else_is_dead_lettered(
    redis_url: str, keyspace: Keyspace, redis: Redis
) -> None:
    stream = keyspace.tasks(0, "sleep")
    await redis.xgroup_create(stream, "sleep", id="0", mkstream=True)
    workflow_id = await _unserved(redis_url, keyspace, agent="sleep")
    [[_, [(entry_id, _)]]] = await redis.xreadgroup("sleep", "ghost", {stream: ">"}, count=1)
    await redis.xtrim(stream, maxlen=0)
    engine = Engine(redis_url, keyspace)
    engine.start_worker(("sleep",))
    [(_, dead)] = await eventually(lambda: redis.xrange(keyspace.dead(0, "sleep")), timeout=15)
    assert dead[b"reason"] == b"payload trimmed before ack" and dead[b"entry"] == entry_id
    await engine.stop()
    assert workflow_id


async def _unserved(redis_url: str, keyspace: Keyspace, agent: str = "manual") -> str:
    async with Client(redis_url, ClientSettings(keyspace=keyspace)) as plain:
        return await plain.submit({"tasks": [{"id": "x", "agent": agent}]})


async def _shorter_than(redis: Redis, stream: str, length: int) -> bool:
    return await redis.xlen(stream) < length


async def test_events_older_than_the_max_age_are_dropped_and_histories_stay(
    redis_url: str, client: Client, redis: Redis, keyspace: Keyspace
) -> None:
    engine = Engine(redis_url, keyspace)
    engine.start_worker(("echo",))
    resolver = Resolver(
        RedisSettings.from_url(redis_url), replace(fast_resolver(keyspace), events_max_age=0.0)
    )
    engine.tasks.append(asyncio.create_task(resolver.run(engine.stop_event)))
    try:
        workflow_id = await client.submit({"tasks": [{"id": "a", "agent": "echo"}]})
        await client.wait(workflow_id, timeout=20)
        await eventually(lambda: _shorter_than(redis, keyspace.events(0), 1))
    finally:
        await engine.stop()
    kinds = [e["kind"] for e in with_starts(await client.history(workflow_id))]
    assert kinds == ["submitted", "task_started", "task_done", "completed"]
