"""Spawns under faults: a resolver killed with a batch of spawn completions read but not
applied leaves them to the next resolver, which applies each spawn once; redis-server killed
(``appendfsync always``) while spawns are applied leaves none half applied (row E8; the
duplicate, redelivered and zombie completions of that row are in tests/test_spawn_once.py)."""

from __future__ import annotations

import signal
from typing import Any

import pytest
from redis.asyncio import Redis

from streamproc import Client, ClientSettings, Keyspace
from streamproc.testing.embedded import EmbeddedRedis
from tests.conftest import Engine, eventually, outage_met, some_task
from tests.faults import oracle
from tests.faults.workload import resolver


def planned(queries: int) -> dict[str, Any]:
    spawn = [{"id": f"q{i}", "agent": "ledger"} for i in range(queries)]
    return {
        "tasks": [
            {"id": "plan", "agent": "planner", "input": {"spawn": spawn}},
            {"id": "reduce", "agent": "ledger", "needs": ["plan"]},
        ]
    }


async def test_a_resolver_killed_holding_spawn_completions_leaves_each_spawn_applied_once(
    redis_url: str, keyspace: Keyspace, client: Client, redis: Redis
) -> None:
    engine = Engine(redis_url, keyspace)
    engine.start_worker(("planner", "ledger"), apply_completions=False)
    doomed = resolver(redis_url, keyspace.namespace, failpoint="resolver.mid_batch")
    try:
        ids = await client.submit_many([planned(3) for _ in range(10)])
        assert await doomed.wait() == -signal.SIGKILL, doomed.log_text()
        pending = await redis.xpending(keyspace.done(0), "resolver")
        assert pending["pending"] > 0, "a batch of spawn completions read, unapplied"
        engine.start_resolver()  # its sweep takes the dead resolver's batch over
        verdict = await oracle.check(client, redis, ids, agents=("planner", "ledger"))
        verdict.assert_invariants()
        assert verdict.statuses == {"completed": 10}
        assert verdict.dup_exec == 0  # every task, spawned ones included, ran once
        for state in verdict.states.values():
            assert [t.id for t in state.tasks] == ["plan", "reduce", "q0", "q1", "q2"]
            assert state.results["reduce"]["deps"] == ["plan", "q0", "q1", "q2"]
            kinds = [e["kind"] for e in await client.history(state.id)]
            assert kinds.count("tasks_spawned") == 1
    finally:
        doomed.kill()
        await engine.stop()


async def test_redis_killed_while_spawns_apply_leaves_none_half_applied(
    keyspace: Keyspace, redis: Redis, caplog: pytest.LogCaptureFixture
) -> None:
    with EmbeddedRedis(None, None, "--appendfsync", "always") as server:
        engine = Engine(server.url, keyspace)
        engine.start_resolver()
        engine.start_worker(("planner", "ledger"))
        try:
            async with Client(server.url, ClientSettings(keyspace=keyspace)) as client:
                ids = await client.submit_many([planned(3) for _ in range(30)])
                await eventually(lambda: some_task(client, ids[:5]))
                caplog.clear()
                server.kill()
                await outage_met(caplog)  # an outage the daemons must ride out
                server.start()
                verdict = await oracle.check(client, redis, ids, 60, ("planner", "ledger"))
                verdict.assert_invariants()
                assert verdict.statuses == {"completed": 30}
                for state in verdict.states.values():
                    assert [t.id for t in state.tasks] == ["plan", "reduce", "q0", "q1", "q2"]
                    assert {t.spawner for t in state.tasks} == {"", "plan"}
                    kinds = [e["kind"] for e in await client.history(state.id)]
                    assert kinds.count("tasks_spawned") == 1
        finally:
            await engine.stop()
