"""A spawn applies once: a duplicated, redelivered or zombie (superseded attempt) completion
of a spawner adds nothing more.  The test plays the worker for agent ``manual``, which no
worker serves."""

from __future__ import annotations

import pytest
from redis.asyncio import Redis

from streamproc import Client, ClientSettings, Keyspace, Spawn, TaskSpec
from streamproc.engine.spawning import SpawnRefused, encode_spawn
from streamproc.ops.history import snapshot
from streamproc.ops.status import declared_waits
from streamproc.store import calls, codec
from streamproc.store.codec import Acks, Entry
from tests.conftest import Engine, eventually
from tests.test_duplicate_events import completion

SPEC = {
    "tasks": [
        {"id": "plan", "agent": "manual"},
        {"id": "reduce", "agent": "manual", "needs": ["plan"]},
    ]
}
SPAWN = encode_spawn(
    Spawn([TaskSpec(f"q{i}", "manual", i) for i in range(3)]), "plan", None, 1 << 20
)


def spawn_completion(workflow_id: str, attempt: int) -> dict[str, bytes | str | int]:
    return {
        **completion(workflow_id, "plan", attempt, b'"planned"'),
        "kind": "spawn",
        "spawn": SPAWN,
    }


async def published(redis: Redis, keyspace: Keyspace) -> list[bytes]:
    return [f[b"task"] for _, f in await redis.xrange(keyspace.tasks(0, "manual"))]


async def published_are(redis: Redis, keyspace: Keyspace, expected: list[bytes]) -> bool:
    return await published(redis, keyspace) == expected


async def test_a_duplicated_redelivered_or_zombie_spawn_completion_spawns_once(
    engine: Engine, redis_url: str, keyspace: Keyspace, redis: Redis
) -> None:
    async with Client(redis_url, ClientSettings(keyspace=keyspace)) as client:
        workflow_id = await client.submit(SPEC)
        done = keyspace.done(0)
        await redis.xadd(done, spawn_completion(workflow_id, 2))  # no such attempt yet
        first = await redis.xadd(done, spawn_completion(workflow_id, 1))
        await redis.xadd(done, spawn_completion(workflow_id, 1))  # duplicated
        expected = [b"plan", b"q0", b"q1", b"q2"]
        await eventually(lambda: published_are(redis, keyspace, expected))
        # redelivered: the same done entry applied again, as a resolver taking over would
        [(_, fields)] = await redis.xrange(done, first, first)
        again: Entry = (first, fields)
        retry = calls.Retry(10, 10, 1.0)
        args = calls.resolve_arguments(
            keyspace, 0, ["manual"], retry, [codec.decode_completion(*again)], Acks.DONE
        )
        resolved = await calls.RESOLVE(redis, args)
        assert (resolved.consumed, resolved.stale) == (1, 1)
        for task in ("q0", "q1", "q2"):
            await redis.xadd(done, completion(workflow_id, task, 1))
        await eventually(lambda: published_are(redis, keyspace, [*expected, b"reduce"]))
        await redis.xadd(done, spawn_completion(workflow_id, 1))  # a zombie, long after
        await redis.xadd(done, completion(workflow_id, "reduce", 1))
        final = await client.wait(workflow_id, timeout=20)
    assert final.status == "completed"
    assert [t.id for t in final.tasks] == ["plan", "reduce", "q0", "q1", "q2"]
    assert await published(redis, keyspace) == [*expected, b"reduce"]
    history = (await snapshot(redis, keyspace, workflow_id)).history
    kinds = [f[b"kind"] for _, f in history]
    assert kinds.count(b"tasks_spawned") == 1 and kinds.count(b"task_done") == 5
    assert await redis.xlen(keyspace.dead_done(0)) == 0


