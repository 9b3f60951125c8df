"""Redelivered, duplicated and out-of-order events never apply twice; the test plays the worker
for agent ``manual``, which no worker serves."""

from __future__ import annotations

from redis.asyncio import Redis

from streamproc import Client, ClientSettings, Keyspace
from streamproc.store.fields import TaskField
from tests.conftest import Engine, eventually


def completion(
    workflow_id: str, task: str, attempt: int, output: bytes = b"1"
) -> dict[str, bytes | str | int]:
    return {
        "v": "1",
        "kind": "ok",
        "wf": workflow_id,
        "task": task,
        "agent": "manual",
        "att": attempt,
        "out": output,
        "t0": 1,
        "t1": 2,
        "by": "test",
    }


async def test_duplicate_and_out_of_order_completions_resolve_once(
    engine: Engine, redis_url: str, keyspace: Keyspace, redis: Redis
) -> None:
    spec = {
        "tasks": [
            {"id": "a", "agent": "manual"},
            {"id": "b", "agent": "manual", "needs": ["a"]},
            {"id": "c", "agent": "manual", "needs": ["a"]},
        ]
    }
    async with Client(redis_url, ClientSettings(keyspace=keyspace)) as client:
        workflow_id = await client.submit(spec)
        done = keyspace.done(0)
        await redis.xadd(done, completion(workflow_id, "b", 1))  # before b was ever published
        for _ in range(3):
            await redis.xadd(done, completion(workflow_id, "a", 1, b'"A"'))
        await redis.xadd(done, completion(workflow_id, "a", 2, b'"late"'))  # no such attempt
        stream = keyspace.tasks(0, "manual")
        published = await eventually(lambda: _tasks_in(redis, stream, 3))
        assert sorted(published) == [b"a", b"b", b"c"]  # b and c published once each
        state = await client.get(workflow_id)
        assert {t.id: t.state for t in state.tasks} == {"a": "done", "b": "queued", "c": "queued"}
        assert state.results == {"a": "A"}
        for task in ("b", "c", "c"):
            await redis.xadd(done, completion(workflow_id, task, 1))
        final = await client.wait(workflow_id, timeout=20)
    assert final.status == "completed"
    events = await redis.xrange(keyspace.events(0))
    kinds = [f[b"kind"] for _, f in events]
    assert kinds.count(b"task_done") == 3 and kinds.count(b"completed") == 1
    assert await redis.xlen(keyspace.dead_done(0)) == 0


async def _tasks_in(redis: Redis, stream: str, count: int) -> list[bytes] | None:
    entries = await redis.xrange(stream)
    return [f[b"task"] for _, f in entries] if len(entries) >= count else None


async def test_a_completion_of_an_entry_redis_lost_is_refused_though_its_attempt_matches(
    engine: Engine, redis_url: str, keyspace: Keyspace, redis: Redis
) -> None:
    """After Redis lost recent writes (a failover, a torn AOF tail), a task can be published
    again with the same attempt number as a new entry; a completion of the entry that was
    lost, computed from results that no longer exist, must not complete the new one."""
    async with Client(redis_url, ClientSettings(keyspace=keyspace)) as client:
        workflow_id = await client.submit({"tasks": [{"id": "a", "agent": "manual"}]})
        stream, key = keyspace.tasks(0, "manual"), keyspace.workflow(workflow_id)
        [(lost, fields)] = await eventually(lambda: redis.xrange(stream))
        # What the new primary holds: the same attempt, published as another entry.
        again = await redis.xadd(stream, fields)
        await redis.hset(key, TaskField.ENTRY.of("a"), again)
        done = keyspace.done(0)
        await redis.xadd(done, {**completion(workflow_id, "a", 1, b'"lost"'), "src": lost})
        await redis.xadd(done, {**completion(workflow_id, "a", 1, b'"kept"'), "src": again})
        final = await client.wait(workflow_id, timeout=20)
    assert (final.status, final.results) == ("completed", {"a": "kept"})
    kinds = [f[b"kind"] for _, f in await redis.xrange(keyspace.events(0))]
    assert kinds.count(b"task_done") == 1
