"""The ``chain`` scenario of ``scripts/bench``: the engine's latency per hop, from one step's
end to the next step's start, in 1,000 workflows of 10 no-op steps in a chain, submitted at
100 per second (a tenth with ``--quick``), each a fresh spec.

Every step asks the no-op agent for its start time in microseconds (input ``"stamp"``), so a
hop is timed to the microsecond: the next step's start minus this step's (a no-op step ends
within microseconds of its start).  The events stream gives the same hops in whole ms, two
ways: ``task_done``'s ``at`` (the worker's end time) to the next step's start time (its
``task_started``'s ``at``, or the ``began`` of a ``task_done`` that carries its start), and
the ids of those entries (when Redis recorded each: the ``task_done``, and the
``task_started`` a worker sends with its next flush, or the next ``task_done`` itself).
"""

from __future__ import annotations

import asyncio
import time
from typing import Any, NamedTuple, cast

from bench import (
    BenchError,
    EventWatcher,
    Options,
    Result,
    engine,
    entry_ms,
    now_ms,
    percentile,
)
from redis.asyncio import Redis

from streamproc.client import Client
from streamproc.config import ClientSettings
from streamproc.store import folded
from streamproc.store.entries import EntryField, EventKind
from streamproc.store.fields import TaskField
from streamproc.store.keys import Keyspace

STEPS = 10
RATE = 100  # workflows per second
STEP_IDS = [f"s{i}" for i in range(STEPS)]


def chain_spec(n: int) -> dict[str, Any]:
    """A fresh spec: 10 stamped no-op steps, each needing the one before."""
    tasks: list[dict[str, Any]] = [{"id": STEP_IDS[0], "agent": "noop", "input": "stamp"}]
    tasks += [
        {"id": step, "agent": "noop", "input": "stamp", "needs": [STEP_IDS[i]]}
        for i, step in enumerate(STEP_IDS[1:])
    ]
    return {"name": f"bench-chain-{n}", "tasks": tasks}


async def chain_scenario(opts: Options, admin: Redis) -> Result:
    workflows = 100 if opts.quick else 1_000
    async with engine(opts, admin, "chain") as eng:
        ks = eng.keyspace
        watch_redis = Redis.from_url(opts.url)
        submitted: dict[bytes, float] = {}
        async with Client(opts.url, ClientSettings(keyspace=ks)) as client:
            watcher = EventWatcher(
                watch_redis, ks.events(0), eng.cursor, workflows, eng.check, submitted, ks
            )
            watcher.on_stall = eng.dump_tasks
            await eng.begin(admin)
            first = now_ms()
            start = time.monotonic()
            try:
                for n in range(workflows):
                    delay = start + n / RATE - time.monotonic()
                    if delay > 0:
                        await asyncio.sleep(delay)
                    t = now_ms()
                    submitted[(await client.submit(chain_spec(n))).encode()] = t
                    if n % 100 == 0:
                        eng.check()
                await watcher.run()
            finally:
                await watch_redis.aclose()
            cpu = await eng.end(admin)
        steps = await read_steps(admin, ks, list(submitted))
        by_events = await event_hops(admin, ks.events(0), eng.cursor)
    if watcher.failed:
        raise BenchError(f"chain: {watcher.failed} workflows failed")
    hops_ms = sorted(
        (s.started_us[i + 1] - s.started_us[i]) / 1000 for s in steps for i in range(STEPS - 1)
    )
    last = max(watcher.ended.values())
    parts, p50, p99 = hop_parts(steps), percentile(hops_ms, 0.5), percentile(hops_ms, 0.99)
    how = (
        "per hop: a step's agent start -> the next step's (µs stamps); p50/p99 ms of its parts: "
        f"start -> next published {parts['start_to_publish_p50_ms']}/"
        f"{parts['start_to_publish_p99_ms']}, published -> started "
        f"{parts['publish_to_start_p50_ms']}/{parts['publish_to_start_p99_ms']}; by events' "
        f"at: {by_events['hop_at_p50_ms']}/{by_events['hop_at_p99_ms']}, by their ids: "
        f"{by_events['hop_entry_id_p50_ms']}/{by_events['hop_entry_id_p99_ms']}"
    )
    return Result(
        scenario="chain",
        tasks=workflows * STEPS,
        workflows=workflows,
        seconds=(last - first) / 1000,
        latencies=hops_ms,
        latency=how,
        cpu=cpu,
        extra={
            "offered_per_s": RATE,
            "hops": len(hops_ms),
            "hop_p50_us": _rounded(p50, 1000),
            "hop_p99_us": _rounded(p99, 1000),
            "hop_max_us": _rounded(hops_ms[-1] if hops_ms else None, 1000),
            **parts,
            **by_events,
        },
    )


