"""The fault matrix (README, Reliability) at size: run it as ``scripts/chaos``; not a test.

Each row gets a private redis-server for the engine (``EmbeddedRedis``, appendonly; B1 with
``appendfsync always``) and another for the effect ledger, a ``streamproc resolver`` and three
``streamproc worker --agent ledger,poison`` processes (visibility timeout 3 s), submits N
random DAGs of 5-10 ledger tasks sleeping 10-100 ms (tests/faults/workload.py), injects its
fault while they run, and checks the result with the fault tests' oracle
(tests/faults/oracle.py): lost (I1), duplicate effects and zombie writes accepted (I2),
duplicate executions (allowed, counted), dead letters complete / total (I3).  Recovery is,
per injected fault, the seconds from the fault to the moment it stopped mattering:

A1  a worker holding tasks SIGKILLed at once, then every 3 s (each restarted): kill -> its
    pending entries all taken over; figures: the kills
A2  workers reporting to the resolver (--via-resolver: the window exists only for them) armed
    with the failpoint worker.after_xadd_before_xack for the first 5 s, each restarted as it
    dies: death -> its pending entries all taken over
A5  a worker SIGSTOPped for 2 x VT, then SIGCONT: stop -> its pending entries taken over
A6  one workflow in ten has a poison task: submit -> its dead letter (time to DLQ)
A7  a worker with a full batch SIGTERMed, then restarted: SIGTERM -> exit (shutdown s)
B1  redis-server SIGKILLed under load, restarted on its dir: restart -> first completion
B6  daemons moved behind the fault proxy, a replica attached over a 10 ms link; four producers
    submit for 3 s, then the primary's host dies (SIGKILL, what the link held dropped), the
    replica is promoted and the proxy repointed to it; the old primary's server rejoins as its
    replica and the same is done back, producers now with WAIT 1 100: kill -> the first answer
    from the new primary; figures: acked and acked-but-lost, without (w0) and with WAIT (w1)
C1  a fourth worker, in a network namespace, is cut off (its veth link down) for 2 x VT while
    holding tasks: heal -> its first write (reconnect s); figures: its late (superseded)
    completions, all refused (zombie accepted 0)
C2  a fourth worker, through the fault proxy with a 4 s socket timeout, is blackholed (no
    RST) for 6 s while holding tasks: heal -> its first write (resume s); figures: the
    longest any call waited for a reply (max blocked s), calls given up by the timeout
C3  daemons moved behind the fault proxy, then N more workflows while it resets every
    connection, or cuts each after 100-4000 bytes, every half second; figures: connections
    reset, tasks taken over as lost deliveries (0: a reset reply is read again at once)
C4  after the first batch, N more direct, then N more behind the fault proxy (20 +- 10 ms
    each way per chunk, 256 KiB/s); figures: throughput ratio (slowed / direct), false
    reclaims (tasks taken over as lost with no process dead)
C5  redis-server SHUTDOWN, down 5 s, restarted: restart -> first completion
D3  pending entries XDELed from under their worker: XDEL -> none of them pending (finished
    by their worker, or dead-lettered "payload trimmed before ack" by a sweep)
E1  completions re-XADDed 2-5 times, plus one for an unknown workflow: none (0)
E10 one workflow in five has an approval gate (a declared wait after t0): half the gates
    are signalled, redis-server is SIGKILLed (``appendfsync always``) and restarted, then
    every gate is signalled again with the same signal ids: restart -> first completion;
    figures: signals applied or kept before the kill, resent ones applied again (0)
G1  beside the ledger load, two ``execution`` workers search at 10/s for 30 s while the fake
    provider A answers 429 + Retry-After 5 s (fallback B answers): first 429 -> A's shared
    breaker open; figures: calls to A after it opened (and how many Retry-Afters that was),
    searches answered by each provider, failed, task retries spent
G4  four ``execution`` workers get searches at twice A's shared rate (20/s) for 40 s; the
    fake counts arrivals: its busiest second against the limit, and its own 429s
G5  G1's storm with a shared rate of 5/s on A; the execution workers are SIGKILLed and
    restarted, then redis-server SHUTDOWN and restarted: A's busiest second after each
    restart against rate + burst, and its calls after them (one probe per Retry-After)

Figures of a row's own (the A1, B6, C and G rows') fill the last column, ``figures``.

``--rows A1,A5`` picks rows, ``--n`` sets N (default 200), ``--json`` prints one object per
row; each row's object is also written to ``results/<row>.json``.  A row gets at most a
minute to end every workflow; what is still running then is lost.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import random
import signal
import statistics
import sys
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import orjson
from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError

from streamproc import Client, ClientSettings, Keyspace
from streamproc.store.codec import Entry
from streamproc.testing.embedded import EmbeddedRedis
from streamproc.testing.fakes import Behaviour
from tests.daemon import Daemon
from tests.faults import oracle
from tests.faults.netns import NetNamespace
from tests.faults.netns import unavailable as netns_unavailable
from tests.faults.replication import (
    Tally,
    answered_after_move,
    in_sync,
    present,
    produce,
    replica_of,
)
from tests.faults.search import (
    TimedLimitedSerpApi,
    TimedSerpApi,
    busiest_second,
    fakes_with,
    provider_env,
    searches,
)
from tests.faults.tcpproxy import FaultProxy
from tests.faults.workload import ledger_dag, resolver, worker

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "results"
ROW_SECONDS = 60.0
VT = 3.0
AGENTS = "ledger,poison"
G_RETRY_AFTER = 5.0  # what the G rows' provider A asks in its 429s
G4_RATE = 20  # A's shared rate in G4 (calls/s), and the fake's own
G5_RATE = 5
GATED_EVERY = 5  # E10: one workflow in this many waits for an approval


@dataclass
class Run:
    """One row's live setup: servers, daemons, client and the recovery times measured."""

    engine: EmbeddedRedis
    ledger: Redis
    client: Client
    keyspace: Keyspace
    ledger_url: str
    resolver: Daemon | None = None
    workers: list[Daemon] = field(default_factory=list)
    retired: list[Daemon] = field(default_factory=list)
    recovery: list[float] = field(default_factory=list)
    ids: list[str] = field(default_factory=list)
    figures: dict[str, Any] = field(default_factory=dict)  # a row's own, by name

    def start_worker(self, failpoint: str = "", *extra: str) -> Daemon:
        daemon = worker(
            self.engine.url,
            self.keyspace.namespace,
            AGENTS,
            "--concurrency",
            "32",
            *extra,
            failpoint=failpoint,
            ledger_url=self.ledger_url,
        )
        self.workers.append(daemon)
        return daemon

    def retire(self, daemon: Daemon) -> None:
        self.workers.remove(daemon)
        self.retired.append(daemon)

    def stop_all(self) -> None:
        for daemon in [*self.workers, *self.retired, *([self.resolver] if self.resolver else [])]:
            daemon.kill()


