"""Row B6: the primary fails over to its replica.

A primary and a replica (``replicaof``) whose replication link runs through the fault proxy,
10 ms each way, as a replica on another host would see it.  A resolver and two workers
(processes) and the producer reach Redis through a second proxy: the address clients know.
Under continuous submissions the primary's host dies: redis-server is SIGKILLed and what its
replication link still carried never arrives.  The replica is promoted (``REPLICAOF NO ONE``)
and the address moved to it (``FaultProxy.repoint``), as a failover does.

Replication is asynchronous, so a failover can lose acknowledged submissions, and nothing here
bounds how many: the test prints acked-but-lost / acked for plain submits and for
``ClientSettings(replicas=1)`` (WAIT 1 100 after each).  It asserts what WAIT does promise:
a submission the replica acknowledged survives its promotion.  And the engine carries on: the
daemons keep their epoch (its key was replicated) and stay up, the resolver reconciles (the
new primary's ``run_id`` differs), every workflow the new primary holds completes, no
completion is accepted twice and none before its needs' (``oracle.py``).  That includes a
completion computed before the failover from a result the failover lost: the new primary
publishes that task again as a new entry, and ``sp_resolve`` accepts only a completion of the
entry the task was last published as.
"""

from __future__ import annotations

import asyncio
import time
from contextlib import AsyncExitStack

import pytest
from redis.asyncio import Redis

from streamproc import Client, ClientSettings, Keyspace
from streamproc.testing.embedded import EmbeddedRedis
from tests.conftest import eventually, some_task
from tests.daemon import Daemon
from tests.faults import oracle
from tests.faults.replication import (
    PRIMARY,
    Tally,
    answered_after_move,
    in_sync,
    present,
    produce,
    replica_of,
)
from tests.faults.tcpproxy import FaultProxy
from tests.faults.workload import all_ready, resolver, worker

LINK_DELAY = 0.01  # one way, seconds
PRODUCERS = 4
WARM = 100  # submissions acknowledged before the primary dies
RECONCILING = "Redis restarted: looking for tasks it may have stranded"


@pytest.mark.parametrize("replicas", [0, 1], ids=["no-wait", "wait-1-100"])
async def test_b6_failover_keeps_what_a_replica_acknowledged_and_the_engine_carries_on(
    replicas: int, keyspace: Keyspace, redis: Redis, redis_url: str
) -> None:
    async with AsyncExitStack() as stack:
        primary = stack.enter_context(EmbeddedRedis(None, None, *PRIMARY))
        link = await stack.enter_async_context(FaultProxy(primary.port))
        link.delay = LINK_DELAY
        replica = stack.enter_context(replica_of(link.port))
        front = await stack.enter_async_context(FaultProxy(primary.port))
        old = await stack.enter_async_context(Redis.from_url(primary.url))
        new = await stack.enter_async_context(Redis.from_url(replica.url))
        await eventually(lambda: in_sync(old))

        url, namespace = front.url, keyspace.namespace
        daemons = [resolver(url, namespace, ledger_url=redis_url)]
        daemons += [worker(url, namespace, "ledger", ledger_url=redis_url) for _ in range(2)]
        stack.callback(_kill, daemons)
        settings = ClientSettings(keyspace=keyspace, replicas=replicas)
        client = await stack.enter_async_context(Client(url, settings))
        await eventually(lambda: all_ready(daemons))

        tally, stop = Tally(), asyncio.Event()
        producers = [asyncio.create_task(produce(client, tally, stop)) for _ in range(PRODUCERS)]
        try:
            await eventually(lambda: _warm(client, tally))
            primary.kill()
            link.reset()  # the host died: what its link still carried never arrives
            await new.replicaof("NO", "ONE")
            front.repoint(replica.port)
            tally.moved, failed_over = True, time.monotonic()
            await eventually(lambda: answered_after_move(tally))
        finally:
            stop.set()
            await asyncio.gather(*producers)

        kept = await present(new, keyspace, tally.attempted)
        lost = sorted(set(tally.acked) - set(kept))
        async with Client(replica.url, ClientSettings(keyspace=keyspace)) as direct:
            await oracle.wait_ended(direct, kept, timeout=30)
            recovered = time.monotonic() - failed_over
            verdict = await oracle.check(direct, redis, kept, timeout=1)
        await eventually(lambda: _logged(daemons[0], RECONCILING))

        print(
            f"\nB6 replicas={replicas}: acked {len(tally.acked)}, acked-but-lost {len(lost)}; "
            f"not replicated {tally.not_replicated}, unanswered {tally.unanswered}; "
            f"{len(kept)} on the new primary, all ended {recovered:.1f}s after the failover; "
            f"duplicate executions {verdict.dup_exec}"
        )
        verdict.assert_invariants()
        assert set(verdict.statuses) == {"completed"}
        for daemon in daemons:
            assert daemon.alive, daemon.log_text()[-2000:]
            assert "Redis lost namespace" not in daemon.log_text()
        if replicas:
            assert not lost, f"acknowledged by the replica, gone after its promotion: {lost}"
            # The new primary has no replica: every submit says so, none is acknowledged.
            assert tally.acked_after_move == 0 and tally.not_replicated_after_move > 0
        else:
            assert tally.acked_after_move > 0


def _kill(daemons: list[Daemon]) -> None:
    for daemon in daemons:
        daemon.kill()


async def _warm(client: Client, tally: Tally) -> bool:
    """For ``eventually``: enough acknowledged submissions, and the workers running them."""
    return len(tally.acked) >= WARM and await some_task(client, tally.acked[:10])


async def _logged(daemon: Daemon, line: str) -> bool:
    return line in daemon.log_text()
