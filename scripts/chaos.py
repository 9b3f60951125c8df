"""The fault matrix (/work/shared/FAULTS.md) at size: run it as ``scripts/chaos``; not a test.

Each row gets a private redis-server for the engine (``EmbeddedRedis``, appendonly; B1 with
``appendfsync always``) and another for the effect ledger, a ``streamproc resolver`` and three
``streamproc worker --agent ledger,poison`` processes (visibility timeout 3 s), submits N
random DAGs of 5-10 ledger tasks sleeping 10-100 ms (tests/faults/workload.py), injects its
fault while they run, and checks the result with the fault tests' oracle
(tests/faults/oracle.py): lost (I1), duplicate effects and zombie writes accepted (I2),
duplicate executions (allowed, counted), dead letters complete / total (I3).  Recovery is,
per injected fault, the seconds from the fault to the moment it stopped mattering:

A1  worker SIGKILLed every 3 s (then restarted): kill -> its pending entries all taken over
A2  workers armed with the failpoint worker.after_xadd_before_xack for the first 5 s, each
    restarted as it dies: death -> its pending entries all taken over
A5  a worker SIGSTOPped for 2 x VT, then SIGCONT: stop -> its pending entries taken over
A6  one workflow in ten has a poison task: submit -> its dead letter (time to DLQ)
A7  a worker with a full batch SIGTERMed, then restarted: SIGTERM -> exit (shutdown s)
B1  redis-server SIGKILLed under load, restarted on its dir: restart -> first completion
C5  redis-server SHUTDOWN, down 5 s, restarted: restart -> first completion
D3  pending entries XDELed from under their worker: XDEL -> none of them pending (finished
    by their worker, or dead-lettered "payload trimmed before ack" by a sweep)
E1  completions re-XADDed 2-5 times, plus one for an unknown workflow: none (0)

``--rows A1,A5`` picks rows, ``--n`` sets N (default 200), ``--json`` prints one object per
row.  A row gets at most a minute to end every workflow; what is still running then is lost.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import signal
import statistics
import sys
import time
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import orjson
from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from faults import oracle  # noqa: E402
from faults.workload import Daemon, ledger_dag, resolver, worker  # noqa: E402

from streamproc import Client, ClientSettings, Keyspace  # noqa: E402
from streamproc.codec import Entry  # noqa: E402
from streamproc.embedded import EmbeddedRedis  # noqa: E402

ROW_SECONDS = 60.0
VT = 3.0
AGENTS = "ledger,poison"


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

    def start_worker(self, failpoint: str = "") -> Daemon:
        daemon = worker(
            self.engine.url,
            self.keyspace.namespace,
            AGENTS,
            "--concurrency",
            "32",
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


def workload(n: int, poison_every: int = 0) -> list[dict[str, Any]]:
    rng = random.Random(n)
    specs = [ledger_dag(rng, rng.randint(5, 10), 0.01, 0.1) for _ in range(n)]
    if poison_every:
        for spec in specs[::poison_every]:
            spec["tasks"].append({"id": "poison", "agent": "poison", "retries": 1})
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
    for _ in range(100):
        for daemon in run.workers:
            if await pending_of(run, daemon):
                return daemon
        await asyncio.sleep(0.05)
    return run.workers[0]


# -- rows ------------------------------------------------------------------------------------


async def row_a1(run: Run, end: asyncio.Event) -> None:
    watchers: list[asyncio.Task[None]] = []
    while not end.is_set():
        await asyncio.sleep(3)
        victim = await busy(run)
        victim.signal(signal.SIGKILL)
        run.retire(victim)
        watchers.append(asyncio.create_task(taken_over(run, victim, time.monotonic())))
        run.start_worker()
    await asyncio.gather(*watchers)


async def row_a2(run: Run, end: asyncio.Event) -> None:
    for daemon in list(run.workers):
        daemon.kill()
        run.retire(daemon)
    for _ in range(3):
        run.start_worker("worker.after_xadd_before_xack")
    armed_until = time.monotonic() + 5
    watchers: list[asyncio.Task[None]] = []
    while not end.is_set() and len(run.workers) + len(watchers) < 100:
        for daemon in list(run.workers):
            if not daemon.alive:
                run.retire(daemon)
                watchers.append(asyncio.create_task(taken_over(run, daemon, time.monotonic())))
                run.start_worker(
                    "worker.after_xadd_before_xack" if time.monotonic() < armed_until else ""
                )
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


ROWS: dict[str, Callable[[Run, asyncio.Event], Coroutine[Any, Any, None]]] = {
    "A1": row_a1,
    "A2": row_a2,
    "A5": row_a5,
    "A6": row_a6,
    "A7": row_a7,
    "B1": row_b1,
    "C5": row_c5,
    "D3": row_d3,
    "E1": row_e1,
}


async def run_row(name: str, n: int) -> dict[str, Any]:
    extra = ("--appendfsync", "always") if name == "B1" else ()
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
            run.ids = await client.submit_many(workload(n, 10 if name == "A6" else 0))
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
        if args.json:
            print(orjson.dumps(result).decode(), flush=True)
        else:
            print(f"{name} done", file=sys.stderr, flush=True)
    if not args.json:
        print(table(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