def workload(n: int, poison_every: int = 0, gated_every: int = 0) -> list[dict[str, Any]]:
    rng = random.Random(n)
    specs = [ledger_dag(rng, rng.randint(5, 10), 0.01, 0.1) for _ in range(n)]
    if poison_every:
        for spec in specs[::poison_every]:
            spec["tasks"].append({"id": "poison", "agent": "poison", "retries": 1})
    if gated_every:
        gate = {"id": "gate", "wait_for": "approval", "needs": ["t0"], "timeout": ROW_SECONDS}
        for spec in specs[::gated_every]:
            spec["tasks"].append(gate)
    return specs


async def pending_of(run: Run, daemon: Daemon) -> int:
    """Entries the daemon's consumer still holds in the ledger stream."""
    try:
        summary = await run.client.redis.xpending(run.keyspace.tasks(0, "ledger"), "ledger")
    except (ResponseError, RedisConnectionError):  # no group yet, or Redis is down (B1, C5)
        return 0
    tag = f"-{daemon.process.pid}-".encode()
    return sum(int(c["pending"]) for c in summary["consumers"] or [] if tag in c["name"])


async def until(check: Callable[[], Awaitable[bool]], limit: float = ROW_SECONDS) -> float:
    """Seconds until ``check()`` holds (or ``limit``)."""
    began = time.monotonic()
    while time.monotonic() - began < limit:
        if await check():
            break
        await asyncio.sleep(0.05)
    return time.monotonic() - began


async def taken_over(run: Run, daemon: Daemon, since: float) -> None:
    async def released() -> bool:
        return await pending_of(run, daemon) == 0

    await until(released)
    run.recovery.append(time.monotonic() - since)


