"""The peers of ``scripts/bench --peers`` (``bench_peers.py``): each one's worker process
and its producer in the bench process, and the reader of the done stream their last tasks
write to (``peer_taskiq.py``, ``peer_celery.py``).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import bench
from bench import BenchError, Options, cpu_split, reap, spawn
from redis.asyncio import Redis
from redis.exceptions import ResponseError

DONE = "bench-peer-done"
STALL_SECONDS = 30.0


def tree_cpu(pid: int) -> float:
    """CPU seconds of ``pid`` and its descendants so far (Linux /proc)."""
    total = sum(cpu_split(pid) or (0.0, 0.0))
    for children in Path(f"/proc/{pid}/task").glob("*/children"):
        with contextlib.suppress(OSError):
            total += sum(tree_cpu(int(child)) for child in children.read_text().split())
    return total


# -- the peers -------------------------------------------------------------------------------


class Peer:
    """A peer's worker process and its producer, in the bench process."""

    name = ""

    def __init__(self, opts: Options) -> None:
        self.opts = opts
        self.proc: Any = None
        self.log = opts.log_dir / f"{self.name}-worker.log"

    def argv(self) -> list[str]:
        raise NotImplementedError

    async def send(self, workflow: str, dag: bool, data: Any) -> None:
        raise NotImplementedError

    async def start(self) -> bytes:
        """Start the worker; run one workflow through it; return its done entry's id."""
        env = {**os.environ, "PYTHONPATH": str(bench.SCRIPTS), "BENCH_REDIS_URL": self.opts.url}
        self.proc = spawn(self.argv(), self.log, env=env, cwd=str(bench.SCRIPTS))
        deadline = time.monotonic() + 60
        while not await self.ready():
            self.check()
            if time.monotonic() > deadline:
                raise BenchError(f"the {self.name} worker did not start within 60s")
            await asyncio.sleep(0.1)
        await self.send("warm-up", False, None)
        watcher = DoneWatcher(self, b"0-0", {"warm-up": 0.0}, 1, 60.0)
        await watcher.run()
        return watcher.cursor

    async def ready(self) -> bool:
        """Whether the worker reads its queue (so nothing sent now is missed)."""
        return True

    def check(self) -> None:
        if self.proc.poll() is not None:
            tail = bench.tail(self.log)
            raise BenchError(f"the {self.name} worker exited ({self.proc.returncode}):\n{tail}")

    async def stop(self) -> None:
        await reap(self.proc, signal.SIGTERM, 20)


class Taskiq(Peer):
    name = "taskiq"

    def __init__(self, opts: Options) -> None:
        super().__init__(opts)
        import peer_taskiq

        self.app = peer_taskiq

    def argv(self) -> list[str]:
        taskiq = str(bench.STREAMPROC.parent / "taskiq")
        args = ["worker", "peer_taskiq:broker", "--workers", "1", "--max-async-tasks", "64"]
        return [taskiq, *args, "--log-level", "WARNING"]

    async def send(self, workflow: str, dag: bool, data: Any) -> None:
        await self.app.step.kiq(workflow, "t1", dag, data)

    async def ready(self) -> bool:
        """The worker makes its group at the end of the stream (``$``) as it starts: what is
        sent before would never reach it."""
        redis = Redis.from_url(self.opts.url)
        try:
            groups = await redis.xinfo_groups(self.app.broker.queue_name)
        except ResponseError:  # no stream yet
            return False
        finally:
            await redis.aclose()
        return bool(groups)


class Celery(Peer):
    name = "celery"

    def __init__(self, opts: Options) -> None:
        super().__init__(opts)
        import peer_celery

        self.app = peer_celery

    def argv(self) -> list[str]:
        celery = str(bench.STREAMPROC.parent / "celery")
        args = ["-A", "peer_celery", "worker", "--pool", "threads", "--concurrency", "64"]
        args += ["--loglevel", "WARNING", "-Q", "bench-celery", "--without-gossip"]
        return [celery, *args, "--without-mingle", "--without-heartbeat"]

    async def send(self, workflow: str, dag: bool, data: Any) -> None:
        self.app.step.delay(workflow, "t1", dag, data)  # a blocking call, as Celery's are


class DoneWatcher:
    """Reads the done stream until ``expected`` workflows ended, each with ``per_workflow``
    entries: ``ended`` their last entry's ms, ``started`` the start (ms) a task wrote."""

    def __init__(
        self,
        peer: Peer,
        cursor: bytes,
        submitted: dict[str, float],
        per_workflow: int,
        stall: float = STALL_SECONDS,
    ) -> None:
        self.peer = peer
        self.cursor = cursor
        self.submitted = submitted
        self.per_workflow = per_workflow
        self.stall = stall
        self.ended: dict[str, int] = {}
        self.started: dict[str, float] = {}
        self._seen: dict[str, int] = {}

    async def run(self) -> None:
        redis = Redis.from_url(self.peer.opts.url)
        progress = time.monotonic()
        try:
            while len(self.ended) < len(self.submitted):
                reply = await redis.xread({DONE: self.cursor}, count=1000, block=1000)
                self.peer.check()
                if not reply:
                    if time.monotonic() - progress > self.stall:
                        raise BenchError(
                            f"{self.peer.name}: no workflow ended for {self.stall:.0f}s "
                            f"({len(self.ended)}/{len(self.submitted)} ended):\n"
                            + bench.tail(self.peer.log)
                        )
                    continue
                progress = time.monotonic()
                if len(reply[0][1]) < 1000:
                    await asyncio.sleep(bench.POLL_SECONDS)  # as EventWatcher
                for entry_id, fields in reply[0][1]:
                    self.cursor = entry_id
                    wf = fields[b"wf"].decode()
                    self._seen[wf] = self._seen.get(wf, 0) + 1
                    if self._seen[wf] == self.per_workflow:
                        self.ended[wf] = bench.entry_ms(entry_id)
                        self.started[wf] = int(fields[b"at_us"]) / 1000
        finally:
            await redis.aclose()


@contextlib.asynccontextmanager
async def running(peer: Peer) -> AsyncIterator[bytes]:
    try:
        yield await peer.start()
    finally:
        await peer.stop()
