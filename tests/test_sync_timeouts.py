"""A plain-function agent runs in a thread, which a timeout cannot stop: the attempt is
reported timed out only once the thread returned, so its retry never overlaps it."""

from __future__ import annotations

import signal
from collections.abc import Callable

from redis.asyncio import Redis

from streamproc import Client, Keyspace
from tests.conftest import Engine, eventually
from tests.daemon import Daemon


async def both_attempts_ended(redis: Redis, workflow_id: str) -> list[bytes]:
    entries: list[bytes] = await redis.lrange(f"runs:{workflow_id}", 0, -1)
    return entries if len(entries) == 2 else []


async def test_a_timed_out_plain_function_finishes_before_its_retry_starts(
    resolver_only: Engine, client: Client, redis: Redis
) -> None:
    resolver_only.start_worker(("stubborn",))
    task = {"id": "t", "agent": "stubborn", "input": {"seconds": 2}, "timeout": 1, "retries": 1}
    workflow_id = await client.submit({"tasks": [task]})
    state = await client.wait(workflow_id, timeout=30)
    assert state.status == "failed"
    assert state.reason == "task t dead-lettered: failed 2 times, last: timed out after 1.0s"
    assert [h["error"] for h in state.tasks[0].history] == ["timed out after 1.0s"] * 2
    entries = await eventually(lambda: both_attempts_ended(redis, workflow_id))
    runs = sorted(tuple(map(float, entry.split())) for entry in entries)
    (_, _, first_ended), (_, second_began, _) = runs
    assert second_began >= first_ended, f"attempts overlapped: {runs}"


async def test_a_plain_function_still_running_at_shutdown_does_not_hold_the_worker_up(
    resolver_only: Engine,
    client: Client,
    redis: Redis,
    keyspace: Keyspace,
    worker_processes: Callable[..., Daemon],
) -> None:
    """Past the grace period (10 s) the worker hands the task back and exits; the thread, still
    sleeping, ends with the process instead of keeping it alive."""
    worker = worker_processes("stubborn")
    task = {"id": "t", "agent": "stubborn", "input": {"seconds": 600}, "timeout": 0.5}
    workflow_id = await client.submit({"tasks": [task]})
    await eventually(lambda: running(client, workflow_id))
    worker.signal(signal.SIGTERM)
    assert await worker.wait(timeout=25) == 0
    assert (await redis.xpending(keyspace.tasks(0, "stubborn"), "stubborn"))["pending"] == 0
    assert (await client.get(workflow_id)).tasks[0].attempt == 2, "handed back as attempt 2"


async def running(client: Client, workflow_id: str) -> bool:
    return (await client.get(workflow_id)).tasks[0].state == "running"
