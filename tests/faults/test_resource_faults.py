"""Rows C5, D1, D4: Redis goes away for a while, runs out of memory, or a task outlasts the
visibility timeout.  B1 (Redis SIGKILL) is in tests/test_crash_recovery.py, D2 in
tests/test_preflight.py, D3 in tests/test_retention.py."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis
from redis.exceptions import OutOfMemoryError

from streamproc import Client, ClientSettings, Keyspace
from streamproc.testing.embedded import EmbeddedRedis
from tests.conftest import Engine, eventually, some_task
from tests.faults import oracle
from tests.faults.workload import ledger_chain, worker


@pytest.fixture
async def private_redis() -> AsyncIterator[EmbeddedRedis]:
    """A redis-server of the test's own (appendonly), to shut down or starve."""
    with EmbeddedRedis() as server:
        yield server


@pytest.fixture
async def ledger_engine(private_redis: EmbeddedRedis, keyspace: Keyspace) -> AsyncIterator[Engine]:
    """A resolver and a ``ledger`` worker in this process, on the private server."""
    engine = Engine(private_redis.url, keyspace)
    engine.start_resolver()
    engine.start_worker(("ledger",))
    try:
        yield engine
    finally:
        await engine.stop()


async def test_c5_redis_down_for_five_seconds_every_component_reconnects_and_nothing_is_lost(
    private_redis: EmbeddedRedis, keyspace: Keyspace, redis: Redis, ledger_engine: Engine
) -> None:
    other = worker(private_redis.url, keyspace.namespace, "echo")
    try:
        async with Client(private_redis.url, ClientSettings(keyspace=keyspace)) as client:
            ids = await client.submit_many([ledger_chain(4, 0.05) for _ in range(20)])
            echo = [await client.submit({"tasks": [{"id": "e", "agent": "echo"}]})]
            await eventually(lambda: some_task(client, ids))
            await client.redis.shutdown()  # SHUTDOWN: the AOF is flushed, clients refused
            await asyncio.to_thread(private_redis.process.wait, 10)  # type: ignore[union-attr]
            await asyncio.sleep(5)  # the outage is the subject
            private_redis.start()
            restarted = time.monotonic()
            echo.append(await client.submit({"tasks": [{"id": "e", "agent": "echo"}]}))
            verdict = await oracle.check(client, redis, ids + echo, timeout=40)
            recovery = time.monotonic() - restarted
        verdict.assert_invariants()
        assert verdict.statuses == {"completed": 22}
        assert other.alive, "no crash loop: the worker process rode the outage out"
        assert recovery < 30
    finally:
        other.kill()


async def test_d1_submit_over_maxmemory_is_refused_clearly_and_resumes_when_raised(
    private_redis: EmbeddedRedis, keyspace: Keyspace, redis: Redis, ledger_engine: Engine
) -> None:
    async with Client(private_redis.url, ClientSettings(keyspace=keyspace)) as client:
        spec = ledger_chain(2, 0.01)
        accepted = await client.submit_many([spec for _ in range(5)])
        await oracle.wait_ended(client, accepted, timeout=20)
        used = (await client.redis.info("memory"))["used_memory"]
        await client.redis.config_set("maxmemory", used + 256 * 1024)
        padded = {"tasks": [{"id": "p", "agent": "ledger", "input": "x" * 32 * 1024}]}
        with pytest.raises(OutOfMemoryError, match="maxmemory"):
            for _ in range(100):
                accepted.append(await client.submit(padded))
        await client.redis.config_set("maxmemory", 0)
        accepted.append(await client.submit(spec))
        verdict = await oracle.check(client, redis, accepted)
    verdict.assert_invariants()
    assert verdict.statuses == {"completed": len(accepted)}


async def test_d1_workers_under_maxmemory_keep_running_and_lose_nothing(
    private_redis: EmbeddedRedis, keyspace: Keyspace, redis: Redis, ledger_engine: Engine
) -> None:
    async with Client(private_redis.url, ClientSettings(keyspace=keyspace)) as client:
        accepted = await client.submit_many([ledger_chain(4, 0.2) for _ in range(20)])
        await eventually(lambda: some_task(client, accepted))
        used = (await client.redis.info("memory"))["used_memory"]
        await client.redis.config_set("maxmemory", used + 64 * 1024)
        runs = await _runs(redis, accepted)
        refused = await _oom_refusals(client.redis)
        # Hold the limit until a task ran under it (any workflow's: one alone may sit between
        # two tasks, which only the resolver, refused too, could publish); then take the
        # headroom away (how much the run writes until then varies) until Redis refused a
        # report.
        await eventually(lambda: _ran_more(redis, accepted, runs), timeout=10)
        used = (await client.redis.info("memory"))["used_memory"]
        await client.redis.config_set("maxmemory", used // 2)
        await eventually(lambda: _refused_since(client.redis, refused), timeout=10)
        await client.redis.config_set("maxmemory", 0)
        assert not any(task.done() for task in ledger_engine.tasks), "a daemon died"
        verdict = await oracle.check(client, redis, accepted, timeout=20)
    verdict.assert_invariants()


async def _runs(redis: Redis, workflow_ids: list[str]) -> int:
    """Executions the ledger holds for these workflows."""
    return sum([await redis.llen(f"ledger:{workflow_id}") for workflow_id in workflow_ids])


async def _ran_more(redis: Redis, workflow_ids: list[str], runs: int) -> bool:
    return await _runs(redis, workflow_ids) > runs


async def test_d4_task_longer_than_the_visibility_timeout_is_not_reclaimed_while_heartbeating(
    resolver_only: Engine, redis_url: str, keyspace: Keyspace, client: Client, redis: Redis
) -> None:
    resolver_only.start_worker(("echo",))
    slow = worker(redis_url, keyspace.namespace, "ledger")
    try:
        ids = await client.submit_many([ledger_chain(1, 4.5) for _ in range(4)])  # VT is 3 s
        fast = await client.submit_many([{"tasks": [{"id": "e", "agent": "echo"}]}] * 20)
        fast_status = await oracle.wait_ended(client, fast, timeout=10)
        assert set(fast_status.values()) == {"completed"}
        assert {(await client.get(w)).status for w in ids} == {"running"}, "isolated streams"
        verdict = await oracle.check(client, redis, ids)
        verdict.assert_invariants()
        assert verdict.statuses == {"completed": 4} and verdict.dup_exec == 0
        tasks = [s.tasks[0] for s in verdict.states.values()]
        assert all((t.attempt, t.lost) == (1, 0) for t in tasks), "no false reclaim"
        assert all(t.ended_ms - t.began_ms >= 4500 for t in tasks)  # type: ignore[operator]
    finally:
        slow.kill()


async def _oom_refusals(redis: Redis) -> int:
    """How many commands Redis has refused for lack of memory (INFO errorstats)."""
    stats = await redis.info("errorstats")
    return int(stats.get("errorstat_OOM", {}).get("count", 0))


async def _refused_since(redis: Redis, before: int) -> bool:
    return await _oom_refusals(redis) > before
