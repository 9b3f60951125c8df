"""Row D5: an agent returns 10 MB, then 100 MB.  The worker's inline cap (``max_result_bytes``,
1 MiB) refuses such a result before anything is written: the task fails at once, since a
result too large now is too large on every retry, the workflow FAILED says why, the blob never
reaches Redis, and the resolver goes on completing other workflows meanwhile."""

from __future__ import annotations

import asyncio
import time

from redis.asyncio import Redis

from streamproc import Client, Keyspace
from tests.conftest import Engine, eventually
from tests.faults import oracle
from tests.faults.workload import all_ready, worker

CAP = 1 << 20
SMALL = {"tasks": [{"id": "a", "agent": "echo"}, {"id": "b", "agent": "echo", "needs": ["a"]}]}


async def _used_memory(redis: Redis) -> int:
    return int((await redis.info("memory"))["used_memory"])


async def _latency(client: Client) -> float:
    """Seconds from submitting a small two-task workflow to its completion."""
    began = time.monotonic()
    state = await client.wait(await client.submit(SMALL), timeout=20)
    assert state.status == "completed"
    return time.monotonic() - began


async def _latencies_until(client: Client, done: asyncio.Future[object]) -> list[float]:
    """Small workflows one after another until ``done``: at least 10, at most 100 (each
    leaves about 10 KB in Redis, which the memory check allows for)."""
    latencies: list[float] = []
    while len(latencies) < 10 or (not done.done() and len(latencies) < 100):
        latencies.append(await _latency(client))
    return latencies


async def test_d5_results_of_10_and_100_mb_fail_once_with_the_reason_and_never_reach_redis(
    resolver_only: Engine, redis_url: str, keyspace: Keyspace, client: Client, redis: Redis
) -> None:
    resolver_only.start_worker(("echo",))
    hoarder = worker(redis_url, keyspace.namespace, "big")
    try:
        await eventually(lambda: all_ready([hoarder]))
        without = sorted([await _latency(client) for _ in range(10)])
        before = await _used_memory(redis)
        sizes = {10: "", 100: ""}
        specs = [{"tasks": [{"id": "blob", "agent": "big", "input": {"mb": mb}}]} for mb in sizes]
        big = await client.submit_many(specs)
        ended = asyncio.ensure_future(oracle.wait_ended(client, big, timeout=30))
        during = sorted(await _latencies_until(client, ended))
        await ended
        verdict = await oracle.check(client, redis, big, agents=["big", "echo"])
        delta = await _used_memory(redis) - before

        verdict.assert_invariants()
        assert verdict.statuses == {"failed": 2}
        for workflow_id, mb in zip(big, sizes, strict=True):
            state = verdict.states[workflow_id]
            size = (mb << 20) + 2  # the JSON string's quotes
            assert state.reason == (
                f"task blob dead-lettered: result too large: {size} bytes, over the {CAP}-byte cap"
            )
            assert (state.tasks[0].attempt, state.tasks[0].failures) == (1, 1), "not retried"
            assert await redis.llen(f"ledger:{workflow_id}") == 1, "run once"
            assert await redis.memory_usage(keyspace.past(workflow_id)) < 64 << 10  # stowed
        dead = await redis.xrange(keyspace.dead(0, "big"))
        assert len(dead) == 2 and all(b"result too large" in f[b"reason"] for _, f in dead)
        assert verdict.dlq_complete == 2
        assert delta < 4 * CAP, f"redis grew by {delta} bytes"
        # The resolver was never blocked: small workflows kept their pace (p99 = max here).
        assert during[-1] < max(5.0, 10 * without[-1]), (without, during)
        assert hoarder.alive, "the worker survived building and refusing 100 MB"
    finally:
        hoarder.kill()