def _rounded(ms: float | None, scale: int) -> float | None:
    return None if ms is None else round(ms * scale, 1)


class Steps(NamedTuple):
    started_us: list[int]  # each step's agent start, as it stamped it
    published_ms: list[int]  # each step's task entry id: when the engine published it


async def read_steps(redis: Redis, keyspace: Keyspace, ids: list[bytes]) -> list[Steps]:
    """Each workflow's steps' start and publish times, from its hash."""
    fields = [TaskField.RESULT.of(s) for s in STEP_IDS] + [TaskField.ENTRY.of(s) for s in STEP_IDS]
    rows = await folded.hmget_many(redis, keyspace, [(wf.decode(), fields) for wf in ids])
    return [
        Steps([int(v) for v in values[:STEPS]], [entry_ms(v) for v in values[STEPS:]])
        for values in cast(list[list[bytes]], rows)  # every step ran: none is missing
    ]


def hop_parts(steps: list[Steps]) -> dict[str, float | None]:
    """A hop in two parts (ms): the step's start to the next step's publish (the worker
    reports, the resolver applies), and that publish to the next step's start (a worker
    reads the task and starts it)."""
    to_publish = sorted(
        s.published_ms[i + 1] - s.started_us[i] / 1000 for s in steps for i in range(STEPS - 1)
    )
    to_start = sorted(
        s.started_us[i + 1] / 1000 - s.published_ms[i + 1] for s in steps for i in range(STEPS - 1)
    )
    return {
        "start_to_publish_p50_ms": _rounded(percentile(to_publish, 0.5), 1),
        "start_to_publish_p99_ms": _rounded(percentile(to_publish, 0.99), 1),
        "publish_to_start_p50_ms": _rounded(percentile(to_start, 0.5), 1),
        "publish_to_start_p99_ms": _rounded(percentile(to_start, 0.99), 1),
    }


async def event_hops(redis: Redis, events: str, cursor: bytes) -> dict[str, float | None]:
    """Hops from the events stream after ``cursor``: ``at`` fields and entry ids, in ms."""
    done: dict[tuple[bytes, bytes], tuple[int, int]] = {}
    started: dict[tuple[bytes, bytes], tuple[int, int]] = {}
    kinds = {EventKind.TASK_DONE.encode(): done, EventKind.TASK_STARTED.encode(): started}
    while True:
        entries = await redis.xrange(events, min=f"({cursor.decode()}", count=10_000)
        if not entries:
            break
        for entry_id, fields in entries:
            cursor = entry_id
            into = kinds.get(fields.get(EntryField.KIND.key, b""))
            if into is not None:
                key = (fields[EntryField.WF.key], fields[EntryField.TASK.key])
                into[key] = (int(fields[EntryField.AT.key]), entry_ms(entry_id))
                if (began := fields.get(EntryField.BEGAN.key)) is not None:
                    started[key] = (int(began), entry_ms(entry_id))
    by_at: list[float] = []
    by_id: list[float] = []
    for (wf, task), (done_at, done_id) in done.items():
        step = int(task[1:])
        nxt = started.get((wf, f"s{step + 1}".encode()))
        if nxt is not None:
            by_at.append(nxt[0] - done_at)
            by_id.append(nxt[1] - done_id)
    by_at.sort()
    by_id.sort()
    return {
        "hop_at_p50_ms": percentile(by_at, 0.5),
        "hop_at_p99_ms": percentile(by_at, 0.99),
        "hop_entry_id_p50_ms": percentile(by_id, 0.5),
        "hop_entry_id_p99_ms": percentile(by_id, 0.99),
    }
