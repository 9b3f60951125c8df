"""The ``engine-ir`` scenario of ``scripts/bench`` (not run by default; ``--only engine-ir``):
the engine's instructions per workflow, counted by valgrind.

``redis-ir`` counts what a workflow costs Redis and ``submit-ir`` what it costs its producer;
this counts the rest, the worker and the resolver, whose CPU ``flat`` and ``dag`` report only
as a time that moves by a fifth between runs.  An engine process (a worker and a resolver,
as ``streamproc up`` runs them) serves the no-op agent under callgrind, against the bench's
redis-server.  For each shape of ``bench_memory.BATCHES`` the bench submits fresh specs one
at a time and waits for each to end, so each read and each flush carries one task: the
per-call costs that ``dag`` and ``lat`` pay with their small batches.  The counters are
dumped before and after ``count`` workflows (the warm-up ones and start-up are left out);
the figure is their instructions divided by ``count``.  What the engine does while idle
(heartbeats, blocked reads that time out) counts too, and the more the longer a run takes:
on a quiet machine two runs agree to a few percent, on a busy one to a tenth or worse, so
compare commits in alternating runs.  Needs valgrind (Debian: ``apt-get install
valgrind``); the engine runs some 50 times slower under it.
"""

from __future__ import annotations

import asyncio
import signal
import sys
import tempfile
import time
from pathlib import Path

from bench import Result
from bench_memory import BATCHES
from bench_redis_cpu import noop
from bench_redis_ir import Callgrind

from streamproc.client import Client
from streamproc.config import ClientSettings, RedisSettings
from streamproc.engine.inprocess import running_engine
from streamproc.store.keys import Keyspace
from streamproc.transport.event_loop import run

WARM = 5
WAIT_S = 600.0  # a workflow's wait under valgrind, start-up included


async def engine_ir_scenario(url: str, quick: bool) -> Result:
    count = 5 if quick else 30
    keyspace = Keyspace(f"bench-engine-ir-{time.time_ns()}")
    wall = time.perf_counter()
    per_workflow: dict[str, int] = {}
    with tempfile.TemporaryDirectory(prefix="streamproc-engine-ir-") as data_dir:
        command = [sys.executable, str(Path(__file__)), url, keyspace.namespace]
        engine = Callgrind(Path(data_dir), command, "engine-ir")
        try:
            async with Client(url, ClientSettings(keyspace=keyspace)) as client:
                for shape, make in BATCHES.items():
                    for n in range(WARM):  # the first ones also wait for the engine to start
                        await client.wait(await client.submit(make(-1 - n)), timeout=WAIT_S)
                    await engine.instructions()
                    for n in range(count):
                        await client.wait(await client.submit(make(n)), timeout=WAIT_S)
                    per_workflow[shape] = round(await engine.instructions() / count)
        finally:
            engine.stop()
    return Result(
        scenario="engine-ir",
        tasks=count * 6,
        workflows=count * len(BATCHES),
        seconds=time.perf_counter() - wall,
        latencies=[],
        latency=f"none; the engine's instructions per workflow (valgrind), {count} of each "
        "shape run one at a time: "
        + ", ".join(f"{shape} {n:,}" for shape, n in per_workflow.items()),
        extra={"instructions": per_workflow},
    )


async def serve(url: str, namespace: str) -> None:
    """Run a worker and a resolver for the no-op agent until SIGTERM (the process valgrind
    runs)."""
    stopped = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stopped.set)
    async with running_engine(RedisSettings.from_url(url), Keyspace(namespace), {"noop": noop}):
        await stopped.wait()


if __name__ == "__main__":
    run(serve(sys.argv[1], sys.argv[2]))
