"""Rows A2, A3, A8: processes die inside a crash window, or a whole agent pool goes away.

A1 (worker SIGKILL mid-task), A5 (zombie via SIGSTOP), A6 (poison) and A7 (SIGTERM) are in
tests/test_crash_recovery.py, tests/test_dead_letters.py and tests/test_graceful_shutdown.py.

A2 runs twice, as the row asks: ``worker.after_xadd_before_xack`` splits the flush into two
round trips (the window a non-transactional pipeline has), ``worker.before_exec`` dies inside
the flush's MULTI, its commands queued but no EXEC sent.  The XADD-to-XACK window exists only
for a worker that reports to the resolver (``--via-resolver``, or a least-privilege one): one
that applies its completions acknowledges their entries inside ``sp_resolve``, as the resolver
does (A3), so only its MULTI window is tested.

A3 names two failpoints.  ``resolver.after_lua_before_xack`` cannot exist: the resolver's XACK
of a batch runs inside the ``sp_resolve`` Redis Function, atomically with the state changes and
the ready-task XADDs, so no process can die between them and that half of the row holds by
construction.  ``resolver.mid_batch`` (batch read, nothing applied) is tested here.
"""

from __future__ import annotations

import signal

import pytest
from redis.asyncio import Redis

from streamproc import Client, Keyspace
from tests.conftest import Engine, eventually
from tests.faults import oracle
from tests.faults.workload import all_ready, ledger_chain, resolver, worker
from tests.test_worker_applies import pending


async def test_a2_worker_killed_between_completion_and_ack_applies_once(
    resolver_only: Engine, redis_url: str, keyspace: Keyspace, client: Client, redis: Redis
) -> None:
    ids = await client.submit_many([ledger_chain(2, 0.05) for _ in range(10)])
    doomed = worker(
        redis_url,
        keyspace.namespace,
        "ledger",
        "--via-resolver",  # the window exists only for completions sent to the resolver
        failpoint="worker.after_xadd_before_xack",
    )
    try:
        assert await doomed.wait() == -signal.SIGKILL, doomed.log_text()
        stream = keyspace.tasks(0, "ledger")
        assert await pending(redis, stream, "ledger") > 0, "completions sent, XACKs not"
        resolver_only.start_worker(("ledger",))
        verdict = await oracle.check(client, redis, ids)
        verdict.assert_invariants()
        assert verdict.statuses == {"completed": 10}
        # Roots whose completion crossed the window kept attempt 1, run by the dead worker:
        # their reclaimed entries were only acknowledged.  Roots it ran without reporting
        # (or never began) were re-run: duplicate executions (allowed), each applied once.
        crossed = [
            s for s in verdict.states.values() if s.tasks[0].attempt == 1 and s.tasks[0].lost == 0
        ]
        assert crossed and all(f"-{doomed.process.pid}-" in s.tasks[0].consumer for s in crossed)
        await eventually(lambda: pending_is(redis, stream, "ledger", 0), timeout=15)
    finally:
        doomed.kill()


async def pending_is(redis: Redis, stream: str, group: str, count: int) -> bool:
    return await pending(redis, stream, group) == count


