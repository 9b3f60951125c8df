"""``scripts/bench --peers``: the ``flat``, ``dag`` and ``lat`` work through streamproc, taskiq
and Celery, alternating, against the bench's own redis-server, and each scenario's ratio to
the best peer.

- streamproc: the bench's engine (one worker, one resolver process), a fresh spec (a new dict
  with new inputs) per submit.
- taskiq: taskiq-redis's ``RedisStreamBroker``, ``taskiq worker --workers 1`` (one worker
  process, under taskiq's supervising parent), 64 async tasks at once (``peer_taskiq.py``).
- Celery: the Redis broker, ``celery worker --pool threads --concurrency 64`` (one process;
  ``peer_celery.py``), no result backend.

A peer workflow is one message per task: the producer sends the first task with fresh
inputs, and each task sends its successors itself (dag: t1 -> t2 -> t3 -> (t4, t5)).  Its
last tasks add an entry to a done stream: a workflow ends at the id of its last such entry
(Redis's clock, as streamproc's ``completed`` event), and ``lat`` reads the start time (µs)
the task wrote there, as streamproc's ``lat`` reads its agent's.

Each scenario runs ``--reps`` times (3; 1 with ``--quick``), and each rep runs the three
systems one after the other in a rotated order, so load on the machine falls on each alike.
Rows give the median of the reps, figure by figure.  Ratios: tasks/s over the best peer's for
``flat`` and ``dag``; for ``lat``, the best peer's p99 over streamproc's (above 1: lower).
The peers' packages are the ``bench`` extra (``scripts/setup bench``; ``--peers`` installs it).
"""

from __future__ import annotations

import asyncio
import os
import statistics
import time
import uuid
from collections.abc import Callable, Coroutine
from typing import Any

import bench
from bench import Options, Result, now_ms, percentile
from bench_peer_drivers import Celery, DoneWatcher, Peer, Taskiq, running, tree_cpu
from bench_submit import one_task_spec
from redis.asyncio import Redis

SYSTEMS = ("streamproc", "taskiq", "celery")
SCENARIOS = ("flat", "dag", "lat")
LAT_RATE = 500


def dag_spec(n: int) -> dict[str, Any]:
    """A fresh spec of ``bench.DAG``'s shape."""
    tasks = [
        {"id": t.id, "agent": "noop", "input": {"n": n}, "needs": list(t.needs)}
        for t in bench.DAG.tasks
    ]
    return {"name": "bench-dag", "tasks": tasks}


def lat_spec(n: int) -> dict[str, Any]:
    """A fresh one-task spec whose task reports its start (``bench.noop``)."""
    return {"name": "bench-lat", "tasks": [{"id": "t1", "agent": "noop", "input": {"stamp": n}}]}


async def peer_scenario(opts: Options, peer: Peer, scenario: str) -> Result:
    """``scenario``'s work through ``peer``: sequential sends, or ``lat``'s open loop."""
    dag = scenario == "dag"
    workflows = (2_000 if dag else 20_000) // (10 if opts.quick else 1)
    if scenario == "lat":
        workflows = int(LAT_RATE * (1.0 if opts.quick else 10.0))
    submitted: dict[str, float] = {}
    async with running(peer) as cursor:
        assert peer.proc is not None
        cpu0 = tree_cpu(peer.proc.pid), bench.cpu_seconds(opts.redis_pid), time.process_time()
        first = now_ms()
        if scenario == "lat":
            await open_loop(peer, workflows, submitted)
        else:
            for n in range(workflows):
                workflow, t = uuid.uuid4().hex, now_ms()
                await peer.send(workflow, dag, {"n": n})
                submitted[workflow] = t
                if n % 1000 == 0:
                    peer.check()
        watcher = DoneWatcher(peer, cursor, submitted, 2 if dag else 1)
        await watcher.run()
        cpu1 = tree_cpu(peer.proc.pid), bench.cpu_seconds(opts.redis_pid), time.process_time()
    redis_cpu = None if cpu0[1] is None or cpu1[1] is None else cpu1[1] - cpu0[1]
    if scenario == "lat":
        latencies = [watcher.started[wf] - t for wf, t in submitted.items()]
        how = "submit call start -> the task's start (its own clock, microseconds)"
    else:
        latencies = [watcher.ended[wf] - t for wf, t in submitted.items()]
        how = "submit call start -> the last task's done entry id"
    return Result(
        scenario=f"{scenario} {peer.name}",
        tasks=workflows * (5 if dag else 1),
        workflows=workflows,
        seconds=(max(watcher.ended.values()) - first) / 1000,
        latencies=latencies,
        latency=how,
        cpu={"worker": cpu1[0] - cpu0[0], "redis": redis_cpu, "bench": cpu1[2] - cpu0[2]},
    )


