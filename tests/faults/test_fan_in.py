"""Row D7: a fan-in whose needs' results together exceed the entry bound.  ``publish`` (Lua)
measures the entry a task would get (its input and its needs' results) before writing it: past
``MAX_ENTRY_BYTES`` the task is not published, it is dead-lettered with a reason naming the
bound, and its workflow fails; no entry over the bound reaches the agent's stream."""

from __future__ import annotations

from redis.asyncio import Redis

from streamproc import Client, Keyspace
from streamproc.store.codec import MAX_ENTRY_BYTES
from tests.conftest import Engine
from tests.faults import oracle

MB = 5  # two results of 5 MiB each: 10 MiB together, over the 8 MiB bound


async def test_d7_a_fan_in_over_the_entry_bound_fails_with_the_bound_and_writes_no_entry(
    resolver_only: Engine, client: Client, redis: Redis, keyspace: Keyspace
) -> None:
    resolver_only.start_worker(("big",), max_result_bytes=(MB + 1) << 20)
    resolver_only.start_worker(("echo",))
    spec = {
        "tasks": [
            {"id": "a", "agent": "big", "input": {"mb": MB}},
            {"id": "b", "agent": "big", "input": {"mb": MB}},
            {"id": "sink", "agent": "echo", "needs": ["a", "b"]},
        ]
    }
    workflow_id = await client.submit(spec)
    ended = await oracle.wait_ended(client, [workflow_id], timeout=30)

    assert ended == {workflow_id: "failed"}
    state = await client.get(workflow_id)
    assert state.reason == (
        "task sink dead-lettered: inputs too large: 10.0 MiB of input and needs' results, "
        "over the 8 MiB bound"
    )
    assert {t.id: t.state for t in state.tasks} == {"a": "done", "b": "done", "sink": "failed"}
    shard = keyspace.shard_of(workflow_id)
    entries = await redis.xrange(keyspace.tasks(shard, "echo"))
    sizes = [sum(map(len, f)) + sum(map(len, f.values())) for _, f in entries]
    assert all(size <= MAX_ENTRY_BYTES for size in sizes), sizes
    dead = await redis.xrange(keyspace.dead(shard, "echo"))
    assert [f[b"task"] for _, f in dead] == [b"sink"]
    assert b"inputs too large" in dead[0][1][b"reason"]
