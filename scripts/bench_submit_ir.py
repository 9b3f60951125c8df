"""The ``submit-ir`` scenario of ``scripts/bench`` (not run by default; ``--only submit-ir``):
the client's instructions per submit of a fresh spec, counted by valgrind, the same from run
to run.

``submit-cpu`` times a submit's client CPU, which moves by a fifth between runs minutes apart
on a shared machine (and counts the kernel's share of the round trip).  Here a producer
process runs under callgrind, which counts the instructions it executes in user space: the
interpreter, the client, hiredis and uvloop.  For each shape of ``bench_submit.SHAPES`` the
producer submits ``WARM`` fresh specs one ``await client.submit()`` at a time against the
bench's redis-server, then, in a second run, ``WARM + count`` (1,000; 200 with ``--quick``);
the figure is the difference
divided by ``count`` (start-up, imports and the first submits cancel out).  Repeated runs
agree to about 0.1 %.  Needs valgrind (Debian: ``apt-get install valgrind``).
"""

from __future__ import annotations

import asyncio
import shutil
import sys
import time
from pathlib import Path

from bench import BenchError, Result
from bench_submit import SHAPES

from streamproc.client import Client
from streamproc.config import ClientSettings
from streamproc.store.keys import Keyspace
from streamproc.transport.event_loop import run

WARM = 200  # 50 with --quick


async def instructions(url: str, shape: str, count: int) -> int:
    """What a producer process that submits ``count`` specs of ``shape`` executes in all."""
    if shutil.which("valgrind") is None:
        raise BenchError("submit-ir: valgrind is not on PATH (Debian: apt-get install valgrind)")
    process = await asyncio.create_subprocess_exec(
        *("valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null"),
        *(sys.executable, str(Path(__file__)), url, shape, str(count)),
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    _, error = await process.communicate()
    text = error.decode()
    if process.returncode != 0 or "Collected :" not in text:
        raise BenchError(f"submit-ir: the producer under valgrind failed:\n{text[-2000:]}")
    return int(text.split("Collected :", 1)[1].split()[0])


async def submit_ir_scenario(url: str, quick: bool) -> Result:
    count, first = (200, 50) if quick else (1_000, WARM)
    wall = time.perf_counter()
    per_submit: dict[str, int] = {}
    for shape in SHAPES:
        warm = await instructions(url, shape, first)
        per_submit[shape] = round((await instructions(url, shape, first + count) - warm) / count)
    return Result(
        scenario="submit-ir",
        tasks=count * 6,
        workflows=count * len(SHAPES),
        seconds=time.perf_counter() - wall,
        latencies=[],
        latency="none; the client's instructions per submit of a fresh spec (valgrind): "
        + ", ".join(f"{shape} {n:,}" for shape, n in per_submit.items()),
        extra={"instructions": per_submit},
    )


async def produce(url: str, shape: str, count: int) -> None:
    """Submit ``count`` fresh specs of ``shape``, one at a time (the process valgrind runs)."""
    make = SHAPES[shape]
    specs = [make(n) for n in range(count)]
    keyspace = Keyspace(f"bench-submit-ir-{time.time_ns()}")
    async with Client(url, ClientSettings(keyspace=keyspace)) as client:
        for spec in specs:
            await client.submit(spec)


if __name__ == "__main__":
    run(produce(sys.argv[1], sys.argv[2], int(sys.argv[3])))
