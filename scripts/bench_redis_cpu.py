"""The ``redis-cpu`` scenario of ``scripts/bench`` (measurement only): redis-server's CPU per
workflow, with nothing else running at the same time.

Each round submits 3,000 fresh specs of one shape (``bench_memory.BATCHES``: the seed's five
tasks and one task, all served by a no-op agent), one ``await client.submit()`` at a time with
no engine running: the submit side.  Then a worker and a resolver start in this process and
run them all to the end: the run side (completions, publishing, the history, the end).
Redis's CPU is its main thread's user and system time (``INFO cpu``) over each side, divided
by the workflows; the figures are medians of 3 rounds, shapes alternating.  The other
scenarios give Redis CPU per workflow under load (``redis µs/wf``), where the worker's
batching and the machine's other work move it; this one changes only with the engine's code.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import Callable
from typing import Any

from bench import BenchError, Result
from bench_memory import BATCHES
from redis.asyncio import Redis

from streamproc import Task
from streamproc.client import Client
from streamproc.config import ClientSettings, RedisSettings
from streamproc.engine.inprocess import running_engine
from streamproc.store.fields import UsageField
from streamproc.store.keys import Keyspace

ROUNDS = 3


async def noop(task: Task) -> None:
    return None


async def redis_cpu_us(admin: Redis) -> float:
    cpu = await admin.info("cpu")
    return 1e6 * (cpu["used_cpu_user_main_thread"] + cpu["used_cpu_sys_main_thread"])


async def all_ended(admin: Redis, keyspace: Keyspace, count: int) -> None:
    """Until none of them runs: the shard's usage counts the running workflows naming an
    agent (one HGET every 20 ms, next to nothing beside the run's own work)."""
    deadline = time.monotonic() + 120 + count / 50
    while int(await admin.hget(keyspace.usage(0), f"{UsageField.AGENT}noop") or 0) > 0:
        if time.monotonic() > deadline:
            raise BenchError(f"redis-cpu: workflows still running after {deadline:.0f}s")
        await asyncio.sleep(0.02)


async def one_round(
    url: str, admin: Redis, make: Callable[[int], dict[str, Any]], count: int
) -> tuple[float, float]:
    """Redis µs per workflow to submit ``count`` workflows, then to run them."""
    keyspace = Keyspace(f"bench-redis-cpu-{time.time_ns()}")
    async with Client(url, ClientSettings(keyspace=keyspace)) as client:
        specs = [make(n) for n in range(count)]
        before = await redis_cpu_us(admin)
        for spec in specs:
            await client.submit(spec)
        submitted = await redis_cpu_us(admin)
        async with running_engine(RedisSettings.from_url(url), keyspace, {"noop": noop}):
            await all_ended(admin, keyspace, count)
        ran = await redis_cpu_us(admin)  # the engine stopped: its stower is done too
    return (submitted - before) / count, (ran - submitted) / count


async def redis_cpu_scenario(url: str, admin: Redis, quick: bool) -> Result:
    count = 300 if quick else 3_000
    rounds: dict[str, list[tuple[float, float]]] = {}
    wall = time.perf_counter()
    for _ in range(ROUNDS):
        for shape, make in BATCHES.items():
            rounds.setdefault(shape, []).append(await one_round(url, admin, make, count))
    medians = {
        shape: {
            "submit": round(statistics.median(s for s, _ in sides), 1),
            "run": round(statistics.median(r for _, r in sides), 1),
        }
        for shape, sides in rounds.items()
    }
    return Result(
        scenario="redis-cpu",
        tasks=ROUNDS * count * 6,
        workflows=ROUNDS * count * len(BATCHES),
        seconds=time.perf_counter() - wall,
        latencies=[],
        latency=(
            f"none; redis-server CPU per workflow, median of {ROUNDS} rounds of {count}: "
            + ", ".join(
                f"{shape} submit {m['submit']} µs + run {m['run']} µs"
                for shape, m in medians.items()
            )
        ),
        extra={"redis_cpu_us": medians},
    )
