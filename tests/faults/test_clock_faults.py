"""Row F1: workers whose clocks are 30 s ahead and 30 s behind.  Reclaiming goes by the idle
time Redis keeps for each pending entry, never by a process's wall clock, so neither worker
takes over the other's running tasks."""

from __future__ import annotations

import shutil

import pytest
from redis.asyncio import Redis

from streamproc import Client, Keyspace
from tests.conftest import Engine, eventually
from tests.faults import oracle
from tests.faults.workload import all_ready, ledger_chain, worker

FAKETIME = shutil.which("faketime")


@pytest.mark.skipif(FAKETIME is None, reason="the faketime binary (libfaketime) is not installed")
async def test_f1_workers_with_skewed_clocks_make_no_false_reclaims(
    resolver_only: Engine, redis_url: str, keyspace: Keyspace, client: Client, redis: Redis
) -> None:
    skewed = [
        worker(redis_url, keyspace.namespace, "ledger", prefix=(str(FAKETIME), "-f", offset))
        for offset in ("+30s", "-30s")
    ]
    try:
        await eventually(lambda: all_ready(skewed))
        ids = await client.submit_many([ledger_chain(2, 1.0) for _ in range(8)])
        verdict = await oracle.check(client, redis, ids, same_clock=False)
        verdict.assert_invariants()
        assert verdict.statuses == {"completed": 8} and verdict.dup_exec == 0
        tasks = [t for s in verdict.states.values() for t in s.tasks]
        assert all((t.attempt, t.lost) == (1, 0) for t in tasks), "no false reclaim"
        seconds, _ = await redis.time()
        skews = {round((t.began_ms or 0) / 1000 - seconds, -1) for t in tasks}
        assert skews == {30, -30}, "both skewed clocks ran tasks"
    finally:
        for daemon in skewed:
            daemon.kill()
