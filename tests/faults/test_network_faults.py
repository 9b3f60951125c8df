"""Rows C1-C4: the network between a daemon and Redis partitions, blackholes, resets or slows
down.  The faulted worker and resolver are subprocesses reaching Redis through a network
namespace (netns.py) or the fault proxy (tcpproxy.py); the client and the oracle talk to Redis
directly.  C5 (Redis down) is in test_resource_faults.py.
"""

from __future__ import annotations

import asyncio
import random
import re
import shutil
import signal
import socket
import time
from collections.abc import AsyncIterator, Iterator
from functools import partial
from pathlib import Path
from typing import Any

import pytest
from redis.asyncio import Redis

from streamproc import Client, ClientSettings, Keyspace
from streamproc.config import RedisSettings
from streamproc.testing.embedded import EmbeddedRedis
from tests.conftest import eventually
from tests.daemon import Daemon
from tests.faults import oracle
from tests.faults.netns import NetNamespace, unavailable
from tests.faults.tcpproxy import FaultProxy
from tests.faults.workload import all_ready, ledger_chain, ledger_dag, resolver, worker

VT = 3.0  # the workers' visibility timeout (workload.worker)
# Short, so that a blackhole outlasts it within a test; above the daemons' 2 s blocking reads.
SOCKET_TIMEOUT = 4.0
# Scheduling slack on a loaded two-core box, for the measured bounds.
SLACK = 1.5
_IGNORED = re.compile(r"ignored (\d+) duplicate or superseded completions")


@pytest.fixture
def netns() -> Iterator[NetNamespace]:
    reason = unavailable()
    if reason is not None:
        pytest.skip(reason)
    with NetNamespace() as namespace:
        yield namespace


@pytest.fixture
def exposed_redis(netns: NetNamespace) -> Iterator[EmbeddedRedis]:
    """A redis-server of the test's own that also listens on the namespace's host end.
    Protected mode is off: that address exists only between this host and the namespace."""
    bind = ("--bind", f"127.0.0.1 {netns.host_ip}", "--protected-mode", "no")
    with EmbeddedRedis(None, None, *bind) as server:
        yield server


@pytest.fixture
async def proxy(redis_server: EmbeddedRedis) -> AsyncIterator[FaultProxy]:
    async with FaultProxy(redis_server.port) as running:
        yield running


# -- C1 --------------------------------------------------------------------------------------


async def test_c1_partitioned_worker_is_taken_over_fenced_and_reconnects_without_restart(
    netns: NetNamespace, exposed_redis: EmbeddedRedis, keyspace: Keyspace
) -> None:
    url = exposed_redis.url
    redis = Redis.from_url(url)
    daemons = [
        resolver(url, keyspace.namespace),
        worker(netns.url(exposed_redis.port), keyspace.namespace, "ledger", prefix=netns.prefix),
    ]
    cut = daemons[1]
    try:
        await eventually(lambda: all_ready(daemons))
        async with Client(url, ClientSettings(keyspace=keyspace)) as client:
            ids = await client.submit_many([_slow_then_quick(2.0) for _ in range(6)])
            await eventually(lambda: _begun_by(redis, ids, cut, 6))
            netns.link(up=False)
            daemons.append(worker(url, keyspace.namespace, "ledger"))
            # The partition lasts until the others took its tasks over (a visibility timeout).
            await eventually(lambda: _holds_none(redis, keyspace, cut))
            netns.link(up=True)
            healed = time.monotonic()
            # Its connections outlived the partition: TCP resent what it wrote meanwhile.
            await eventually(lambda: _refused(cut, 1))
            assert time.monotonic() - healed < 15, "it reconnected"
            await eventually(lambda: _refused(cut, 6))
            verdict = await oracle.check(client, redis, ids)
            verdict.assert_invariants()  # the late writes were refused: no zombie accepted
            assert verdict.statuses == {"completed": 6}
            roots = [s.tasks[0] for s in verdict.states.values()]
            assert all(t.attempt >= 2 and t.lost >= 1 for t in roots), "others took them over"
            assert await _refused(cut, 0) == 6, "its six roots' completions, and nothing else"
            # It reconnected without a restart: alone again, the same process runs new work.
            daemons[2].signal(signal.SIGTERM)
            await asyncio.to_thread(daemons[2].process.wait, 30)
            more = await client.submit_many([ledger_chain(1, 0.01) for _ in range(3)])
            after = await oracle.check(client, redis, more)
            after.assert_invariants()
            assert after.statuses == {"completed": 3}
            assert await _begun_by(redis, more, cut, 3), cut.log_text()
            assert cut.alive
    finally:
        for daemon in daemons:
            daemon.kill()
        await redis.aclose()


