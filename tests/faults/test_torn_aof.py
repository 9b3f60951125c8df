"""Rows B2 and B3: Redis dies under load with ``appendfsync everysec``; the reconciliation
sweep.

B2: SIGKILL alone keeps what Redis wrote to the OS (the page cache survives a process
kill), so nothing acknowledged is lost.  B3 models the power loss that everysec allows: the
tail of the AOF is cut back to its size a second before the kill, and Redis loads the rest
(``aof-load-truncated yes``).  Redis drops an incomplete MULTI at the cut, and every engine
write is one function call or one MULTI/EXEC, so what loads is a state the engine once had;
submissions in the lost second are gone (counted, not hidden), and every workflow that
survived must still end.  The resolver's reconciliation sweep (``reconcile.py``), run after a
restart, re-drives any task left queued with no stream entry to deliver it.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import replace
from pathlib import Path
from typing import cast

from redis.asyncio import Redis

from streamproc import Client, ClientSettings, Keyspace
from streamproc.engine.reconcile import Reconciler
from streamproc.engine.resolver import Resolver
from streamproc.errors import WorkflowNotFound
from streamproc.store.fields import TaskField
from streamproc.store.folded import hmget_many
from streamproc.testing.embedded import EmbeddedRedis
from streamproc.transport.groups import ensure_group
from tests.conftest import Engine, eventually, fast_resolver, some_task
from tests.faults import oracle
from tests.faults.workload import ledger_chain

EVERYSEC = ("--appendfsync", "everysec", "--aof-load-truncated", "yes")


def _tail(server: EmbeddedRedis) -> Path:
    """The AOF segment Redis appends to now."""
    return max(
        (server.data_dir / "appendonlydir").glob("*.incr.aof"), key=lambda p: p.stat().st_mtime
    )


async def _run_through_a_crash(
    keyspace: Keyspace, redis: Redis, *, cut_last_second: bool
) -> tuple[int, oracle.Verdict, int]:
    """Submit while Redis is killed (and its AOF torn); (acked-but-lost, verdict, bytes cut)."""
    with EmbeddedRedis(None, None, *EVERYSEC) as server:
        engine = Engine(server.url, keyspace)
        engine.start_resolver()
        engine.start_worker(("ledger",))
        try:
            async with Client(server.url, ClientSettings(keyspace=keyspace)) as client:
                ids = await client.submit_many([ledger_chain(4, 0.05) for _ in range(20)])
                await eventually(lambda: some_task(client, ids[:5]))
                tail = _tail(server)
                size_a_second_ago = tail.stat().st_size
                deadline = time.monotonic() + 1.0
                while time.monotonic() < deadline:  # keep submitting through the last second
                    ids.append(await client.submit(ledger_chain(2, 0.01)))
                server.kill()
                cut = tail.stat().st_size - size_a_second_ago if cut_last_second else 0
                with tail.open("r+b") as aof:
                    aof.truncate(tail.stat().st_size - cut)
                server.start()
                found = []
                for workflow_id in ids:
                    try:
                        await client.get(workflow_id)
                        found.append(workflow_id)
                    except WorkflowNotFound:
                        pass
                verdict = await oracle.check(client, redis, found, timeout=60)
        finally:
            await engine.stop()
    return len(ids) - len(found), verdict, cut


async def test_b2_redis_sigkilled_with_everysec_loses_nothing_acknowledged(
    keyspace: Keyspace, redis: Redis
) -> None:
    lost, verdict, _ = await _run_through_a_crash(keyspace, redis, cut_last_second=False)
    assert lost == 0
    verdict.assert_invariants()
    assert set(verdict.statuses) == {"completed"}


async def test_b3_torn_aof_tail_loses_only_the_last_second_and_nothing_stays_running(
    keyspace: Keyspace, redis: Redis
) -> None:
    lost, verdict, cut = await _run_through_a_crash(keyspace, redis, cut_last_second=True)
    assert cut > 0
    verdict.assert_invariants()  # I1: every workflow that survived the cut ended
    assert set(verdict.statuses) == {"completed"}
    print(f"B3: {cut} bytes cut, {lost} acknowledged submissions lost, {verdict.n} ended")


async def _entry_of(client: Client, workflow_id: str, task: str) -> bytes:
    [[entry]] = await hmget_many(
        client.redis, client.keyspace, [(workflow_id, [TaskField.ENTRY.of(task)])]
    )
    return cast(bytes, entry)


async def test_reconciler_republishes_a_queued_task_whose_entry_no_stream_holds(
    client: Client, keyspace: Keyspace
) -> None:
    """An undelivered entry trimmed by hand would leave its task queued forever."""
    undelivered = await client.submit({"tasks": [{"id": "a", "agent": "echo"}]})
    delivered = await client.submit({"tasks": [{"id": "b", "agent": "echo"}]})
    stream = keyspace.tasks(keyspace.shard_of(undelivered), "echo")
    reconciler = Reconciler(client.redis, keyspace)
    assert await reconciler.sweep() == 0 and reconciler.suspects == 0  # no group: all ahead

    await client.redis.xdel(stream, await _entry_of(client, undelivered, "a"))
    await ensure_group(client.redis, stream, "echo")  # a consumer read b and acked it
    await client.redis.xreadgroup("echo", "gone", {stream: ">"})
    await client.redis.xack(stream, "echo", await _entry_of(client, delivered, "b"))
    done = keyspace.done(keyspace.shard_of(delivered))
    await ensure_group(client.redis, done, "resolver")
    await client.redis.xadd(done, {"in": "flight"})  # as if b's completion, not yet applied
    assert await reconciler.sweep() == 0, "first seen: a completion may be on its way"
    assert reconciler.suspects == 2  # a: deleted; b: acknowledged, not completed
    assert await reconciler.sweep() == 0, "that completion is unread: still wait"
    await client.redis.xreadgroup("resolver", "r", {done: ">"})
    assert await reconciler.sweep() == 0, "read, not yet applied: still wait"
    await client.redis.xack(done, "resolver", *[i for i, _ in await client.redis.xrange(done)])
    assert await reconciler.sweep() == 2  # all applied and still queued: truly stranded
    for workflow_id in (undelivered, delivered):
        state = await client.get(workflow_id)
        assert state.tasks[0].attempt == 2 and state.tasks[0].state == "queued"
        last = (await client.history(workflow_id))[-1]
        assert last["kind"] == "task_requeued" and last["reason"] == "reconciled"
    assert reconciler.suspects == 0


async def test_the_resolver_reconciles_on_its_own_and_the_workflow_completes(
    redis_url: str, keyspace: Keyspace, client: Client
) -> None:
    engine = Engine(redis_url, keyspace)
    settings = replace(fast_resolver(keyspace), reconcile_interval=0.5)
    engine.tasks.append(
        asyncio.create_task(Resolver(engine.redis, settings).run(engine.stop_event))
    )
    try:
        workflow_id = await client.submit({"tasks": [{"id": "a", "agent": "echo"}]})
        stream = keyspace.tasks(keyspace.shard_of(workflow_id), "echo")
        await client.redis.xdel(stream, await _entry_of(client, workflow_id, "a"))
        engine.start_worker(("echo",))
        state = await client.wait(workflow_id, timeout=30)
        assert state.status == "completed" and state.tasks[0].attempt == 2
    finally:
        await engine.stop()
