"""The ``memory`` scenario of ``scripts/bench`` (measurement only): the bytes Redis keeps per
finished workflow while it is retained.

10,000 workflows of the seed's shape (``bench_submit.seed_spec``: five tasks, its inputs, all
served by the no-op agent), then 10,000 of one task (a tenth each with ``--quick``), each a
fresh spec, run to completion.  Around each batch: ``INFO memory`` ``used_memory``, read once
the resolver has trimmed the task and completion streams as it does in production (below
what every group acknowledged, every ``trim_interval``: the scenario waits for it).  The
events stream keeps its production bound (about 1,000,000 entries, MAXLEN ~), which these
batches stay under, so all their events are still in it.

Nobody follows these workflows, so none has a history stream (a follower's would expire
``WATCH_MS`` after it let go): the scenario checks that none is left before it measures.

Then 10,000 workflows of one declared wait (``wait_for``), which nobody follows: the bytes
each keeps while it waits for its signal (it runs: no fold, no expiry).

Breakdown per workflow: ``MEMORY USAGE`` of a finished workflow's archive, which holds all
of it (its hash is stowed there as it ends, README *History and retention*; the median of a
few), the events stream's growth divided by the batch, and the rest of the growth (the
index, key and expiry bookkeeping, allocator rounding).
"""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import Callable
from typing import Any

from bench import BenchError, Engine, EventWatcher, Options, Result, engine, now_ms
from bench_submit import one_task_spec, seed_spec
from redis.asyncio import Redis

from streamproc.client import Client
from streamproc.config import ClientSettings
from streamproc.store.keys import WATCH_MS, Keyspace

SAMPLED = 9  # workflows whose archive MEMORY USAGE is read
TRIM_WAIT = 60.0
STOW_WAIT_S = 60.0
GRACE_WAIT = WATCH_MS / 1000 + 30.0


def noop_seed_spec(n: int) -> dict[str, Any]:
    spec = seed_spec(n)
    for task in spec["tasks"]:
        task["agent"] = "noop"
    return spec


BATCHES: dict[str, Callable[[int], dict[str, Any]]] = {
    "5 tasks": noop_seed_spec,
    "1 task": one_task_spec,
}


async def used_memory(redis: Redis) -> int:
    return int((await redis.info("memory"))["used_memory"])


async def trimmed(redis: Redis, eng: Engine) -> None:
    """Wait until the resolver's trim left at most one entry in the done and task streams."""
    ks = eng.keyspace
    streams = [ks.done(0), ks.tasks(0, "noop")]
    deadline = time.monotonic() + TRIM_WAIT
    while max([await redis.xlen(s) for s in streams]) > 1:
        eng.check()
        if time.monotonic() > deadline:
            raise BenchError(f"memory: the streams were not trimmed within {TRIM_WAIT:.0f}s")
        await asyncio.sleep(0.5)


async def streams_expired(redis: Redis, eng: Engine, keyspace: Keyspace) -> None:
    """Wait until no history stream is left (SCAN deletes the expired keys it meets, so their
    memory is freed when measured)."""
    pattern = keyspace.history_of(keyspace.workflows(0))
    deadline = time.monotonic() + GRACE_WAIT
    while [key async for key in redis.scan_iter(match=pattern, count=1000)]:
        eng.check()
        if time.monotonic() > deadline:
            raise BenchError(f"memory: history streams still there after {GRACE_WAIT:.0f}s")
        await asyncio.sleep(0.5)


async def run_batch(
    client: Client, watch: Redis, eng: Engine, make: Callable[[int], dict[str, Any]], count: int
) -> list[str]:
    """Submit ``count`` fresh specs (in batches of 100) and wait until all ended."""
    events = eng.keyspace.events(0)
    cursor = (await watch.xinfo_stream(events))["last-generated-id"]
    watcher = EventWatcher(watch, events, cursor, count, eng.check)
    ids: list[str] = []
    for offset in range(0, count, 100):
        ids += await client.submit_many([make(offset + i) for i in range(min(100, count - offset))])
    await watcher.run()
    if watcher.failed:
        raise BenchError(f"memory: {watcher.failed} workflows failed")
    await all_stowed(watch, eng.keyspace, ids)
    return ids