def _slow_then_quick(seconds: float) -> dict[str, Any]:
    return {
        "tasks": [
            {"id": "t0", "agent": "ledger", "input": {"seconds": seconds}},
            {"id": "t1", "agent": "ledger", "input": {"seconds": 0.01}, "needs": ["t0"]},
        ]
    }


# -- C2 --------------------------------------------------------------------------------------


async def test_c2_blackholed_worker_gives_up_each_call_within_the_socket_timeout_and_resumes(
    proxy: FaultProxy, redis_url: str, keyspace: Keyspace, client: Client, redis: Redis
) -> None:
    daemons = [
        resolver(redis_url, keyspace.namespace),
        worker(
            proxy.url,
            keyspace.namespace,
            "ledger",
            "--socket-timeout",
            str(SOCKET_TIMEOUT),
            ledger_url=redis_url,
        ),
    ]
    held = daemons[1]
    try:
        await eventually(lambda: all_ready(daemons))
        ids = await client.submit_many([ledger_chain(3, 0.3) for _ in range(8)])
        await eventually(lambda: _holds_some(redis, keyspace, held))
        proxy.blackhole()
        # The blackhole lasts until the socket timeout has cut a call waiting in it.
        await eventually(partial(_counted, proxy, "gave_up", 0), timeout=SOCKET_TIMEOUT + 10)
        assert SOCKET_TIMEOUT - SLACK <= proxy.longest_wait() <= SOCKET_TIMEOUT + SLACK
        assert proxy.gave_up >= 1, "calls were cut by the socket timeout, not by the heal"
        proxy.heal()
        verdict = await oracle.check(client, redis, ids)
        verdict.assert_invariants()
        assert verdict.statuses == {"completed": 8}, "the only worker resumed"
        assert held.alive
    finally:
        for daemon in daemons:
            daemon.kill()


IPTABLES = shutil.which("iptables")


@pytest.mark.skipif(IPTABLES is None, reason="iptables is not installed")
async def test_c2_worker_behind_an_iptables_drop_gives_up_each_call_within_the_socket_timeout(
    netns: NetNamespace, exposed_redis: EmbeddedRedis, keyspace: Keyspace
) -> None:
    bind = ("--bind", f"127.0.0.1 {netns.host_ip}", "--protected-mode", "no")
    with EmbeddedRedis(None, None, *bind) as ledger_server:  # on its own port: not dropped
        url = exposed_redis.url
        redis = Redis.from_url(url)
        ledger = Redis.from_url(ledger_server.url)
        daemons = [
            resolver(url, keyspace.namespace),
            worker(
                netns.url(exposed_redis.port),
                keyspace.namespace,
                "ledger",
                "--socket-timeout",
                str(SOCKET_TIMEOUT),
                ledger_url=netns.url(ledger_server.port),
                prefix=netns.prefix,
            ),
        ]
        held = daemons[1]
        rule = ("OUTPUT", "-p", "tcp", "--dport", str(exposed_redis.port), "-j", "DROP")
        try:
            await eventually(lambda: all_ready(daemons))
            async with Client(url, ClientSettings(keyspace=keyspace)) as client:
                ids = await client.submit_many([ledger_chain(3, 0.3) for _ in range(8)])
                await eventually(lambda: _holds_some(redis, keyspace, held))
                netns.run("iptables", "-A", *rule)
                stuck = await _longest_stuck(held, exposed_redis.port, SOCKET_TIMEOUT + 2)
                netns.run("iptables", "-D", *rule)
                assert SOCKET_TIMEOUT - SLACK <= stuck <= SOCKET_TIMEOUT + SLACK
                verdict = await oracle.check(client, ledger, ids)
            verdict.assert_invariants()
            assert verdict.statuses == {"completed": 8}, "the only worker resumed"
            assert held.alive
        finally:
            for daemon in daemons:
                daemon.kill()
            await redis.aclose()
            await ledger.aclose()