@pytest.mark.parametrize("mode", [(), ("--via-resolver",)], ids=["applying", "via-resolver"])
async def test_a2_worker_killed_inside_its_multi_before_exec_applies_nothing_then_once(
    resolver_only: Engine,
    redis_url: str,
    keyspace: Keyspace,
    client: Client,
    redis: Redis,
    mode: tuple[str, ...],
) -> None:
    """The transactional half of A2: the flush's MULTI and its queued commands (the
    ``sp_resolve`` applying its completions, or their XADDs to the completion stream and
    the XACKs) reached Redis, EXEC did not.  Redis drops the transaction with the
    connection, so the tasks whose completions it held are still pending and unapplied, and
    each is re-run and applied once."""
    ids = await client.submit_many([ledger_chain(2, 0.05) for _ in range(10)])
    doomed = worker(redis_url, keyspace.namespace, "ledger", *mode, failpoint="worker.before_exec")
    try:
        assert await doomed.wait() == -signal.SIGKILL, doomed.log_text()
        ran = await _run_by(redis, ids, doomed.process.pid)
        assert ran, "the doomed worker ran tasks before its first flush"
        assert await redis.xlen(keyspace.done(0)) == 0, "no XADD of the flush was applied"
        for workflow_id, task in ran:
            state = await client.get(workflow_id)
            assert next(t for t in state.tasks if t.id == task).state != "done"
        stream = keyspace.tasks(0, "ledger")
        for workflow_id, task in ran:  # nor any XACK: each entry still pending, still its
            entry = next(t.entry for t in (await client.get(workflow_id)).tasks if t.id == task)
            [held] = await redis.xpending_range(stream, "ledger", entry, entry, 1)
            assert f"-{doomed.process.pid}-" in held["consumer"].decode()
        resolver_only.start_worker(("ledger",))
        verdict = await oracle.check(client, redis, ids)
        verdict.assert_invariants()
        assert verdict.statuses == {"completed": 10}
        for workflow_id, task in ran:
            [state] = [t for t in verdict.states[workflow_id].tasks if t.id == task]
            assert state.attempt == 2 and f"-{doomed.process.pid}-" not in state.consumer
        assert verdict.dup_exec == len(ran), "re-run once each (duplicate execution, one effect)"
        await eventually(lambda: pending_is(redis, stream, "ledger", 0), timeout=15)
    finally:
        doomed.kill()


async def _run_by(redis: Redis, ids: list[str], pid: int) -> list[tuple[str, str]]:
    """The (workflow, task) pairs the process ``pid`` began, from the effect ledger."""
    ran = []
    for workflow_id in ids:
        for entry in await redis.lrange(f"ledger:{workflow_id}", 0, -1):
            task, _, by = entry.decode().split()
            if by == str(pid):
                ran.append((workflow_id, task))
    return ran


async def test_a3_resolver_killed_mid_batch_applies_each_completion_once(
    redis_url: str, keyspace: Keyspace, client: Client, redis: Redis
) -> None:
    engine = Engine(redis_url, keyspace)
    engine.start_worker(("ledger",), apply_completions=False)  # the resolver applies
    doomed = resolver(redis_url, keyspace.namespace, failpoint="resolver.mid_batch")
    try:
        ids = await client.submit_many([ledger_chain(3, 0.02) for _ in range(10)])
        assert await doomed.wait() == -signal.SIGKILL, doomed.log_text()
        assert await pending(redis, keyspace.done(0), "resolver") > 0, "a batch read, unapplied"
        engine.start_resolver()  # its sweep takes the dead resolver's batch over after 3 s
        verdict = await oracle.check(client, redis, ids)
        verdict.assert_invariants()
        assert verdict.statuses == {"completed": 10}
        # No ready task was published twice: every task ran exactly once.
        assert verdict.dup_exec == 0
    finally:
        doomed.kill()
        await engine.stop()


async def test_a8_agent_pool_down_while_submitting_drains_and_other_agents_are_unaffected(
    resolver_only: Engine, redis_url: str, keyspace: Keyspace, client: Client, redis: Redis
) -> None:
    resolver_only.start_worker(("echo",))
    pool = [worker(redis_url, keyspace.namespace, "ledger") for _ in range(2)]
    first = await client.submit_many([ledger_chain(2, 0.01) for _ in range(5)])
    await oracle.wait_ended(client, first, timeout=20)
    await eventually(lambda: all_ready(pool))
    for process in pool:
        process.signal(signal.SIGTERM)
    assert [await p.wait() for p in pool] == [0, 0]
    backlog = await client.submit_many([ledger_chain(2, 0.01) for _ in range(20)])
    others = await client.submit_many([{"tasks": [{"id": "e", "agent": "echo"}]}] * 10)
    other_status = await oracle.wait_ended(client, others, timeout=20)
    assert set(other_status.values()) == {"completed"}, "echo must not wait for ledger"
    assert {(await client.get(w)).status for w in backlog} == {"running"}
    assert await redis.xlen(keyspace.tasks(0, "ledger")) >= 20
    pool = [worker(redis_url, keyspace.namespace, "ledger") for _ in range(2)]
    try:
        verdict = await oracle.check(client, redis, first + backlog)
        verdict.assert_invariants()
        assert verdict.statuses == {"completed": 25} and verdict.dup_exec == 0
        assert await pending(redis, keyspace.tasks(0, "ledger"), "ledger") == 0
    finally:
        for process in pool:
            process.kill()
