"""Spawned and mapped tasks are seen wherever a workflow is: show, show --history, events,
Client.history; cancel skips those not yet published; a dead-lettered spawned task can be
requeued."""

from __future__ import annotations

import orjson
from redis.asyncio import Redis

from streamproc import Client, Keyspace
from tests.cli_runner import at, run
from tests.conftest import Engine, eventually
from tests.test_map import mapped
from tests.test_spawn import QUERIES, plan


async def test_show_lists_grown_tasks_and_who_added_them_and_history_says_so(
    engine: Engine, client: Client, redis_url: str, keyspace: Keyspace
) -> None:
    workflow_id = await client.submit(plan(QUERIES))
    await client.wait(workflow_id, timeout=20)
    result = await run("show", workflow_id, "--history", *at(redis_url, keyspace))
    assert result.code == 0, result
    lines = result.out.splitlines()
    assert [line.split()[0] for line in lines[2:7]] == ["plan", "reduce", "q0", "q1", "q2"]
    assert "  plan spawned q0 q1 q2" in lines
    spawned = [line for line in lines if " tasks_spawned " in line]
    assert len(spawned) == 1 and spawned[0].endswith("plan#1         tasks=q0 q1 q2")
    events = await client.history(workflow_id)
    assert [e["tasks"] for e in events if e["kind"] == "tasks_spawned"] == ["q0 q1 q2"]
    result = await run("events", "--workflow", workflow_id, *at(redis_url, keyspace))
    assert result.code == 0, result
    assert any(
        "tasks_spawned" in line and "tasks=q0 q1 q2" in line for line in result.out.splitlines()
    )

    mapped_id = await client.submit(mapped([1, 2]))
    await client.wait(mapped_id, timeout=20)
    result = await run("show", mapped_id, *at(redis_url, keyspace))
    assert "  search mapped plan into search[0] search[1]" in result.out.splitlines()


async def test_cancel_skips_spawned_tasks_not_yet_published(
    engine: Engine, client: Client, redis: Redis
) -> None:
    spawn = [{"id": "q0", "agent": "gate"}, {"id": "q1", "agent": "echo", "needs": ["q0"]}]
    workflow_id = await client.submit(plan(spawn))
    await eventually(lambda: _state_of(client, workflow_id, "q0", "running"))
    assert await client.cancel(workflow_id)
    state = await client.get(workflow_id)
    states = {t.id: t.state for t in state.tasks}
    assert states == {
        "plan": "done",
        "reduce": "skipped",
        "q0": "running",
        "q1": "skipped",
    }
    await redis.rpush(f"open:{workflow_id}:q0", 1)
    await eventually(lambda: _state_of(client, workflow_id, "q0", "done"))
    assert (await client.get(workflow_id)).status == "cancelled"


async def _state_of(client: Client, workflow_id: str, task: str, state: str) -> bool:
    tasks = {t.id: t.state for t in (await client.get(workflow_id)).tasks}
    return tasks.get(task) == state


async def test_a_dead_lettered_instance_is_listed_and_requeued_and_the_map_completes(
    engine: Engine, client: Client, redis: Redis, redis_url: str, keyspace: Keyspace
) -> None:
    spec = mapped([1, 2])
    spec["tasks"][1] |= {"agent": "fixable", "retries": 0, "input": None}
    workflow_id = await client.submit(spec)
    state = await client.wait(workflow_id, timeout=20)
    assert state.status == "failed"
    assert state.reason.startswith("task search[")
    listed = await run("dead", "list", "--agent", "fixable", "--json", *at(redis_url, keyspace))
    assert listed.code == 0, listed
    [row] = [orjson.loads(line) for line in listed.out.splitlines()]  # the first failure
    assert state.reason == f"task {row['task']} dead-lettered: PermanentError: not fixed yet"
    await redis.set(f"fixed:{workflow_id}", 1)
    requeued = await run(
        "dead", "requeue", row["id"], "--agent", "fixable", *at(redis_url, keyspace)
    )
    assert requeued.code == 0, requeued  # every failed task of the workflow runs again
    state = await client.wait(workflow_id, timeout=20)
    assert state.status == "completed", state.reason
    assert [r["fixed"] for r in state.results["search"]] == ["search[0]", "search[1]"]