async def _longest_stuck(daemon: Daemon, port: int, seconds: float) -> float:
    """Watch ``daemon``'s connections to ``port`` for ``seconds``; the longest any stayed
    established with a request Redis never acknowledged (a call blocked on the drop)."""
    table = Path(f"/proc/{daemon.process.pid}/net/tcp")
    loop = asyncio.get_running_loop()
    since: dict[str, float] = {}
    longest = 0.0
    end = loop.time() + seconds
    while loop.time() < end:
        now = loop.time()
        stuck = _unacknowledged(await asyncio.to_thread(table.read_text), port)
        for local in set(since) - stuck:
            longest = max(longest, now - since.pop(local))
        for local in stuck - set(since):
            since[local] = now
        await asyncio.sleep(0.05)
    return max([longest, *(loop.time() - t for t in since.values())])


def _unacknowledged(table: str, port: int) -> set[str]:
    """Local addresses of established connections to ``port`` with bytes in flight
    (``/proc/net/tcp``: state 01 is ESTABLISHED; tx_queue counts unacknowledged bytes)."""
    found = set()
    for line in table.splitlines()[1:]:
        local, remote, state, queues = line.split()[1:5]
        remote_port = int(remote.split(":")[1], 16)
        if remote_port == port and state == "01" and int(queues.split(":")[0], 16) > 0:
            found.add(local)
    return found


# -- C3 --------------------------------------------------------------------------------------


async def test_c3_connection_resets_mid_pipeline_are_retried_without_duplicate_effects(
    proxy: FaultProxy, redis_url: str, keyspace: Keyspace, client: Client, redis: Redis
) -> None:
    daemons = [
        resolver(proxy.url, keyspace.namespace),
        worker(proxy.url, keyspace.namespace, "ledger", ledger_url=redis_url),
    ]
    rng = random.Random(3)
    try:
        await eventually(lambda: all_ready(daemons))
        ids = await client.submit_many([ledger_dag(rng, 8, 0.01, 0.1) for _ in range(20)])
        for burst in range(16):  # the resets are the subject
            resets, connections = proxy.resets, proxy.connections
            if burst % 2:
                proxy.reset()
            else:
                proxy.reset_after_bytes = rng.randint(100, 4000)
            await eventually(partial(_counted, proxy, "resets", resets))
            proxy.reset_after_bytes = None
            # Back: counted from before the reset, as a daemon may reconnect within a poll.
            await eventually(partial(_counted, proxy, "connections", connections))
        assert proxy.resets > 8
        verdict = await oracle.check(client, redis, ids)
        verdict.assert_invariants()
        assert verdict.statuses == {"completed": 20}
        assert all(d.alive for d in daemons), "every daemon rode the resets out"
        # A read whose reply was reset still delivered its entries: they are picked up again
        # at once, not left for a sweep to count as lost deliveries (and dead-letter).
        assert all(t.lost == 0 for s in verdict.states.values() for t in s.tasks)
    finally:
        for daemon in daemons:
            daemon.kill()


async def _counted(proxy: FaultProxy, counter: str, above: int) -> bool:
    """Whether the proxy's ``counter`` (resets, connections) has passed ``above``."""
    return int(getattr(proxy, counter)) > above


# -- C4 --------------------------------------------------------------------------------------