async def first_completion(run: Run, since: float) -> None:
    before = await completions(run)

    async def moved() -> bool:
        try:
            return await completions(run) > before
        except (OSError, RedisConnectionError):
            return False

    await until(moved)
    run.recovery.append(time.monotonic() - since)


async def completions(run: Run) -> int:
    info = await run.client.redis.xinfo_stream(run.keyspace.events(0))
    return int(info["entries-added"])


async def busy(run: Run) -> Daemon:
    """A worker holding entries (the first one, if none does yet)."""
    return await busy_or_none(run) or run.workers[0]


async def busy_or_none(run: Run) -> Daemon | None:
    """A worker holding entries, waiting up to 5 s for one; None when none does."""
    for _ in range(100):
        for daemon in run.workers:
            if await pending_of(run, daemon):
                return daemon
        await asyncio.sleep(0.05)
    return None


# -- rows ------------------------------------------------------------------------------------


async def row_a1(run: Run, end: asyncio.Event) -> None:
    """A worker holding tasks killed at once, then one every 3 s while the workload runs
    (it may all end within the first 3 s); figures: the kills."""
    watchers: list[asyncio.Task[None]] = []
    while not end.is_set() and (victim := await busy_or_none(run)) is not None:
        victim.signal(signal.SIGKILL)
        run.retire(victim)
        watchers.append(asyncio.create_task(taken_over(run, victim, time.monotonic())))
        run.start_worker()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(end.wait(), 3)
    run.figures["kills"] = len(watchers)
    await asyncio.gather(*watchers)


async def row_a2(run: Run, end: asyncio.Event) -> None:
    for daemon in list(run.workers):
        daemon.kill()
        run.retire(daemon)
    for _ in range(3):
        run.start_worker("worker.after_xadd_before_xack", "--via-resolver")
    armed_until = time.monotonic() + 5
    watchers: list[asyncio.Task[None]] = []
    while not end.is_set() and len(run.workers) + len(watchers) < 100:
        for daemon in list(run.workers):
            if not daemon.alive:
                run.retire(daemon)
                watchers.append(asyncio.create_task(taken_over(run, daemon, time.monotonic())))
                armed = time.monotonic() < armed_until
                run.start_worker("worker.after_xadd_before_xack" if armed else "", "--via-resolver")
        await asyncio.sleep(0.05)
    await asyncio.gather(*watchers)


async def row_a5(run: Run, end: asyncio.Event) -> None:
    zombie = await busy(run)
    zombie.signal(signal.SIGSTOP)
    stopped = time.monotonic()
    watcher = asyncio.create_task(taken_over(run, zombie, stopped))
    await asyncio.sleep(2 * VT)
    zombie.signal(signal.SIGCONT)
    await watcher


async def row_a6(run: Run, end: asyncio.Event) -> None:
    poisoned = len(run.ids[::10])

    async def all_dead() -> bool:
        return await run.client.redis.xlen(run.keyspace.dead(0, "poison")) >= poisoned

    run.recovery.append(await until(all_dead))  # from just after the submit


async def row_a7(run: Run, end: asyncio.Event) -> None:
    victim = await busy(run)
    victim.signal(signal.SIGTERM)
    began = time.monotonic()
    await asyncio.to_thread(victim.process.wait, 60)
    run.recovery.append(time.monotonic() - began)
    run.retire(victim)
    run.start_worker()


async def row_b1(run: Run, end: asyncio.Event) -> None:
    await busy(run)
    run.engine.kill()
    await asyncio.sleep(0.5)
    run.engine.start()
    await first_completion(run, time.monotonic())


async def row_c5(run: Run, end: asyncio.Event) -> None:
    await busy(run)
    await run.client.redis.shutdown()
    await asyncio.to_thread(run.engine.process.wait, 10)  # type: ignore[union-attr]
    await asyncio.sleep(5)
    run.engine.start()
    await first_completion(run, time.monotonic())


async def row_d3(run: Run, end: asyncio.Event) -> None:
    await busy(run)
    stream = run.keyspace.tasks(0, "ledger")
    pending = await run.client.redis.xpending_range(stream, "ledger", "-", "+", 5)
    ids = [p["message_id"] for p in pending]
    await run.client.redis.xdel(stream, *ids)

    async def settled() -> bool:
        """Each deleted entry was either finished by its worker or dead-lettered."""
        left = await run.client.redis.xpending_range(stream, "ledger", "-", "+", 10_000)
        return not {p["message_id"] for p in left} & set(ids)

    run.recovery.append(await until(settled))


