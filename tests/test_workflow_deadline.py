"""A workflow-level ``timeout``: past it, a workflow still running fails, naming what it
waited for; one that ended first is left alone.  A workflow revived from a dead letter keeps
its deadline, and one past it is not revived."""

from __future__ import annotations

import pytest
from redis.asyncio import Redis

from streamproc import Client, Keyspace
from streamproc.errors import DeadLetterRefused, SpecError
from streamproc.ops import deadletters
from streamproc.spec.checks import MAX_TIMEOUT
from streamproc.spec.model import WorkflowSpec
from tests.conftest import Engine, eventually


async def test_a_workflow_nobody_serves_fails_at_its_deadline_naming_the_agent(
    resolver_only: Engine, client: Client, redis: Redis, keyspace: Keyspace
) -> None:
    async with Client(client.redis_settings, client.settings) as plain:
        workflow_id = await plain.submit({"timeout": 1, "tasks": [{"id": "t", "agent": "nope"}]})
    state = await client.wait(workflow_id, timeout=15)
    assert state.status == "failed"
    assert state.reason == (
        "deadline of 1s passed: task t (agent nope) waiting, no consumer serves it"
    )
    assert await redis.zcard(keyspace.deadlines(0)) == 0


async def test_a_deadline_reason_names_the_running_task_before_those_waiting_for_it(
    engine: Engine, client: Client
) -> None:
    spec = {
        "timeout": 1,
        "tasks": [
            {"id": "approve", "wait_for": "approval", "needs": ["s"]},
            {"id": "t", "agent": "echo", "needs": ["s"]},
            {"id": "s", "agent": "sleep", "input": {"seconds": 3}},
        ],
    }
    state = await client.wait(await client.submit(spec), timeout=15)
    assert state.reason == (
        "deadline of 1s passed: task s (agent sleep) running; task approve waiting for its "
        "needs; task t (agent echo) waiting for its needs"
    )


async def test_a_workflow_that_completes_before_its_deadline_is_not_failed_later(
    engine: Engine, client: Client, redis: Redis, keyspace: Keyspace
) -> None:
    workflow_id = await client.submit({"timeout": 1, "tasks": [{"id": "t", "agent": "echo"}]})
    assert (await client.wait(workflow_id, timeout=15)).status == "completed"
    assert await redis.zcard(keyspace.deadlines(0)) == 0
    async with Client(client.redis_settings, client.settings) as plain:
        later = await plain.submit({"timeout": 1, "tasks": [{"id": "t", "agent": "nope"}]})
    assert (await client.wait(later, timeout=15)).status == "failed"  # its deadline is later
    assert (await client.get(workflow_id)).status == "completed"
    assert (await client.history(workflow_id))[-1]["kind"] == "completed"


@pytest.mark.parametrize("timeout", [0, -1, True, "1", MAX_TIMEOUT + 1, float("nan")])
def test_a_workflow_timeout_must_be_positive_seconds_within_the_bound(timeout: object) -> None:
    spec = WorkflowSpec.from_dict({"timeout": timeout, "tasks": [{"id": "t", "agent": "echo"}]})
    with pytest.raises(SpecError, match="workflow 'timeout' must be seconds in"):
        spec.validate()


async def revive_after_dead_letter(
    redis_url: str, client: Client, redis: Redis, keyspace: Keyspace, timeout: int
) -> tuple[str, str]:
    """A workflow with ``timeout`` whose task is dead-lettered (then nothing serves it): its
    id and the dead entry's."""
    first = Engine(redis_url, keyspace)
    first.start_worker(("echo", "fixable"))
    spec = {
        "timeout": timeout,
        "tasks": [
            {"id": "a", "agent": "echo", "input": 1},
            {"id": "fix", "agent": "fixable", "needs": ["a"], "retries": 0},
        ],
    }
    workflow_id = await client.submit(spec)
    await eventually(lambda: failed(client, workflow_id))
    await first.stop()
    [(entry_id, _)] = await redis.xrange(keyspace.dead(0, "fixable"))
    assert await redis.zcard(keyspace.deadlines(0)) == 0  # its end left the deadlines set
    return workflow_id, entry_id.decode()


async def failed(client: Client, workflow_id: str) -> bool:
    return (await client.get(workflow_id)).status == "failed"


async def test_a_revived_workflow_still_fails_at_its_deadline(
    resolver_only: Engine, client: Client, redis: Redis, keyspace: Keyspace, redis_url: str
) -> None:
    workflow_id, entry_id = await revive_after_dead_letter(
        redis_url, client, redis, keyspace, timeout=4
    )
    await deadletters.requeue(redis, keyspace, "fixable", entry_id)
    state = await client.get(workflow_id)
    assert state.status == "running"
    deadline = state.created_ms + 4000
    assert await redis.zscore(keyspace.deadlines(0), keyspace.workflow(workflow_id)) == deadline

    state = await client.wait(workflow_id, timeout=15)  # nothing serves the requeued task
    assert state.status == "failed"
    assert state.reason.startswith("deadline of 4s passed: task fix (agent fixable)")
    assert await redis.zcard(keyspace.deadlines(0)) == 0


async def test_a_workflow_past_its_deadline_is_not_revived(
    resolver_only: Engine, client: Client, redis: Redis, keyspace: Keyspace, redis_url: str
) -> None:
    workflow_id, entry_id = await revive_after_dead_letter(
        redis_url, client, redis, keyspace, timeout=1
    )
    created = (await client.get(workflow_id)).created_ms

    async def past_deadline() -> bool:
        seconds, micros = await redis.time()
        return seconds * 1000 + micros // 1000 > created + 1000

    await eventually(past_deadline)
    with pytest.raises(
        DeadLetterRefused, match=r"past its deadline \(its timeout ended \d+s ago\)"
    ):
        await deadletters.requeue(redis, keyspace, "fixable", entry_id)
    assert (await client.get(workflow_id)).status == "failed"
    assert [i.decode() for i, _ in await redis.xrange(keyspace.dead(0, "fixable"))] == [entry_id]