async def test_c4_latency_jitter_and_a_bandwidth_cap_lose_nothing_and_reclaim_nothing(
    proxy: FaultProxy, redis_url: str, keyspace: Keyspace, client: Client, redis: Redis
) -> None:
    proxy.delay, proxy.jitter = 0.02, 0.01
    proxy.bandwidth = 256 * 1024
    daemons = [
        resolver(proxy.url, keyspace.namespace),
        worker(proxy.url, keyspace.namespace, "ledger", ledger_url=redis_url),
    ]
    rng = random.Random(4)
    try:
        await eventually(lambda: all_ready(daemons))
        # Tasks longer than the visibility timeout live on heartbeats sent through the delay.
        specs = [ledger_chain(1, VT + 1) for _ in range(3)]
        specs += [ledger_dag(rng, 6, 0.01, 0.1) for _ in range(20)]
        ids = await client.submit_many(specs)
        verdict = await oracle.check(client, redis, ids)
        verdict.assert_invariants()
        assert verdict.statuses == {"completed": 23}
        tasks = [t for s in verdict.states.values() for t in s.tasks]
        false_reclaims = [t.id for t in tasks if (t.attempt, t.lost) != (1, 0)]
        assert not false_reclaims and verdict.dup_exec == 0
    finally:
        for daemon in daemons:
            daemon.kill()


# -- helpers ---------------------------------------------------------------------------------


def _tag(daemon: Daemon) -> bytes:
    """What names ``daemon`` in a consumer name (host-pid-random)."""
    return f"-{daemon.process.pid}-".encode()


async def _held(redis: Redis, keyspace: Keyspace, daemon: Daemon) -> int:
    """Entries of the ledger stream pending with ``daemon``'s consumer."""
    summary = await redis.xpending(keyspace.tasks(0, "ledger"), "ledger")
    consumers = summary["consumers"] or []
    return sum(int(c["pending"]) for c in consumers if _tag(daemon) in c["name"])


async def _holds_some(redis: Redis, keyspace: Keyspace, daemon: Daemon) -> bool:
    return await _held(redis, keyspace, daemon) > 0


async def _holds_none(redis: Redis, keyspace: Keyspace, daemon: Daemon) -> bool:
    return await _held(redis, keyspace, daemon) == 0


async def _begun_by(redis: Redis, ids: list[str], daemon: Daemon, count: int) -> bool:
    """Whether ``daemon`` began at least ``count`` task executions of these workflows."""
    pid = str(daemon.process.pid).encode()
    runs = [entry for w in ids for entry in await redis.lrange(f"ledger:{w}", 0, -1)]
    return sum(entry.split()[2] == pid for entry in runs) >= count


async def _refused(daemon: Daemon, count: int) -> int:
    """How many of its completions ``daemon``'s own ``sp_resolve`` calls refused as no longer
    current (its log says so), once there are at least ``count`` (else 0)."""
    refused = sum(int(n) for n in _IGNORED.findall(daemon.log_text()))
    return refused if refused >= max(count, 1) else 0


async def test_c2_idle_connections_are_probed_after_a_socket_timeout_not_two_hours(
    redis_url: str,
) -> None:
    """Keep-alive settings reach the socket: an idle pooled connection to a vanished host is
    dropped by the kernel after idle + 3 probes, long before the default two hours."""
    redis = RedisSettings(redis_url, socket_timeout=SOCKET_TIMEOUT).connect()
    try:
        await redis.ping()
        connection = await redis.connection_pool.get_connection()
        sock = connection._writer.transport.get_extra_info("socket")  # type: ignore[union-attr]
        probe = {
            option: sock.getsockopt(socket.IPPROTO_TCP, getattr(socket, option))
            for option in ("TCP_KEEPIDLE", "TCP_KEEPINTVL", "TCP_KEEPCNT")
        }
        assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE) == 1
        assert probe == {"TCP_KEEPIDLE": int(SOCKET_TIMEOUT), "TCP_KEEPINTVL": 5, "TCP_KEEPCNT": 3}
        await redis.connection_pool.release(connection)
    finally:
        await redis.aclose()
