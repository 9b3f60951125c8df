"""``streamproc status`` counts tasks awaiting a signal without reading workflows: the engine
functions keep the count in each shard's usage hash, and every way out of a wait (a signal, a
timeout, a cancel, a deadline) takes the task back off it."""

from __future__ import annotations

import orjson
import pytest
from redis.asyncio import Redis

from streamproc import Client
from streamproc.ops.deadletters import requeue
from streamproc.ops.status import agent_stats, declared_waits
from tests.cli_runner import ECHO_AGENTS, at, run
from tests.conftest import Engine, eventually
from tests.test_waits import GATED, _gate_attempt, asking, history_kinds, is_in, state_of

SHORT = {**GATED["tasks"][1], "timeout": 0.2}


@pytest.fixture
async def waiting_engine(engine: Engine) -> Engine:
    engine.start_worker(("asker",))
    return engine


async def counts(redis: Redis, client: Client) -> tuple[int, int]:
    """Declared waits awaiting a signal, and asker tasks awaiting one."""
    (asker,) = await agent_stats(redis, client.keyspace, ["asker"])
    return await declared_waits(redis, client.keyspace), asker.awaiting


async def counted(redis: Redis, client: Client, expected: tuple[int, int]) -> bool:
    return await counts(redis, client) == expected


async def test_status_shows_awaiting_tasks_and_a_signal_takes_them_off(
    waiting_engine: Engine, client: Client, redis: Redis, redis_url: str
) -> None:
    declared = await client.submit(GATED)
    asked = await client.submit(asking())
    await eventually(lambda: is_in(client, declared, "approve", "awaiting"))
    await eventually(lambda: is_in(client, asked, "ask", "awaiting"))
    assert await counts(redis, client) == (1, 1)
    where = at(redis_url, client.keyspace)
    table = await run("status", *where)
    assert table.code == 0, table
    assert "awaiting" in table.out.splitlines()[0]
    asker_row = next(line for line in table.out.splitlines() if line.startswith("asker "))
    assert asker_row.split()[6] == "1", table.out
    assert "1 declared wait awaiting a signal" in table.out
    lines = (await run("status", "--json", *ECHO_AGENTS, *where)).out.splitlines()
    assert {"declared_waits_awaiting": 1} in [orjson.loads(line) for line in lines]

    await client.signal(declared, "approval", "yes")
    await client.signal(asked, "go", 1)
    assert (await client.wait(declared, timeout=20)).status == "completed"
    assert (await client.wait(asked, timeout=20)).status == "completed"
    assert await counts(redis, client) == (0, 0)
    table = await run("status", *where)
    assert "declared waits" not in table.out


async def test_a_kept_signal_taken_at_once_leaves_no_count(
    waiting_engine: Engine, client: Client, redis: Redis
) -> None:
    spec = {"tasks": [{**GATED["tasks"][0], "agent": "sleep", "input": 0.3}, *GATED["tasks"][1:]]}
    workflow_id = await client.submit(spec)
    assert (await client.signal(workflow_id, "approval", "yes")).outcome == "kept"
    assert (await client.wait(workflow_id, timeout=20)).status == "completed"
    assert await counts(redis, client) == (0, 0)


async def test_timeouts_take_waits_off_the_count(
    waiting_engine: Engine, client: Client, redis: Redis
) -> None:
    failing = await client.submit({"tasks": [GATED["tasks"][0], SHORT]})
    defaulted = await client.submit({"tasks": [GATED["tasks"][0], {**SHORT, "default": "no"}]})
    asked = await client.submit(asking(timeout=0.2))
    assert (await client.wait(failing, timeout=20)).status == "failed"
    assert (await client.wait(defaulted, timeout=20)).status == "completed"
    assert (await client.wait(asked, timeout=20)).status == "failed"  # dead-lettered
    assert await counts(redis, client) == (0, 0)


