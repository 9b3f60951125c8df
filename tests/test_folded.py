"""An ended workflow whose hash Redis keeps as a hashtable (here: an input over 64 bytes) is
folded: its task fields move to the first line of its history archive and the hash shrinks
to the compact listpack encoding.  Every reader sees the same workflow before and after, and
whatever touches it again (a revival, a late completion) unfolds it first."""

from __future__ import annotations

import orjson
from redis.asyncio import Redis

from streamproc import Client, Keyspace
from streamproc.ops import deadletters
from streamproc.ops.listing import Query, list_workflows
from streamproc.ops.results import task_input
from streamproc.store.fields import TaskField, WorkflowField
from streamproc.store.folded import hmget_many, workflow_hash
from tests.conftest import Engine, eventually, with_starts
from tests.test_cancel import started

LONG = "a long input, well over the 64 bytes a compact hash value may hold " * 2


async def folded(redis: Redis, keyspace: Keyspace, workflow_id: str) -> bool:
    key = keyspace.workflow(workflow_id)
    return (
        await redis.object("encoding", key) == b"listpack"
        and await redis.hexists(key, WorkflowField.FOLDED)
        and not await redis.hexists(key, TaskField.STATE.of("a"))
    )


async def folded_workflow(client: Client, redis: Redis, keyspace: Keyspace) -> str:
    """A one-task workflow with a long input, run to its end: folded."""
    workflow_id = await client.submit(
        {"tasks": [{"id": "a", "agent": "echo", "input": {"text": LONG}}]}
    )
    await client.wait(workflow_id, timeout=20)
    assert await folded(redis, keyspace, workflow_id)
    return workflow_id


async def test_an_ended_workflow_folds_and_every_reader_sees_it_whole(
    engine: Engine, client: Client, redis: Redis, keyspace: Keyspace
) -> None:
    spec = {
        "tasks": [
            {"id": "a", "agent": "echo", "input": {"text": LONG}},
            {"id": "b", "agent": "echo", "needs": ["a"]},
        ]
    }
    workflow_id = await client.submit(spec)
    state = await client.wait(workflow_id, timeout=20)
    assert await folded(redis, keyspace, workflow_id)
    assert state.status == "completed"
    assert [(t.id, t.state, t.agent, t.needs) for t in state.tasks] == [
        ("a", "done", "echo", []),
        ("b", "done", "echo", ["a"]),
    ]
    assert state.tasks[0].result == {"text": LONG}
    assert all(t.began_ms and t.ended_ms and t.consumer for t in state.tasks)
    assert await task_input(redis, keyspace, workflow_id, "a", workflow_id) == {"text": LONG}
    kinds = [event["kind"] for event in with_starts(await client.history(workflow_id))]
    assert kinds[0] == "submitted" and kinds[-1] == "completed" and len(kinds) == 6
    page = await list_workflows(redis, keyspace, Query(limit=10))
    [summary] = page.workflows
    assert (summary.id, summary.tasks["total"], summary.tasks["done"]) == (workflow_id, 2, 2)
    rows = await hmget_many(redis, keyspace, [(workflow_id, ["status", "s:b", "nope"])])
    assert rows == [[b"completed", b"done", None]]


async def test_a_folds_times_are_offsets_from_creation_and_read_back_to_the_millisecond(
    engine: Engine, client: Client, redis: Redis, keyspace: Keyspace
) -> None:
    workflow_id = await folded_workflow(client, redis, keyspace)
    past = await redis.get(keyspace.past(workflow_id))
    fold = orjson.loads(past.split(b"\n", 1)[0])
    created = int(await redis.hget(keyspace.workflow(workflow_id), WorkflowField.CREATED))
    times = [TaskField.QUEUED.of("a"), TaskField.BEGAN.of("a"), TaskField.ENDED.of("a")]
    assert all(isinstance(fold[field], int) and abs(fold[field]) < 60_000 for field in times)
    assert isinstance(fold[TaskField.ENTRY.of("a")], str)  # not a time: kept as it was
    whole = await workflow_hash(redis, keyspace, workflow_id)
    assert [int(whole[field.encode()]) for field in times] == [created + fold[f] for f in times]
    [done] = [e for e in await client.history(workflow_id) if e["kind"] == "task_done"]
    assert whole[TaskField.ENDED.of("a").encode()] == done["at"].encode()
    # The engine unfolds it (a cancel reads it) and folds it again as the call ends: the same
    # fields to the byte, times included.
    assert await client.cancel(workflow_id) is False
    assert await folded(redis, keyspace, workflow_id)
    assert await workflow_hash(redis, keyspace, workflow_id) == whole


