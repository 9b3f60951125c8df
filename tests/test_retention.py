"""Streams are trimmed only below what every group acknowledged; a pending entry trimmed by
someone else becomes a dead letter with that reason, never a crash."""

from __future__ import annotations

from redis.asyncio import Redis

from conftest import Engine, eventually
from streamproc import Client, ClientSettings, Keyspace


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
