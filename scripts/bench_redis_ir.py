"""The ``redis-ir`` scenario of ``scripts/bench`` (not run by default; ``--only redis-ir``):
redis-server's instructions per workflow, counted by valgrind, the same from run to run.

Time on a shared 2-core machine moves by 10 to 50 % between runs minutes apart, so a change
of a few percent in Redis's work per workflow is lost in ``redis-cpu``.  Here a redis-server of
its own (appendonly, appendfsync everysec, as the others) runs under callgrind, which counts
the instructions it executes in user space (the kernel's share of its I/O is not counted).
For each shape (``bench_memory.BATCHES``: the seed's, its inputs 29 to 117 bytes, and one
task; and ``dag``: the seed's graph with the ten-byte inputs of ``--peers``'s ``dag``): 20
workflows warm it up; then ``count`` fresh specs are submitted, one ``await
client.submit()`` at a time with no engine running (the submit side), and a worker and a
resolver started in this process run them all to the end (the run side).  The counters are
dumped between the phases (``callgrind_control``); each side's figure is its instructions
divided by the workflows.  Repeated runs agree to about 0.1 %, so one run is enough to
compare two commits.  Needs valgrind (Debian: ``apt-get install valgrind``); the server runs
some 50 times slower under it.
"""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench import BenchError, Result
from bench_memory import BATCHES
from bench_peers import dag_spec
from bench_redis_cpu import all_ended, noop
from redis.asyncio import Redis
from redis.exceptions import ConnectionError

from streamproc.client import Client
from streamproc.config import ClientSettings, RedisSettings
from streamproc.engine.inprocess import running_engine
from streamproc.store.keys import Keyspace
from streamproc.testing.embedded import free_port

WARM = 20
SHAPES = {**BATCHES, "dag": dag_spec}
DUMP_WAIT_S = 60.0


class Callgrind:
    """A process under callgrind (``command``, run with its output dropped); :meth:`instructions`
    dumps the counters and returns the instructions executed since the previous dump."""

    def __init__(self, data_dir: Path, command: list[str], what: str = "redis-ir") -> None:
        for tool in ("valgrind", "callgrind_control", command[0]):
            if shutil.which(tool) is None:
                raise BenchError(
                    f"{what}: {tool} is not on PATH (Debian: apt-get install valgrind)"
                )
        self.dir, self.what, self.dumps = data_dir, what, 0
        self.process = subprocess.Popen(
            ["valgrind", "--tool=callgrind", f"--callgrind-out-file={data_dir}/ir.out", *command],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

    async def instructions(self) -> int:
        self.dumps += 1
        control = await asyncio.create_subprocess_exec(
            *("callgrind_control", "--dump", f"part{self.dumps}", str(self.process.pid)),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        _, error = await control.communicate()
        if control.returncode != 0:
            raise BenchError(f"{self.what}: callgrind_control failed: {error.decode().strip()}")
        dump = self.dir / f"ir.out.{self.dumps}"
        deadline = time.monotonic() + DUMP_WAIT_S
        while (text := dump.read_text() if dump.exists() else "").find("\ntotals:") < 0:
            if time.monotonic() > deadline:
                raise BenchError(f"{self.what}: no counters dumped to {dump}")
            await asyncio.sleep(0.1)
        return int(text.split("\ntotals:", 1)[1].split()[0])

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=DUMP_WAIT_S)
        except subprocess.TimeoutExpired:
            self.process.kill()


class RedisUnderCallgrind(Callgrind):
    """A redis-server of its own under callgrind: appendonly, appendfsync everysec."""

    def __init__(self, data_dir: Path) -> None:
        self.port = free_port()
        super().__init__(
            data_dir,
            [
                "redis-server", "--port", str(self.port), "--bind", "127.0.0.1",
                "--dir", str(data_dir), "--save", "", "--appendonly", "yes",
                "--appendfsync", "everysec",
            ],
        )  # fmt: skip

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    async def ready(self) -> None:
        deadline = time.monotonic() + DUMP_WAIT_S
        async with Redis.from_url(self.url) as redis:
            while True:
                try:
                    await redis.ping()
                    return
                except ConnectionError:
                    if time.monotonic() > deadline or self.process.poll() is not None:
                        raise BenchError(
                            "redis-ir: redis-server under valgrind did not start"
                        ) from None
                    await asyncio.sleep(0.2)


async def one_shape(
    server: RedisUnderCallgrind, make: Callable[[int], dict[str, Any]], count: int
) -> tuple[float, float]:
    """Instructions per workflow to submit ``count`` workflows, then to run them."""
    settings = RedisSettings.from_url(server.url)
    admin = Redis.from_url(server.url, decode_responses=True)
    try:
        keyspace = Keyspace(f"bench-redis-ir-{time.time_ns()}")
        async with Client(server.url, ClientSettings(keyspace=keyspace)) as client:
            async with running_engine(settings, keyspace, {"noop": noop}):
                await client.submit_many([make(-1 - n) for n in range(WARM)])
                await all_ended(admin, keyspace, WARM)
            specs = [make(n) for n in range(count)]
            await server.instructions()
            for spec in specs:
                await client.submit(spec)
            submitted = await server.instructions()
            async with running_engine(settings, keyspace, {"noop": noop}):
                await all_ended(admin, keyspace, WARM + count)
            ran = await server.instructions()  # the engine stopped: its stower is done too
    finally:
        await admin.aclose()
    return submitted / count, ran / count


async def redis_ir_scenario(quick: bool) -> Result:
    count = 100 if quick else 500
    wall = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="streamproc-redis-ir-") as data_dir:
        server = RedisUnderCallgrind(Path(data_dir))
        try:
            await server.ready()
            sides = {shape: await one_shape(server, make, count) for shape, make in SHAPES.items()}
        finally:
            server.stop()
    rounded = {shape: (round(s), round(r)) for shape, (s, r) in sides.items()}
    figures = {shape: {"submit": s, "run": r, "total": s + r} for shape, (s, r) in rounded.items()}
    return Result(
        scenario="redis-ir",
        tasks=count * 11,
        workflows=count * len(SHAPES),
        seconds=time.perf_counter() - wall,
        latencies=[],
        latency=(
            f"none; redis-server instructions per workflow (callgrind), {count} of each shape: "
            + ", ".join(
                f"{shape} submit {f['submit']:,} + run {f['run']:,} = {f['total']:,}"
                for shape, f in figures.items()
            )
        ),
        extra={"redis_instructions": figures},
    )