async def all_stowed(redis: Redis, keyspace: Keyspace, ids: list[str]) -> None:
    """Until every one of ``ids`` is stowed (its hash gone): the worker stows a workflow just
    after the call that ended it."""
    keys = [keyspace.workflow(workflow_id) for workflow_id in ids]
    deadline = time.monotonic() + STOW_WAIT_S
    while await redis.exists(*keys):
        if time.monotonic() > deadline:
            raise BenchError(f"memory: finished workflows still hashes after {STOW_WAIT_S}s")
        await asyncio.sleep(0.05)


def waiting_spec(n: int) -> dict[str, Any]:
    return {"tasks": [{"id": "approve", "wait_for": "approval", "timeout": 3600, "input": n}]}


async def waiting_bytes(client: Client, admin: Redis, count: int) -> int:
    """Bytes per running workflow parked on a declared wait that nobody follows: submitted,
    it waits at once (its ``task_awaiting`` is written by the submit itself)."""
    before = await used_memory(admin)
    for offset in range(0, count, 100):
        specs = [waiting_spec(offset + i) for i in range(min(100, count - offset))]
        await client.submit_many(specs)
    return round((await used_memory(admin) - before) / count)


async def usage(redis: Redis, key: str) -> int:
    return int(await redis.memory_usage(key, samples=0) or 0)


async def memory_scenario(opts: Options, admin: Redis) -> Result:
    count = 1_000 if opts.quick else 10_000
    extra: dict[str, Any] = {}
    first = now_ms()
    async with engine(opts, admin, "memory") as eng:
        ks = eng.keyspace
        watch_redis = Redis.from_url(opts.url)
        try:
            async with Client(opts.url, ClientSettings(keyspace=ks)) as client:
                await eng.begin(admin)
                for name, make in BATCHES.items():
                    await trimmed(admin, eng)
                    before, events_before = (
                        await used_memory(admin),
                        await usage(admin, ks.events(0)),
                    )
                    ids = await run_batch(client, watch_redis, eng, make, count)
                    await trimmed(admin, eng)
                    await streams_expired(admin, eng, ks)
                    sample = ids[:: max(1, len(ids) // SAMPLED)][:SAMPLED]
                    after = await used_memory(admin)
                    events_after = await usage(admin, ks.events(0))
                    histories = [await usage(admin, ks.past(wf)) for wf in sample]
                    per = (after - before) / count
                    extra[name] = {
                        "used_memory_before": before,
                        "used_memory_after": after,
                        "bytes_per_workflow": round(per),
                        "archive_bytes": statistics.median(histories),
                        "events_share_bytes": round((events_after - events_before) / count),
                    }
                    parts = extra[name]
                    parts["rest_bytes"] = round(
                        per - parts["archive_bytes"] - parts["events_share_bytes"]
                    )
                waiting = await waiting_bytes(client, admin, count)
            cpu = await eng.end(admin)
        finally:
            await watch_redis.aclose()
    summary = "; ".join(
        f"{name}: {e['bytes_per_workflow']} B/workflow (archive {e['archive_bytes']:.0f}, "
        f"events {e['events_share_bytes']}, rest {e['rest_bytes']})"
        for name, e in extra.items()
    )
    return Result(
        scenario="memory",
        tasks=count * 6,
        workflows=count * 2,
        seconds=(now_ms() - first) / 1000,
        latencies=[],
        latency=f"none; used_memory growth per finished workflow: {summary}; per running "
        f"workflow waiting for a signal: {waiting} B",
        cpu=cpu,
        extra={"memory": extra, "waiting_bytes_per_workflow": waiting},
    )
