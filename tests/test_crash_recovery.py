"""Workers and Redis die; nothing is lost and no task's effect is applied twice."""

from __future__ import annotations

import signal
from collections import Counter
from collections.abc import Callable

import pytest
from redis.asyncio import Redis

from streamproc import Client, ClientSettings, Keyspace, WorkflowSpec
from streamproc.testing.embedded import EmbeddedRedis
from tests.conftest import Engine, eventually, outage_met, some_task
from tests.daemon import Daemon


def ledger_chain(n: int, seconds: float) -> WorkflowSpec:
    return WorkflowSpec.from_dict(
        {
            "tasks": [
                {"id": f"t{i}", "agent": "ledger", "input": {"seconds": seconds}}
                | ({"needs": [f"t{i - 1}"]} if i else {})
                for i in range(n)
            ]
        }
    )


async def done_events(redis: Redis, keyspace: Keyspace) -> Counter[tuple[bytes, bytes]]:
    events = await redis.xrange(keyspace.events(0))
    return Counter((f[b"wf"], f[b"task"]) for _, f in events if f[b"kind"] == b"task_done")


async def test_worker_killed_mid_task_loses_nothing_and_applies_each_task_once(
    resolver_only: Engine,
    keyspace: Keyspace,
    client: Client,
    redis: Redis,
    worker_processes: Callable[..., Daemon],
) -> None:
    first = worker_processes("ledger", "--concurrency", "8")
    ids = await client.submit_many([ledger_chain(3, 0.3) for _ in range(20)])
    await eventually(lambda: redis.exists(f"ledger:{ids[0]}"))
    first.signal(signal.SIGKILL)
    await first.wait()
    worker_processes("ledger", "--concurrency", "8")
    states = [await client.wait(workflow_id, timeout=60) for workflow_id in ids]
    assert all(state.status == "completed" for state in states)
    done = await done_events(redis, keyspace)
    assert len(done) == 60 and set(done.values()) == {1}
    requeued = [t for state in states for t in state.tasks if t.lost]
    assert requeued, "the killed worker held tasks that had to be reclaimed"
    assert all(t.attempt == t.lost + 1 for t in requeued)


async def test_long_task_keeps_its_claim_while_its_worker_heartbeats(
    engine: Engine, client: Client, redis: Redis
) -> None:
    state = await client.wait(await client.submit(ledger_chain(1, 5.0)), timeout=30)
    assert state.status == "completed"
    task = state.tasks[0]
    assert task.ended_ms - task.began_ms >= 5000 > 3000  # longer than the visibility timeout
    assert (task.attempt, task.lost) == (1, 0)
    assert await redis.llen(f"ledger:{state.id}") == 1


async def test_paused_worker_late_completion_is_refused(
    resolver_only: Engine,
    keyspace: Keyspace,
    client: Client,
    redis: Redis,
    worker_processes: Callable[..., Daemon],
) -> None:
    engine = resolver_only
    zombie = worker_processes("ledger")
    workflow_id = await client.submit(ledger_chain(1, 2.0))
    await eventually(lambda: redis.exists(f"ledger:{workflow_id}"))
    zombie.signal(signal.SIGSTOP)  # a GC pause longer than the visibility timeout
    engine.start_worker(("ledger",))
    state = await client.wait(workflow_id, timeout=30)
    zombie.signal(signal.SIGCONT)
    assert state.status == "completed" and state.tasks[0].attempt == 2
    ledger = await redis.lrange(f"ledger:{workflow_id}", 0, -1)
    assert [entry.split()[1] for entry in ledger] == [b"1", b"2"]
    # Whatever the zombie sends when it wakes changes nothing.
    await eventually(lambda: _consumer_gone_or_idle(redis, keyspace))
    assert (await client.get(workflow_id)).tasks[0].attempt == 2
    assert (await done_events(redis, keyspace))[(workflow_id.encode(), b"t0")] == 1


async def _consumer_gone_or_idle(redis: Redis, keyspace: Keyspace) -> bool:
    summary = await redis.xpending(keyspace.tasks(0, "ledger"), "ledger")
    return summary["pending"] == 0


async def test_poison_task_that_kills_its_worker_is_dead_lettered_after_max_deliveries(
    resolver_only: Engine,
    keyspace: Keyspace,
    client: Client,
    redis: Redis,
    worker_processes: Callable[..., Daemon],
) -> None:
    spec = {
        "tasks": [
            {"id": "boom", "agent": "crash"},
            {"id": "after", "agent": "echo", "needs": ["boom"]},
        ]
    }
    workflow_id = await client.submit(spec)
    for _ in range(3):  # a supervisor restarting the worker each time it dies
        worker = worker_processes("crash", "--visibility-timeout", "1.5")
        assert await worker.wait(30) != 0
    worker_processes("crash", "--visibility-timeout", "1.5")  # notices the third loss
    state = await client.wait(workflow_id, timeout=30)
    assert state.status == "failed"
    assert "task boom dead-lettered: lost 3 deliveries" in state.reason
    assert [t.state for t in state.tasks] == ["failed", "skipped"]
    dead = await redis.xrange(keyspace.dead(0, "crash"))
    assert len(dead) == 1
    fields = dead[0][1]
    assert fields[b"wf"] == workflow_id.encode() and fields[b"task"] == b"boom"
    assert fields[b"deliveries"] == b"3" and fields[b"entry"]


async def test_redis_killed_and_restarted_with_appendonly_loses_nothing(
    keyspace: Keyspace, caplog: pytest.LogCaptureFixture
) -> None:
    with EmbeddedRedis() as server:
        engine = Engine(server.url, keyspace)
        engine.start_resolver()
        engine.start_worker(("sleep",))
        spec = {
            "tasks": [
                {"id": f"s{i}", "agent": "sleep", "input": {"seconds": 0.05}}
                | ({"needs": [f"s{i - 1}"]} if i else {})
                for i in range(4)
            ]
        }
        async with Client(server.url, ClientSettings(keyspace=keyspace)) as client:
            ids = await client.submit_many([spec for _ in range(30)])
            await eventually(lambda: some_task(client, ids[:5]))
            caplog.clear()
            server.kill()
            await outage_met(caplog)  # an outage the daemons must ride out
            server.start()
            states = [await client.wait(workflow_id, timeout=60) for workflow_id in ids]
        assert [s.status for s in states] == ["completed"] * 30
        await engine.stop()