async def test_the_late_spawn_of_a_reclaimed_attempt_adds_nothing(
    engine: Engine, redis_url: str, keyspace: Keyspace, redis: Redis
) -> None:
    """plan's attempt 1 is reclaimed (its worker stalled) and published again as attempt 2;
    attempt 1's spawn, arriving late, is refused by the fence; attempt 2's applies."""
    async with Client(redis_url, ClientSettings(keyspace=keyspace)) as client:
        workflow_id = await client.submit(SPEC)
        [(entry, _)] = await eventually(lambda: redis.xrange(keyspace.tasks(0, "manual")))
        item = calls.Requeue(entry, workflow_id, "plan", 1, "manual")
        reclaimed = await calls.requeue(
            redis, keyspace, 0, calls.RequeueReason.RECLAIMED, 3, [item]
        )
        assert reclaimed.moved == 1
        done = keyspace.done(0)
        await redis.xadd(done, spawn_completion(workflow_id, 1))  # the zombie
        await redis.xadd(done, spawn_completion(workflow_id, 2))
        expected = [b"plan", b"plan", b"q0", b"q1", b"q2"]
        await eventually(lambda: published_are(redis, keyspace, expected))
        state = await client.get(workflow_id)
    assert {t.id: t.attempt for t in state.tasks} == {
        "plan": 2, "reduce": 1, "q0": 1, "q1": 1, "q2": 1,
    }  # fmt: skip
    history = (await snapshot(redis, keyspace, workflow_id)).history
    assert [f[b"att"] for _, f in history if f[b"kind"] == b"tasks_spawned"] == [b"2"]


async def test_a_malformed_spawn_is_refused_and_adds_nothing(
    engine: Engine, redis_url: str, keyspace: Keyspace, redis: Redis
) -> None:
    async with Client(redis_url, ClientSettings(keyspace=keyspace)) as client:
        workflow_id = await client.submit(SPEC)
        forged = {**spawn_completion(workflow_id, 1), "spawn": b'[["q0", "no such agent!"]]'}
        await redis.xadd(keyspace.done(0), forged)
        state = await client.wait(workflow_id, timeout=20)
    assert state.status == "failed"
    assert state.reason == "task plan dead-lettered: spawn from plan refused: malformed spawn"
    assert [t.id for t in state.tasks] == ["plan", "reduce"]


async def test_a_spawned_wait_is_added_and_counted_once_however_often_its_spawn_arrives(
    engine: Engine, redis_url: str, keyspace: Keyspace, redis: Redis
) -> None:
    """Row E8 for a declared wait: duplicated and zombie copies of the spawner's completion
    add no second wait and count no second awaiting task."""
    spawn = encode_spawn(Spawn([TaskSpec("approve", wait_for="approval")]), "plan", None, 1 << 20)
    async with Client(redis_url, ClientSettings(keyspace=keyspace)) as client:
        workflow_id = await client.submit(SPEC)
        copy = {**completion(workflow_id, "plan", 1, b'"planned"'), "kind": "spawn", "spawn": spawn}
        done = keyspace.done(0)
        for _ in range(3):  # the completion and two duplicates
            await redis.xadd(done, copy)

        async def awaiting() -> bool:
            tasks = {t.id: t.state for t in (await client.get(workflow_id)).tasks}
            return tasks.get("approve") == "awaiting"

        await eventually(awaiting)
        assert await declared_waits(redis, keyspace) == 1
        sent = await client.signal(workflow_id, "approval", "yes")
        assert (sent.outcome, sent.task) == ("applied", "approve")
        await eventually(lambda: published_are(redis, keyspace, [b"plan", b"reduce"]))
        await redis.xadd(done, copy)  # a zombie, after the wait ended
        await redis.xadd(done, completion(workflow_id, "reduce", 1))
        final = await client.wait(workflow_id, timeout=20)
    assert final.status == "completed"
    assert [t.id for t in final.tasks] == ["plan", "reduce", "approve"]
    assert final.results["approve"] == "yes"
    assert await declared_waits(redis, keyspace) == 0
    kinds = [f[b"kind"] for _, f in (await snapshot(redis, keyspace, workflow_id)).history]
    assert kinds.count(b"tasks_spawned") == 1 and kinds.count(b"signalled") == 1


@pytest.mark.parametrize("tasks", ["oops", b"oops", {"id": "q", "agent": "manual"}, 3])
def test_a_spawn_whose_tasks_are_no_list_is_refused_saying_so(tasks: object) -> None:
    """A string was read letter by letter: 'task #0 must be a mapping'."""
    with pytest.raises(SpawnRefused, match=r"^spawn from plan refused: tasks must be a list$"):
        encode_spawn(Spawn(tasks), "plan", None, 1 << 20)  # type: ignore[arg-type]