async def row_e1(run: Run, end: asyncio.Event) -> None:
    done = run.keyspace.done(0)
    rng = random.Random(1)
    while not end.is_set():
        for _, fields in cast(list[Entry], await run.client.redis.xrevrange(done, count=5)):
            for _ in range(rng.randint(1, 4)):
                await run.client.redis.xadd(done, fields)  # type: ignore[arg-type]
            ghost = {**fields, b"wf": b"no-such-workflow"}
            await run.client.redis.xadd(done, ghost)  # type: ignore[arg-type]
        await asyncio.sleep(0.2)


async def approve(run: Run, workflow_id: str) -> str:
    """Signal a gated workflow's approval, as often as Redis is unreachable; the outcome."""
    for _ in range(200):
        try:
            signal_id = f"gate-{workflow_id}"
            sent = await run.client.signal(workflow_id, "approval", "ok", signal_id=signal_id)
        except (OSError, RedisConnectionError):
            await asyncio.sleep(0.05)
        else:
            return sent.outcome
    return "unsent"


async def row_e10(run: Run, end: asyncio.Event) -> None:
    gated = run.ids[::GATED_EVERY]
    before = Counter([await approve(run, workflow_id) for workflow_id in gated[::2]])
    run.engine.kill()
    await asyncio.sleep(0.5)
    run.engine.start()
    watcher = asyncio.create_task(first_completion(run, time.monotonic()))
    again = Counter([await approve(run, workflow_id) for workflow_id in gated])
    await watcher
    run.figures["applied before"] = before["applied"]
    run.figures["kept before"] = before["kept"]
    run.figures["resent applied again"] = len(gated[::2]) - again["duplicate"]


# -- search rows: provider fakes in this process, execution workers beside the ledger ones --


def search_worker(run: Run, env: dict[str, str]) -> Daemon:
    """A worker of the execution agent whose search chain is the fakes ``env`` names."""
    setting = tuple(f"{name}={value}" for name, value in env.items())
    daemon = worker(
        run.engine.url,
        run.keyspace.namespace,
        "execution",
        "--concurrency",
        "32",
        prefix=("env", *setting),
        ledger_url=run.ledger_url,
    )
    run.workers.append(daemon)
    return daemon


async def search_pool(run: Run, env: dict[str, str], size: int) -> list[Daemon]:
    pool = [search_worker(run, env) for _ in range(size)]

    async def ready() -> bool:
        return all(daemon.ready for daemon in pool)

    await until(ready)
    return pool