async def open_loop(peer: Peer, workflows: int, submitted: dict[str, float]) -> None:
    """``LAT_RATE`` sends a second, each on schedule as its own task (64 in flight at most)."""
    in_flight = asyncio.Semaphore(64)

    async def one(n: int) -> None:
        async with in_flight:
            workflow, t = uuid.uuid4().hex, time.time_ns() / 1e6
            await peer.send(workflow, False, {"stamp": n})
        submitted[workflow] = t

    jobs: list[asyncio.Task[None]] = []
    start = time.monotonic()
    while len(jobs) < workflows:
        due = min(workflows, int((time.monotonic() - start) * LAT_RATE) + 1)
        jobs += [asyncio.create_task(one(n)) for n in range(len(jobs), due)]
        await asyncio.sleep(1 / LAT_RATE)
    await asyncio.gather(*jobs)


# -- the comparison --------------------------------------------------------------------------


def streamproc_scenario(opts: Options, admin: Redis, scenario: str) -> Coroutine[Any, Any, Result]:
    scale = 10 if opts.quick else 1
    if scenario == "flat":
        return bench.submit_scenario(
            opts, admin, "flat", bench.FLAT, 20_000 // scale, None, one_task_spec
        )
    if scenario == "dag":
        return bench.submit_scenario(opts, admin, "dag", bench.DAG, 2_000 // scale, None, dag_spec)
    return bench.lat_scenario(opts, admin, lat_spec)


async def compare(opts: Options, admin: Redis, reps: int) -> list[Result]:
    """Every scenario, ``reps`` times, each rep through every system; the medians' rows."""
    os.environ["BENCH_REDIS_URL"] = opts.url  # read by the peers' modules when imported
    peers: dict[str, Callable[[], Peer]] = {
        "taskiq": lambda: Taskiq(opts),
        "celery": lambda: Celery(opts),
    }
    await Taskiq(opts).app.broker.startup()
    runs: dict[tuple[str, str], list[Result]] = {}
    for scenario in SCENARIOS:
        for rep in range(reps):
            for system in SYSTEMS[rep % 3 :] + SYSTEMS[: rep % 3]:
                await bench.settle(admin)
                bench.say(f"running {scenario} through {system} (rep {rep + 1} of {reps}) ...")
                if system == "streamproc":
                    result = await streamproc_scenario(opts, admin, scenario)
                    result.scenario = f"{scenario} streamproc"
                else:
                    result = await peer_scenario(opts, peers[system](), scenario)
                row = result.row()
                figures = f"p50 {row['p50_ms']} ms, p99 {row['p99_ms']} ms"
                bench.say(f"  {row['tasks_per_s']} tasks/s, {figures}")
                runs.setdefault((scenario, system), []).append(result)
    return [median_result(results) for results in runs.values()]


def median_result(results: list[Result]) -> Result:
    """One result whose figures are the medians of ``results``' (of one scenario)."""
    first = results[0]
    lat = [sorted(r.latencies) for r in results]
    cpu = {
        k: statistics.median(v for r in results if (v := r.cpu.get(k)) is not None)
        for k in first.cpu
        if any(r.cpu.get(k) is not None for r in results)
    }
    seconds = statistics.median(r.seconds for r in results)
    merged = Result(first.scenario, first.tasks, first.workflows, seconds, [], first.latency, cpu)
    merged.medians = (
        statistics.median(percentile(v, 0.5) or 0.0 for v in lat),
        statistics.median(percentile(v, 0.99) or 0.0 for v in lat),
    )
    merged.extra = {
        "reps": len(results),
        "reps_tasks_per_s": [round(r.tasks_per_s) for r in results],
    }
    return merged


def p99(result: Result) -> float:
    return result.medians[1] if result.medians else 0.0


def ratios(results: list[Result]) -> str:
    """Per scenario, streamproc against the best peer."""
    rows = {r.scenario: r for r in results}
    lines = ["streamproc against the best peer (medians of the reps):"]
    for scenario in SCENARIOS:
        ours = rows[f"{scenario} streamproc"]
        peers = [rows[f"{scenario} {p}"] for p in SYSTEMS[1:]]
        if scenario == "lat":
            best = min(peers, key=p99)
            ratio = p99(best) / max(p99(ours), 1e-9)
            what = f"p99 {p99(ours):.1f} ms vs {p99(best):.1f} ms"
        else:
            best = max(peers, key=lambda r: r.tasks_per_s)
            ratio = ours.tasks_per_s / best.tasks_per_s
            what = f"{ours.tasks_per_s:.0f} vs {best.tasks_per_s:.0f} tasks/s"
        lines.append(f"  {scenario:<5} {ratio:5.2f}x {best.scenario.split()[1]:<7} ({what})")
    return "\n".join(lines)