async def test_cancel_and_a_deadline_take_waits_off_the_count(
    waiting_engine: Engine, client: Client, redis: Redis
) -> None:
    cancelled = await client.submit(GATED)
    asked = await client.submit(asking())
    await eventually(lambda: counted(redis, client, (1, 1)))
    assert await client.cancel(cancelled)
    assert await client.cancel(asked)
    assert await counts(redis, client) == (0, 0)
    overdue = await client.submit({**GATED, "timeout": 0.5})
    await eventually(lambda: counted(redis, client, (1, 0)))
    assert (await client.wait(overdue, timeout=20)).status == "failed"
    assert await counts(redis, client) == (0, 0)


async def test_a_failing_sibling_takes_a_wait_off_the_count(
    waiting_engine: Engine, client: Client, redis: Redis
) -> None:
    wait = {"id": "approve", "wait_for": "approval"}
    spec = {"tasks": [wait, {"id": "boom", "agent": "fatal"}]}
    workflow_id = await client.submit(spec)
    assert (await client.wait(workflow_id, timeout=20)).status == "failed"
    assert await counts(redis, client) == (0, 0)


async def test_an_adjustment_resetting_a_wait_counts_it_once(
    waiting_engine: Engine, client: Client, redis: Redis
) -> None:
    long = "a long enough text to pass the judge's fifty character rule"
    spec = {
        "tasks": [
            {"id": "b", "agent": "writer", "input": {"text": "short"}},
            {"id": "gate", "wait_for": "approval", "needs": ["b"]},
            {
                "id": "c",
                "agent": "judge",
                "input": {"adjust": {"b": {"text": long}}},
                "needs": ["b"],
            },
        ]
    }
    workflow_id = await client.submit(spec)
    await eventually(lambda: _gate_attempt(client, workflow_id, 2))  # c's Adjust reset it
    assert await counts(redis, client) == (1, 0)
    await client.signal(workflow_id, "approval", "yes")
    assert (await client.wait(workflow_id, timeout=20)).status == "completed"
    assert await counts(redis, client) == (0, 0)


async def test_a_superseded_wait_leaves_the_count(
    waiting_engine: Engine, client: Client, redis: Redis
) -> None:
    long = "a long enough text to pass the judge's fifty character rule"
    spawn = [{"id": "q1", "agent": "asker", "input": {"signal": "go"}}]
    spec = {
        "tasks": [
            {"id": "x", "agent": "echo", "input": "short"},
            {"id": "plan", "agent": "planner", "needs": ["x"], "input": {"spawn": spawn}},
            {"id": "g", "agent": "gate"},
            {
                "id": "judge",
                "agent": "judge",
                "needs": ["x", "g"],
                "input": {"adjust": {"x": long}},
            },
        ]
    }
    workflow_id = await client.submit(spec)
    await eventually(lambda: counted(redis, client, (0, 1)))  # q1 awaits
    await redis.rpush(f"open:{workflow_id}:g", "go")  # judge resets x: plan's q1 is superseded

    async def spawned_again() -> bool:
        kinds = await history_kinds(redis, client, workflow_id)
        return kinds.count(b"tasks_superseded") == 1 and kinds.count(b"task_awaiting") == 2

    await eventually(spawned_again)
    assert await state_of(client, workflow_id, "q1") == "awaiting"
    assert await counts(redis, client) == (0, 1)
    assert await client.cancel(workflow_id)
    assert await counts(redis, client) == (0, 0)


async def test_a_revived_workflow_counts_its_wait_again(
    waiting_engine: Engine, client: Client, redis: Redis
) -> None:
    wait = {"id": "approve", "wait_for": "approval"}
    workflow_id = await client.submit({"tasks": [wait, {"id": "fix", "agent": "fixable"}]})
    assert (await client.wait(workflow_id, timeout=20)).status == "failed"
    assert await counts(redis, client) == (0, 0)  # the failure skipped the wait
    (entry_id, _), *_ = await redis.xrange(client.keyspace.dead(0, "fixable"))
    await redis.set(f"fixed:{workflow_id}", 1)
    await requeue(redis, client.keyspace, "fixable", entry_id.decode())
    await eventually(lambda: counted(redis, client, (1, 0)))
    await client.signal(workflow_id, "approval", "yes")
    assert (await client.wait(workflow_id, timeout=20)).status == "completed"
    assert await counts(redis, client) == (0, 0)