async def submit_searches(run: Run, per_second: int, seconds: float, label: str) -> list[str]:
    """One-task search workflows at ``per_second`` for ``seconds``, each its own query; a
    batch Redis refuses (restarting, in G5) is dropped, as a client would see an error."""
    ids: list[str] = []
    began = time.monotonic()
    while time.monotonic() - began < seconds:
        batch = searches(max(1, per_second // 10), f"{label} {len(ids)}")
        with contextlib.suppress(RedisConnectionError):
            ids += await run.client.submit_many(batch)
        await asyncio.sleep(0.1)
    run.ids += ids
    return ids


async def search_outcomes(run: Run, ids: list[str]) -> dict[str, Any]:
    """Figures every search row reports: how its workflows ended and who answered."""
    await oracle.wait_ended(run.client, ids, ROW_SECONDS / 3)
    states = [await run.client.get(workflow_id) for workflow_id in ids]
    answered = Counter(s.results["search"]["provider"] for s in states if s.status == "completed")
    return {
        "searches": len(ids),
        "failed": sum(s.status != "completed" for s in states),
        "retries_spent": sum(t.attempt - 1 for s in states for t in s.tasks),
        **{f"by_{name}": count for name, count in sorted(answered.items())},
    }


async def breaker_opened(run: Run) -> bool:
    breaker = run.keyspace.api_limits("serpapi", "none")[3]
    return bool(await run.client.redis.hexists(breaker, "open_until"))


async def row_g1(run: Run, end: asyncio.Event) -> None:
    storm = TimedSerpApi(retry_after=G_RETRY_AFTER)
    storm.behaviour = Behaviour.RATE_LIMITED
    async with fakes_with(storm) as fakes:
        await search_pool(run, provider_env(fakes, "serpapi", "brave"), 2)
        submitting = asyncio.create_task(submit_searches(run, 10, 30, "g1"))
        await until(lambda: breaker_opened(run))
        opened = time.monotonic()
        ids = await submitting
        run.figures.update(await search_outcomes(run, ids))
    run.figures["a_calls"] = len(storm.arrivals)
    run.figures["a_calls_after_open"] = len(storm.since(opened))
    run.figures["retry_afters_after_open"] = round((time.monotonic() - opened) / G_RETRY_AFTER, 1)
    run.recovery.append(opened - storm.arrivals[0])  # first 429 -> breaker open


async def row_g4(run: Run, end: asyncio.Event) -> None:
    limited = TimedLimitedSerpApi(rate=G4_RATE, base_latency=0.02, per_in_flight=0.0)
    async with fakes_with(limited) as fakes:
        env = provider_env(fakes, "serpapi", "brave", STREAMPROC_SERPAPI_RATE=str(G4_RATE))
        await search_pool(run, env, 4)
        ids = await submit_searches(run, 2 * G4_RATE, 40, "g4")
        run.figures.update(await search_outcomes(run, ids))
    busiest = busiest_second(limited.arrivals)
    run.figures |= {"limit_per_s": G4_RATE, "max_per_s": busiest, "a_429s": limited.rejected}
    run.figures["max_over_limit"] = round(busiest / G4_RATE, 2)


async def row_g5(run: Run, end: asyncio.Event) -> None:
    storm = TimedSerpApi(retry_after=G_RETRY_AFTER)
    storm.behaviour = Behaviour.RATE_LIMITED
    async with fakes_with(storm) as fakes:
        env = provider_env(fakes, "serpapi", "brave", STREAMPROC_SERPAPI_RATE=str(G5_RATE))
        pool = await search_pool(run, env, 2)
        submitting = asyncio.create_task(submit_searches(run, 10, 30, "g5"))
        await until(lambda: breaker_opened(run))
        for daemon in pool:
            daemon.signal(signal.SIGKILL)
            run.retire(daemon)
        workers_restarted = time.monotonic()
        await search_pool(run, env, 2)
        await asyncio.sleep(5)  # the storm goes on with the new workers
        await run.client.redis.shutdown()
        await asyncio.to_thread(run.engine.process.wait, 10)  # type: ignore[union-attr]
        run.engine.start()
        redis_restarted = time.monotonic()
        ids = await submitting
        run.figures.update(await search_outcomes(run, ids))
    run.figures["limit_per_s"] = G5_RATE + 1  # rate plus the one-call burst
    for name, back in (("workers", workers_restarted), ("redis", redis_restarted)):
        run.figures[f"busiest_s_after_{name}"] = busiest_second(storm.since(back))
    run.figures["a_calls_after_restarts"] = len(storm.since(workers_restarted))


# -- network rows: the faulted daemons reach Redis over a namespace's veth pair or through
# the fault proxy; the client and the oracle talk to Redis directly ---------------------------

C2_SOCKET_TIMEOUT = 4.0  # the blackholed worker's, so that the blackhole outlasts it
OBSERVER = "chaos-observer"


def start_worker_at(run: Run, url: str, *extra: str, **kw: Any) -> Daemon:
    """A worker like ``Run.start_worker``'s that reaches Redis at ``url``."""
    kw.setdefault("ledger_url", run.ledger_url)
    daemon = worker(url, run.keyspace.namespace, AGENTS, "--concurrency", "32", *extra, **kw)
    run.workers.append(daemon)
    return daemon


async def move_behind(run: Run, url: str) -> None:
    """Replace the resolver and the workers with ones reaching Redis at ``url``; the old ones
    stop gracefully (handing back what they hold) once the new ones serve."""
    old = [*run.workers, *([run.resolver] if run.resolver else [])]
    run.resolver = resolver(url, run.keyspace.namespace, ledger_url=run.ledger_url)
    new = [run.resolver, *(start_worker_at(run, url) for _ in range(3))]

    async def serving() -> bool:
        return all(d.ready for d in new)

    await until(serving)
    for daemon in old:
        daemon.signal(signal.SIGTERM)
    for daemon in old:
        await asyncio.to_thread(daemon.process.wait, 30)
        if daemon in run.workers:
            run.retire(daemon)
        else:
            run.retired.append(daemon)


async def holding(run: Run, daemon: Daemon) -> None:
    async def holds() -> bool:
        return await pending_of(run, daemon) > 0

    await until(holds, 20)


async def observe_done(run: Run) -> None:
    """A consumer group that never reads: the resolver trims only what every group has read,
    so the done stream keeps each completion written from now on (late ones included)."""
    await run.client.redis.xgroup_create(run.keyspace.done(0), OBSERVER, id="$", mkstream=True)


async def writes_by(run: Run, daemon: Daemon, since_ms: int = 0) -> list[dict[bytes, bytes]]:
    """Completions ``daemon`` wrote to the done stream from ``since_ms`` (Redis time) on."""
    tag = f"-{daemon.process.pid}-".encode()
    entries = cast(list[Entry], await run.client.redis.xrange(run.keyspace.done(0), since_ms))
    return [fields for _, fields in entries if tag in fields.get(b"by", b"")]


async def first_write_after(run: Run, daemon: Daemon) -> None:
    """Record the seconds from now until ``daemon`` writes a completion (reconnected)."""
    seconds, micros = await run.client.redis.time()
    now_ms = seconds * 1000 + micros // 1000

    async def wrote() -> bool:
        return bool(await writes_by(run, daemon, now_ms))

    run.recovery.append(await until(wrote))


async def stale_writes(run: Run, daemon: Daemon) -> int:
    """How many of ``daemon``'s completions were for an attempt already superseded."""
    stale = 0
    for fields in await writes_by(run, daemon):
        state = await run.client.get(fields[b"wf"].decode())
        attempts = {t.id: t.attempt for t in state.tasks}
        stale += attempts[fields[b"task"].decode()] != int(fields[b"att"])
    return stale


async def lost_deliveries(run: Run, ids: list[str]) -> int:
    """Tasks of ``ids`` taken over at least once as lost (no process died in C3 and C4)."""
    states = [await run.client.get(workflow_id) for workflow_id in ids]
    return sum(t.lost > 0 for s in states for t in s.tasks)


async def batch_seconds(run: Run, n: int) -> tuple[float, list[str]]:
    """Submit ``n`` more workflows; the seconds until they all ended, and their ids."""
    began = time.monotonic()
    ids = await run.client.submit_many(workload(n))
    run.ids += ids
    await oracle.wait_ended(run.client, ids, ROW_SECONDS)
    return time.monotonic() - began, ids


async def row_c1(run: Run, end: asyncio.Event) -> None:
    reason = netns_unavailable()
    if reason is not None:
        run.figures["skipped"] = reason.replace(" ", "_")
        return
    with NetNamespace() as ns:
        for server in (run.client.redis, run.ledger):
            await server.config_set("bind", f"127.0.0.1 {ns.host_ip}")
            await server.config_set("protected-mode", "no")  # that address is the pair's only
        await observe_done(run)
        ledger_port = int(run.ledger.connection_pool.connection_kwargs["port"])
        cut = start_worker_at(  # its completions go where writes_by reads them
            run,
            ns.url(run.engine.port),
            "--via-resolver",
            ledger_url=ns.url(ledger_port),
            prefix=ns.prefix,
        )
        try:
            await holding(run, cut)
            ns.link(up=False)
            await asyncio.sleep(2 * VT)

            async def taken_over() -> bool:
                return await pending_of(run, cut) == 0

            await until(taken_over, 20)
            ns.link(up=True)
            await first_write_after(run, cut)
            await end.wait()
            run.figures["zombie_writes"] = await stale_writes(run, cut)
        finally:
            cut.kill()


async def row_c2(run: Run, end: asyncio.Event) -> None:
    async with FaultProxy(run.engine.port) as proxy:
        await observe_done(run)
        held = start_worker_at(
            run, proxy.url, "--via-resolver", "--socket-timeout", str(C2_SOCKET_TIMEOUT)
        )
        try:
            await holding(run, held)
            proxy.blackhole()
            await asyncio.sleep(C2_SOCKET_TIMEOUT + 2)
            run.figures["socket_timeout_s"] = C2_SOCKET_TIMEOUT
            run.figures["max_blocked_s"] = round(proxy.longest_wait(), 2)
            run.figures["calls_given_up"] = proxy.gave_up
            proxy.heal()
            await first_write_after(run, held)
            await end.wait()
        finally:
            held.kill()


async def row_c3(run: Run, end: asyncio.Event) -> None:
    rng = random.Random(3)
    async with FaultProxy(run.engine.port) as proxy:
        await move_behind(run, proxy.url)
        more = asyncio.create_task(batch_seconds(run, len(run.ids)))
        bursts = 0
        while not more.done():  # a burst every half second: reset all, or cut mid-stream
            if bursts % 2:
                proxy.reset()
            else:
                proxy.reset_after_bytes = rng.randint(100, 4000)
            bursts += 1
            await asyncio.sleep(0.25)
            proxy.reset_after_bytes = None
            await asyncio.sleep(0.25)
        _, ids = await more
        await end.wait()
        run.figures["connections_reset"] = proxy.resets
        run.figures["lost_deliveries"] = await lost_deliveries(run, ids)


async def row_c4(run: Run, end: asyncio.Event) -> None:
    await end.wait()  # the first batch warmed the direct daemons up
    n = len(run.ids)
    direct_s, _ = await batch_seconds(run, n)
    async with FaultProxy(run.engine.port) as proxy:
        proxy.delay, proxy.jitter, proxy.bandwidth = 0.02, 0.01, 256 * 1024
        await move_behind(run, proxy.url)
        slowed_s, ids = await batch_seconds(run, n)
        run.figures["throughput_ratio"] = round(direct_s / slowed_s, 2)
        run.figures["false_reclaims"] = await lost_deliveries(run, ids)


# -- B6: failover to a replica; the address the daemons and producers know is the fault proxy

B6_LINK_DELAY = 0.01  # the replication link's, one way
B6_SECONDS = 3.0  # of submissions before each failover


async def row_b6(run: Run, end: asyncio.Event) -> None:
    await run.client.redis.config_set("repl-diskless-sync-delay", 0)
    async with FaultProxy(run.engine.port) as front, FaultProxy(run.engine.port) as link:
        await move_behind(run, front.url)
        link.delay = B6_LINK_DELAY
        with replica_of(link.port) as replica:
            await fail_over(run, front, run.engine, replica, link, replicas=0)
            async with FaultProxy(replica.port) as back:
                back.delay = B6_LINK_DELAY
                rejoin = ("--replicaof", "127.0.0.1", str(back.port), "--appendonly", "no")
                run.engine.extra = rejoin
                run.engine.start()
                await fail_over(run, front, replica, run.engine, back, replicas=1)
                await oracle.wait_ended(run.client, run.ids, ROW_SECONDS)
                await end.wait()


async def fail_over(
    run: Run,
    front: FaultProxy,
    old: EmbeddedRedis,
    new: EmbeddedRedis,
    link: FaultProxy,
    replicas: int,
) -> None:
    """Submit through ``front`` (each followed by WAIT for ``replicas``) while ``old``'s host
    dies: the server SIGKILLed and what its replication ``link`` held dropped; ``new`` is
    promoted and ``front`` repointed to it.  Its workflows join ``run.ids``."""
    async with Redis.from_url(old.url) as primary, Redis.from_url(new.url) as promoted:
        await until(lambda: in_sync(primary))
        settings = ClientSettings(keyspace=run.keyspace, replicas=replicas)
        async with Client(front.url, settings) as client:
            tally, stop = Tally(), asyncio.Event()
            producers = [asyncio.create_task(produce(client, tally, stop)) for _ in range(4)]
            await asyncio.sleep(B6_SECONDS)
            old.kill()
            link.reset()
            killed = time.monotonic()
            await promoted.replicaof("NO", "ONE")
            await promoted.config_set("repl-diskless-sync-delay", 0)
            front.repoint(new.port)
            tally.moved = True
            await until(lambda: answered_after_move(tally))
            run.recovery.append(time.monotonic() - killed)
            stop.set()
            await asyncio.gather(*producers)
        kept = await present(promoted, run.keyspace, tally.attempted)
    run.ids += kept
    run.figures[f"acked_w{replicas}"] = len(tally.acked)
    run.figures[f"acked_lost_w{replicas}"] = len(set(tally.acked) - set(kept))


ROWS: dict[str, Callable[[Run, asyncio.Event], Coroutine[Any, Any, None]]] = {
    "A1": row_a1,
    "A2": row_a2,
    "A5": row_a5,
    "A6": row_a6,
    "A7": row_a7,
    "B1": row_b1,
    "B6": row_b6,
    "C1": row_c1,
    "C2": row_c2,
    "C3": row_c3,
    "C4": row_c4,
    "C5": row_c5,
    "D3": row_d3,
    "E1": row_e1,
    "E10": row_e10,
    "G1": row_g1,
    "G4": row_g4,
    "G5": row_g5,
}


async def run_row(name: str, n: int) -> dict[str, Any]:
    extra = ("--appendfsync", "always") if name in ("B1", "E10") else ()
    with EmbeddedRedis(None, None, *extra) as engine, EmbeddedRedis() as ledger_server:
        keyspace = Keyspace(namespace=f"chaos{name.lower()}")
        ledger = Redis.from_url(ledger_server.url)
        client = await Client(engine.url, ClientSettings(keyspace=keyspace)).__aenter__()
        run = Run(engine, ledger, client, keyspace, ledger_server.url)
        try:
            run.resolver = resolver(engine.url, keyspace.namespace, ledger_url=ledger_server.url)
            for _ in range(3):
                run.start_worker()
            began = time.monotonic()
            run.ids = await client.submit_many(
                workload(n, 10 if name == "A6" else 0, GATED_EVERY if name == "E10" else 0)
            )
            end = asyncio.Event()
            fault = asyncio.create_task(ROWS[name](run, end))
            await oracle.wait_ended(client, run.ids, ROW_SECONDS)
            end.set()
            await asyncio.wait_for(fault, ROW_SECONDS)
            left = max(1.0, ROW_SECONDS - (time.monotonic() - began))
            verdict = await oracle.check(
                client, ledger, run.ids, timeout=left, agents=["ledger", "poison"]
            )
        finally:
            run.stop_all()
            await client.close()
            await ledger.aclose()
    times = sorted(run.recovery)
    return {
        "row": name,
        "n": n,
        "lost": len(verdict.lost),
        "dup_effects": len(verdict.dup_effects),
        "dup_exec": verdict.dup_exec,
        "zombie_accepted": len(verdict.zombie_accepted),
        "dlq_complete": f"{verdict.dlq_complete}/{verdict.dlq_total}",
        "recovery_p50_s": round(statistics.median(times), 2) if times else None,
        "recovery_p99_s": round(times[min(len(times) - 1, int(len(times) * 0.99))], 2)
        if times
        else None,
        "figures": " ".join(f"{k}={v}" for k, v in run.figures.items()) or None,
    }


COLUMNS = [
    ("row", "row"),
    ("N", "n"),
    ("lost", "lost"),
    ("dup effects", "dup_effects"),
    ("dup exec", "dup_exec"),
    ("zombie accepted", "zombie_accepted"),
    ("DLQ complete", "dlq_complete"),
    ("recovery p50 s", "recovery_p50_s"),
    ("recovery p99 s", "recovery_p99_s"),
    ("figures", "figures"),
]


def table(results: list[dict[str, Any]]) -> str:
    cells = [[h for h, _ in COLUMNS]]
    cells += [["-" if r[k] is None else str(r[k]) for _, k in COLUMNS] for r in results]
    widths = [max(len(row[i]) for row in cells) for i in range(len(COLUMNS))]
    lines = ["  ".join(c.rjust(w) for c, w in zip(row, widths, strict=True)) for row in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=200, help="workflows per row (default 200)")
    parser.add_argument("--rows", default=",".join(ROWS), help="comma-separated row ids")
    parser.add_argument("--json", action="store_true", help="one JSON object per row")
    args = parser.parse_args()
    rows = [r.strip().upper() for r in args.rows.split(",") if r.strip()]
    unknown = [r for r in rows if r not in ROWS]
    if unknown:
        parser.error(f"unknown rows {', '.join(unknown)} (known: {', '.join(ROWS)})")
    os.environ.pop("STREAMPROC_FAILPOINT", None)
    results = []
    for name in rows:
        result = asyncio.run(run_row(name, args.n))
        results.append(result)
        RESULTS.mkdir(exist_ok=True)
        (RESULTS / f"{name}.json").write_bytes(orjson.dumps(result))
        if args.json:
            print(orjson.dumps(result).decode(), flush=True)
        else:
            print(f"{name} done", file=sys.stderr, flush=True)
    if not args.json:
        print(table(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
