"""A plain-function agent runs in a thread, which a timeout cannot stop: the attempt is
reported timed out only once the thread returned, so its retry never overlaps it."""

from __future__ import annotations

from redis.asyncio import Redis

from streamproc import Client
from tests.conftest import Engine, eventually


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