async def test_a_small_ended_workflow_keeps_its_hash_as_it_is(
    engine: Engine, client: Client, redis: Redis, keyspace: Keyspace
) -> None:
    workflow_id = await client.submit({"tasks": [{"id": "a", "agent": "echo", "input": 1}]})
    await client.wait(workflow_id, timeout=20)
    key = keyspace.workflow(workflow_id)
    assert await redis.hget(key, TaskField.STATE.of("a")) == b"done"
    assert not await redis.hexists(key, WorkflowField.FOLDED)


async def test_a_revived_workflow_unfolds_runs_again_and_folds_when_it_ends(
    engine: Engine, client: Client, redis: Redis, keyspace: Keyspace
) -> None:
    spec = {"tasks": [{"id": "a", "agent": "fixable", "input": {"text": LONG}}]}
    workflow_id = await client.submit(spec)
    assert (await client.wait(workflow_id, timeout=20)).status == "failed"
    assert await folded(redis, keyspace, workflow_id)
    await redis.set(f"fixed:{workflow_id}", 1)
    [dead] = await deadletters.list_dead(redis, keyspace, "fixable")
    await deadletters.requeue(redis, keyspace, "fixable", dead.entry_id)
    state = await client.wait(workflow_id, timeout=20)
    assert state.status == "completed"
    [task] = state.tasks
    assert (task.state, task.attempt, task.result) == ("done", 2, {"fixed": "a", "attempt": 2})
    assert [record["outcome"] for record in task.history] == ["fatal", "requeued"]
    assert await folded(redis, keyspace, workflow_id)
    past = await redis.get(keyspace.past(workflow_id))
    assert past.count(b"\n{") == 0 and past.startswith(b"{")  # one fold, at the start
    kinds = [event["kind"] for event in await client.history(workflow_id)]
    assert kinds.count("failed") == 1 and kinds[-1] == "completed"


async def test_a_late_completion_unfolds_the_cancelled_workflow_and_is_recorded(
    engine: Engine, client: Client, redis: Redis, keyspace: Keyspace
) -> None:
    spec = {"tasks": [{"id": "slow", "agent": "gate", "input": {"text": LONG}}]}
    workflow_id = await client.submit(spec)
    await eventually(lambda: started(redis, keyspace, workflow_id))
    assert await client.cancel(workflow_id) is True
    key = keyspace.workflow(workflow_id)
    assert await redis.hexists(key, WorkflowField.FOLDED)
    await redis.rpush(f"open:{workflow_id}:slow", 1)

    async def recorded() -> bool:
        return (await client.get(workflow_id)).tasks[0].state == "done"

    await eventually(recorded)
    state = await client.get(workflow_id)
    assert state.status == "cancelled" and state.tasks[0].result == {"gate": "slow", "deps": []}
    assert await redis.hexists(key, WorkflowField.FOLDED)
    assert not await redis.hexists(key, TaskField.RESULT.of("slow"))
    fold = orjson.loads((await redis.get(keyspace.past(workflow_id))).split(b"\n")[0])
    assert fold[TaskField.STATE.of("slow")] == "done"
    kinds = [event["kind"] for event in await client.history(workflow_id)]
    assert kinds[-2:] == ["cancelled", "task_done"]


async def test_a_fold_whose_archive_was_deleted_reads_as_no_task_fields_and_fails_nothing(
    engine: Engine, client: Client, redis: Redis, keyspace: Keyspace
) -> None:
    workflow_id = await folded_workflow(client, redis, keyspace)
    await redis.delete(keyspace.past(workflow_id))
    state = await client.get(workflow_id)
    assert (state.status, [(t.id, t.state) for t in state.tasks]) == ("completed", [("a", "")])
    assert await client.cancel(workflow_id) is False  # it ended: nothing to cancel
    key = keyspace.workflow(workflow_id)
    assert not await redis.hexists(key, WorkflowField.FOLDED)  # the engine dropped the fold
    assert await redis.hget(key, WorkflowField.STATUS) == b"completed"
