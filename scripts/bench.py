"""Throughput and latency benchmark of the engine (run it as ``scripts/bench``; not a test).

A private redis-server (``EmbeddedRedis``: appendonly, appendfsync everysec, a free port, never
6379) serves every scenario.  Each engine scenario gets a fresh namespace and its own two
processes, ``streamproc worker --agent noop --concurrency 64`` and ``streamproc resolver``;
this module is imported by both (``--import bench`` with ``PYTHONPATH=scripts``): it registers
the no-op agent and a SIGUSR1 handler that prints every asyncio task's stack.  One warm-up
workflow runs end to end before the measured window opens.  Between scenarios the data set is
flushed and the AOF rewritten, so no scenario pays for an earlier one's AOF growth.

Scenarios (``--quick`` runs a tenth of each):

``limit``       the ceiling, no engine: 20,000 entries (the size of a task entry) XADDed in
                pipelines of 100 by the bench process, read by a second process with
                XREADGROUP COUNT 100 and acknowledged with a pipeline of one XACK per entry;
                best of 3 runs.  Latency: entry id (Redis clock at XADD) to the consumer's
                XACK reply.
``limit-1proc`` the same with producer and consumer as two asyncio tasks of the bench process
                (not run by default; ``--only limit-1proc``).
``submit-only`` what bounds ``flat`` before any task runs (not run by default): 20,000 one-task
                workflows, one ``await client.submit()`` at a time with no worker and no
                resolver, and, as ``ping_per_s``, the same loop of bare PINGs (a round trip
                with no work in Redis).
``flat``        20,000 one-task no-op workflows, one ``await client.submit()`` at a time.
``flat-batch``  the same with ``client.submit_many`` in batches of 100.
``dag``         2,000 workflows t1 -> t2 -> t3 -> (t4, t5): 10,000 tasks, one submit at a time.
``lat``         500 one-task workflows/s offered for 10 s, open loop (each submit is its own
                asyncio task, launched on schedule; at most 64 in flight).
``submit-cpu``  client CPU per submit of a fresh spec, no worker (``bench_submit.py``).
``redis-cpu``   Redis CPU per workflow to submit it and to run it, nothing else running
                (``bench_redis_cpu.py``).
``redis-ir``    the same as instructions counted by valgrind, repeatable to 0.1 % (not run by
                default: ``--only redis-ir``; ``bench_redis_ir.py``).
``submit-ir``   the client's instructions per submit of a fresh spec, counted by valgrind (not
                run by default: ``--only submit-ir``; ``bench_submit_ir.py``).
``engine-ir``   the engine's (worker and resolver) instructions per workflow run one at a time,
                counted by valgrind (not run by default: ``--only engine-ir``;
                ``bench_engine_ir.py``).
``chain``       per-hop latency of 10-step chains, 100 workflows/s (``bench_chain.py``).
``memory``      Redis memory per finished workflow, streams trimmed (``bench_memory.py``).

``--peers`` runs ``flat``, ``dag`` and ``lat`` through streamproc, taskiq and Celery too,
alternating, with fresh specs, and prints the ratios to the best peer (``bench_peers.py``);
then the ``--only`` scenarios, if any.

Timing: once the last submit call returned, the bench process reads the shard's events stream
from the start of the measured window with XREAD COUNT 1000, then every 20 ms once caught up
(all times come from the entries, so when they are read changes no figure; reading them while
submitting took CPU from the submitting loop: see the README).  ``seconds``
runs from the first submit call to the id of the last ``completed`` event (Redis clock; same
host, so the same clock as the bench's).  ``flat``, ``flat-batch`` and ``dag`` latency: a
workflow's submit call start (for a batch, the start of its ``submit_many`` call) to its
``completed`` event's entry id: whole milliseconds (truncated), and so the bench's own times
for these, so such a latency is good to about 1 ms either way and never negative.  ``lat``
latency: the submit call start to the moment the agent started, to the microsecond (its tasks
ask the no-op agent for its start time as its result; the engine's own ``b:<task>`` is whole
ms).  ``cpu_s`` is each process's CPU seconds during the measured window (from /proc;
``cpu_sys_s`` the kernel part); ``ratio_to_limit`` is tasks_per_s over ``limit``'s.

Diagnostics: a daemon that exits fails the run with its log; a run with no new event for 30 s
fails with the stuck workflows' state, both groups' figures and both daemons' asyncio task
stacks.  ``--dump DIR`` writes every workflow's timeline as CSV; ``--profile pyspy`` samples
worker, resolver and the bench during each measured window and prints their hotspots and
Redis's INFO commandstats (``--profile cprofile`` profiles the whole daemon processes).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import io
import math
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Callable, Coroutine, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import orjson
from redis.asyncio import Redis
from redis.exceptions import ResponseError

from streamproc import Task, agent
from streamproc.client import Client
from streamproc.config import ClientSettings
from streamproc.spec.model import TaskSpec, WorkflowSpec
from streamproc.store import folded
from streamproc.store.fields import TaskField, WorkflowField
from streamproc.store.keys import Keyspace
from streamproc.testing.embedded import EmbeddedRedis, free_port, stopped_with_owner
from streamproc.transport import event_loop


@agent("noop")
async def noop(task: Task) -> int | None:
    """The benchmarked agent: does nothing, but for ``lat``'s tasks (input ``"stamp"``, or an
    object with a ``"stamp"`` key) returns when it started, in microseconds since the epoch."""
    stamped = task.input == "stamp" or (isinstance(task.input, dict) and "stamp" in task.input)
    return time.time_ns() // 1000 if stamped else None


def _dump_tasks(signum: int, frame: object) -> None:
    """SIGUSR1 in a daemon (which imports this module): print every asyncio task's stack."""
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        return
    out = io.StringIO()
    for task in asyncio.all_tasks(loop):
        out.write(f"--- {task.get_name()} {task.get_coro()!r}\n")
        task.print_stack(limit=10, file=out)
    sys.stderr.write(f"=== asyncio tasks of pid {os.getpid()} ===\n{out.getvalue()}=== end ===\n")
    sys.stderr.flush()


if __name__ == "bench":  # imported by a worker or resolver started by the bench
    signal.signal(signal.SIGUSR1, _dump_tasks)


SCRIPTS = Path(__file__).resolve().parent
STREAMPROC = Path(sys.executable).parent / "streamproc"
ALL_SCENARIOS = (
    "limit",
    "flat",
    "flat-batch",
    "dag",
    "lat",
    "submit-cpu",
    "redis-cpu",
    "chain",
    "memory",
)
EXTRA_SCENARIOS = ("limit-1proc", "submit-only", "redis-ir", "submit-ir", "engine-ir")
# no tasks/s to set beside the ceiling
UNBOUNDED_BY_LIMIT = (
    "submit-cpu",
    "submit-ir",
    "engine-ir",
    "redis-cpu",
    "redis-ir",
    "chain",
    "memory",
)
STALL_SECONDS = 30.0
POLL_SECONDS = 0.02
BRIEF_FIELDS = (  # the workflow hash fields a stall report shows
    WorkflowField.STATUS,
    *(TaskField.STATE, TaskField.ATTEMPT, TaskField.QUEUED, TaskField.BEGAN, TaskField.ENDED),
    *(TaskField.ENTRY, TaskField.CONSUMER, TaskField.ERROR),
)
LIMIT_RUNS = 3
CLOCK_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
FLAT = WorkflowSpec(tasks=(TaskSpec("t1", "noop"),), name="bench-flat")
STAMPED = WorkflowSpec(tasks=(TaskSpec("t1", "noop", input="stamp"),), name="bench-lat")
DAG = WorkflowSpec(
    tasks=(
        TaskSpec("t1", "noop"),
        TaskSpec("t2", "noop", needs=("t1",)),
        TaskSpec("t3", "noop", needs=("t2",)),
        TaskSpec("t4", "noop", needs=("t3",)),
        TaskSpec("t5", "noop", needs=("t3",)),
    ),
    name="bench-dag",
)
# What a task entry carries, so the ceiling moves entries of the engine's size.
LIMIT_FIELDS = {
    "v": "1",
    "wf": uuid.uuid4().hex,
    "task": "t1",
    "agent": "noop",
    "att": "1",
    "in": "null",
    "deps": "{}",
    "to": "",
}
_live: list[subprocess.Popen[bytes]] = []
# Makes the n-th fresh spec of a scenario: a new dict, with new inputs, as producers send.
Fresh = Callable[[int], WorkflowSpec | Mapping[str, Any]]


class BenchError(Exception):
    pass


# -- small helpers ---------------------------------------------------------------------------


def now_ms() -> int:
    """Whole milliseconds, truncated like the engine's timestamps and entry ids: a latency
    between two truncated times is unbiased and never negative."""
    return time.time_ns() // 1_000_000


def entry_ms(entry_id: bytes) -> int:
    return int(entry_id.split(b"-", 1)[0])


def percentile(values: Sequence[float], q: float) -> float | None:
    """Nearest-rank percentile of already sorted ``values``."""
    if not values:
        return None
    rank = max(1, math.ceil(q * len(values)))
    return float(values[min(rank, len(values)) - 1])


def cpu_split(pid: int | None) -> tuple[float, float] | None:
    """(user, system) CPU seconds of ``pid`` so far (Linux /proc), or None."""
    if pid is None:
        return None
    if pid == os.getpid():
        times = os.times()
        return times.user, times.system
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[1].split()  # fields[0] is field 3 (state)
    return int(fields[11]) / CLOCK_TICKS, int(fields[12]) / CLOCK_TICKS


def cpu_seconds(pid: int | None) -> float | None:
    """User + system CPU seconds of ``pid`` so far, or None."""
    split = cpu_split(pid)
    return None if split is None else split[0] + split[1]


def say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def spawn(
    argv: list[str], log: Path | None = None, death: int = signal.SIGKILL, **kwargs: Any
) -> subprocess.Popen[bytes]:
    """Popen from the main thread (PDEATHSIG follows the forking thread).  Daemons get
    SIGKILL when the bench dies: their Redis goes away with it, so a graceful stop would wait
    forever."""
    out: Any = log.open("wb") if log else kwargs.pop("stdout", None)
    try:
        proc = subprocess.Popen(
            argv,
            stdout=out,
            stderr=subprocess.STDOUT if log else None,
            preexec_fn=stopped_with_owner(death),
            **kwargs,
        )
    finally:
        if log:
            out.close()
    _live.append(proc)
    return proc


async def reap(proc: subprocess.Popen[bytes], sig: int | None, timeout: float) -> int | None:
    """Send ``sig`` (if any) and wait up to ``timeout`` seconds; SIGKILL after that."""
    if proc.poll() is None and sig is not None:
        proc.send_signal(sig)
    deadline = time.monotonic() + timeout
    while proc.poll() is None and time.monotonic() < deadline:  # noqa: ASYNC110 (no event to wait on)
        await asyncio.sleep(0.05)
    if proc.poll() is None:
        proc.kill()
        proc.wait()
    with contextlib.suppress(ValueError):
        _live.remove(proc)
    return proc.returncode


# Run by a watchdog process: when the bench dies (even by SIGKILL) PDEATHSIG sends it SIGTERM,
# and it removes the data dir of the redis-server the bench started, which EmbeddedRedis's own
# PDEATHSIG stops but leaves behind; the kill only makes sure the server is going.  After a
# normal exit the server is already gone and the kill does nothing.
WATCHDOG = """
import os, shutil, signal, sys
pid, data_dir = int(sys.argv[1]), sys.argv[2]
signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM, signal.SIGINT})
if os.getppid() == 1:  # the bench died before the mask was set
    os.kill(os.getpid(), signal.SIGTERM)
signal.sigwait({signal.SIGTERM, signal.SIGINT})
try:
    os.kill(pid, signal.SIGTERM)
except ProcessLookupError:
    pass
shutil.rmtree(data_dir, ignore_errors=True)
"""


def start_watchdog(server: EmbeddedRedis) -> subprocess.Popen[bytes] | None:
    if sys.platform != "linux" or server.process is None:
        return None
    argv = [sys.executable, "-c", WATCHDOG, str(server.process.pid), str(server.data_dir)]
    # Its own session, so a Ctrl-C reaches only the bench and the daemons.
    return spawn(argv, death=signal.SIGTERM, start_new_session=True)


def tail(path: Path, chars: int = 2000) -> str:
    try:
        return path.read_text(errors="replace")[-chars:]
    except OSError:
        return ""


# -- results ---------------------------------------------------------------------------------


@dataclass
class Result:
    scenario: str
    tasks: int
    workflows: int
    seconds: float
    latencies: list[float]
    latency: str
    cpu: dict[str, float | None] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)
    ratio_to_limit: float | None = None
    medians: tuple[float, float] | None = None  # (p50, p99) ms of several runs, given

    @property
    def tasks_per_s(self) -> float:
        return self.tasks / self.seconds if self.seconds > 0 else 0.0

    def redis_us_per_workflow(self) -> float | None:
        """redis-server's CPU (user and system, from /proc) per workflow of the window."""
        redis = self.cpu.get("redis")
        return (
            None if redis is None or not self.workflows else round(redis * 1e6 / self.workflows, 1)
        )

    def row(self) -> dict[str, Any]:
        lat = sorted(self.latencies)
        p50, p99 = self.medians or (percentile(lat, 0.50), percentile(lat, 0.99))
        ratio = self.ratio_to_limit
        return {
            "scenario": self.scenario,
            "tasks": self.tasks,
            "workflows": self.workflows,
            "seconds": round(self.seconds, 3),
            "tasks_per_s": round(self.tasks_per_s, 1),
            "p50_ms": None if p50 is None else round(p50, 1),
            "p99_ms": None if p99 is None else round(p99, 1),
            "ratio_to_limit": None if ratio is None else round(ratio, 3),
            "latency": self.latency,
            "cpu_s": {k: None if v is None else round(v, 2) for k, v in self.cpu.items()},
            "redis_us_per_wf": self.redis_us_per_workflow(),
            **self.extra,
        }


def render_table(rows: list[dict[str, Any]]) -> str:
    def num(value: Any, fmt: str) -> str:
        return "-" if value is None else format(value, fmt)

    width = max([12, *(len(r["scenario"]) + 1 for r in rows)])
    head = (
        f"{'scenario':<{width}}{'tasks':>7}{'wfs':>7}{'seconds':>9}{'tasks/s':>9}{'p50 ms':>9}"
        f"{'p99 ms':>9}{'x limit':>9}{'redis µs/wf':>12}   cpu s: worker/resolver/redis/bench"
    )
    lines = [head, "-" * len(head)]
    for r in rows:
        cpu = r["cpu_s"]
        cpus = "/".join(num(cpu.get(k), ".1f") for k in ("worker", "resolver", "redis", "bench"))
        lines.append(
            f"{r['scenario']:<{width}}{r['tasks']:>7}{r['workflows']:>7}{r['seconds']:>9.2f}"
            f"{r['tasks_per_s']:>9.0f}{num(r['p50_ms'], '.1f'):>9}{num(r['p99_ms'], '.1f'):>9}"
            f"{num(r['ratio_to_limit'], '.3f'):>9}{num(r.get('redis_us_per_wf'), '.0f'):>12}"
            f"   {cpus}"
        )
    lines.append("")
    lines += [f"  {r['scenario']:<{width}}latency = {r['latency']}" for r in rows]
    return "\n".join(lines)


# -- the engine under test -------------------------------------------------------------------


@dataclass
class Options:
    url: str
    redis_pid: int | None
    quick: bool
    concurrency: int
    profile: str | None
    profile_dir: Path
    log_dir: Path
    dump_dir: Path | None = None


class Engine:
    """One worker and one resolver process on a fresh namespace."""

    def __init__(self, opts: Options, scenario: str) -> None:
        self.opts = opts
        self.scenario = scenario
        self.keyspace = Keyspace(f"bench-{scenario}-{uuid.uuid4().hex[:8]}")
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.logs: dict[str, Path] = {}
        self.samplers: dict[str, subprocess.Popen[bytes]] = {}
        self._cpu0: dict[str, tuple[float, float] | None] = {}
        self.cpu_sys: dict[str, float | None] = {}
        self.cursor = b"0-0"

    def argv(self, role: str) -> list[str]:
        common = [
            "--redis-url",
            self.opts.url,
            "--namespace",
            self.keyspace.namespace,
            "--import",
            "bench",
            "--log-format",
            "text",
        ]
        if role == "worker":
            concurrency = str(self.opts.concurrency)
            args = ["worker", *common, "--agent", "noop", "--concurrency", concurrency]
        else:
            args = ["resolver", *common]
        if self.opts.profile == "cprofile":
            out = self.opts.profile_dir / f"{self.scenario}-{role}.prof"
            return [sys.executable, "-m", "cProfile", "-o", str(out), str(STREAMPROC), *args]
        return [str(STREAMPROC), *args]

    async def start(self, admin: Redis) -> None:
        path = os.pathsep.join(p for p in (str(SCRIPTS), os.environ.get("PYTHONPATH")) if p)
        env = {**os.environ, "PYTHONPATH": path}
        for role in ("worker", "resolver"):
            self.logs[role] = self.opts.log_dir / f"{self.scenario}-{role}.log"
            self.procs[role] = spawn(self.argv(role), self.logs[role], env=env)
        self.cursor = await self._warm_up(admin)

    async def _warm_up(self, admin: Redis, timeout: float = 30.0) -> bytes:
        """Run one workflow end to end (so both daemons are up, connected and know the agent);
        return the id of its ``completed`` event, where the measured window's events start."""
        events = self.keyspace.events(0)
        async with Client(self.opts.url, ClientSettings(keyspace=self.keyspace)) as client:
            workflow = (await client.submit(FLAT)).encode()
        deadline = time.monotonic() + timeout
        cursor = b"0-0"
        while True:
            self.check()
            reply = await admin.xread({events: cursor}, count=100, block=50)
            for _, entries in reply or ():
                for entry_id, fields in entries:
                    cursor = entry_id
                    if fields.get(b"wf") == workflow and fields.get(b"kind") == b"completed":
                        return cast(bytes, entry_id)
            if time.monotonic() > deadline:
                raise BenchError(
                    f"the warm-up workflow did not complete within {timeout}s:\n"
                    + "\n".join(f"{r}: {tail(p)}" for r, p in self.logs.items())
                )

    async def dump_tasks(self) -> str:
        """Ask both daemons for their asyncio task stacks (SIGUSR1) and return them."""
        sizes = {role: path.stat().st_size for role, path in self.logs.items()}
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGUSR1)
        await asyncio.sleep(1.0)
        parts = []
        for role, path in self.logs.items():
            with path.open("rb") as log:
                log.seek(sizes[role])
                parts.append(f"\n{role}:\n{log.read().decode(errors='replace')[-6000:]}")
        return "".join(parts)

    def check(self) -> None:
        """Raise if a daemon died."""
        for role, proc in self.procs.items():
            if proc.poll() is not None:
                raise BenchError(
                    f"{role} exited with status {proc.returncode}:\n{tail(self.logs[role])}"
                )

    async def begin(self, admin: Redis) -> None:
        """The measured window starts: snapshot CPU, attach samplers."""
        self._cpu0 = self.cpu_now()
        if self.opts.profile:
            await admin.config_resetstat()
        if self.opts.profile == "pyspy":
            pyspy = shutil.which("py-spy", path=str(STREAMPROC.parent)) or shutil.which("py-spy")
            if pyspy is None:
                raise BenchError("py-spy not found: .venv/bin/pip install py-spy")
            pids = {role: proc.pid for role, proc in self.procs.items()}
            pids["bench"] = os.getpid()  # the submitter, for comparison
            for role, pid in pids.items():
                out = self.opts.profile_dir / f"{self.scenario}-{role}.txt"
                argv = [pyspy, "record", "--pid", str(pid), "--format", "raw"]
                argv += ["--nolineno", "--idle", "--rate", "200", "-o", str(out)]
                log = self.opts.log_dir / f"{self.scenario}-{role}-pyspy.log"
                self.samplers[role] = spawn(argv, log)

    async def end(self, admin: Redis) -> dict[str, float | None]:
        """The measured window ends: CPU used since :meth:`begin`; samplers write out."""
        after = self.cpu_now()
        for proc in self.samplers.values():
            await reap(proc, signal.SIGINT, 30)
        if self.opts.profile:
            text = commandstats(await admin.info("commandstats"))
            path = self.opts.profile_dir / f"{self.scenario}-redis.summary.txt"
            path.write_text(text + "\n")
            say(f"\n== redis-server commands during {self.scenario} ==\n{text}")
        used: dict[str, float | None] = {}
        for role, now in after.items():
            before = self._cpu0.get(role)
            if now is None or before is None:
                used[role] = self.cpu_sys[role] = None
            else:
                used[role] = round(now[0] + now[1] - before[0] - before[1], 3)
                self.cpu_sys[role] = round(now[1] - before[1], 2)
        return used

    def cpu_now(self) -> dict[str, tuple[float, float] | None]:
        return {
            "worker": cpu_split(self.procs["worker"].pid),
            "resolver": cpu_split(self.procs["resolver"].pid),
            "redis": cpu_split(self.opts.redis_pid),
            "bench": cpu_split(os.getpid()),
        }

    async def stop(self) -> None:
        for proc in self.samplers.values():
            await reap(proc, signal.SIGINT, 10)
        await asyncio.gather(*(reap(p, signal.SIGTERM, 20) for p in self.procs.values()))
        if self.opts.profile:
            for role in (*self.procs, *(["bench"] if self.opts.profile == "pyspy" else [])):
                summarise_profile(self.opts, self.scenario, role)


@contextlib.asynccontextmanager
async def engine(opts: Options, admin: Redis, scenario: str) -> AsyncIterator[Engine]:
    eng = Engine(opts, scenario)
    try:
        await eng.start(admin)
        yield eng
    finally:
        await eng.stop()


class EventWatcher:
    """Follows the shard's events stream until ``expected`` workflows ended."""

    def __init__(
        self,
        redis: Redis,
        stream: str,
        cursor: bytes,
        expected: int,
        check: Callable[[], None] = lambda: None,
        submitted: dict[bytes, float] | None = None,
        keyspace: Keyspace | None = None,
    ) -> None:
        self.check = check
        self.on_stall: Callable[[], Coroutine[Any, Any, str]] | None = None
        self.submitted = submitted
        self.keyspace = keyspace
        self.redis = redis
        self.stream = stream
        self.cursor = cursor
        self.expected = expected
        self.ended: dict[bytes, int] = {}  # workflow -> completed/failed entry ms (Redis clock)
        self.failed = 0

    async def run(self) -> None:
        cursor = self.cursor
        progress = time.monotonic()
        while len(self.ended) < self.expected:
            reply = await self.redis.xread({self.stream: cursor}, count=1000, block=1000)
            self.check()
            if reply and len(reply[0][1]) < 1000:
                # Caught up: read again a little later, so following the stream costs one
                # XREAD per POLL_SECONDS rather than one per event (times come from the
                # entries, so polling changes no figure).
                await asyncio.sleep(POLL_SECONDS)
            if not reply:
                if time.monotonic() - progress > STALL_SECONDS:
                    raise BenchError(
                        f"no event for {STALL_SECONDS:.0f}s: "
                        f"{len(self.ended)}/{self.expected} workflows ended"
                        + await self.describe_stuck()
                        + (await self.on_stall() if self.on_stall else "")
                    )
                continue
            progress = time.monotonic()
            for _, entries in reply:
                for entry_id, fields in entries:
                    cursor = entry_id
                    kind = fields.get(b"kind")
                    if kind == b"completed" or kind == b"failed":
                        self.ended[fields[b"wf"]] = entry_ms(entry_id)
                        self.failed += kind == b"failed"

    async def describe_stuck(self, limit: int = 5) -> str:
        """The state of a few submitted workflows that never ended, for the error."""
        if self.submitted is None or self.keyspace is None:
            return ""
        stuck = [wf for wf in self.submitted if wf not in self.ended]
        lines = [f"\n{len(stuck)} submitted workflows never ended; the first {limit}:"]
        for wf in stuck[:limit]:
            state = await folded.workflow_hash(self.redis, self.keyspace, wf.decode())
            brief = {
                k.decode(): v.decode(errors="replace")[:60]
                for k, v in state.items()
                if k.split(b":")[0].decode() in BRIEF_FIELDS
            }
            lines.append(f"  {wf.decode()}: {brief or 'no workflow hash'}")
        ks = self.keyspace
        for stream in (ks.tasks(0, "noop"), ks.done(0)):
            with contextlib.suppress(ResponseError):
                for group in await self.redis.xinfo_groups(stream):
                    keep = ("name", "pending", "last-delivered-id", "entries-read", "lag")
                    brief = {k: group.get(k) for k in keep}
                    lines.append(
                        f"  {stream} group {brief}, length {await self.redis.xlen(stream)}"
                    )
        targets = {wf for wf in stuck[:limit]}
        for stream in (ks.tasks(0, "noop"), ks.done(0), ks.dead_done(0), ks.dead(0, "noop")):
            with contextlib.suppress(ResponseError):
                for entry_id, fields in await self.redis.xrevrange(stream, count=20_000):
                    if fields.get(b"wf") in targets:
                        lines.append(f"  {stream} {entry_id.decode()}: {fields}")
        return "\n".join(lines)


async def settle(admin: Redis) -> None:
    """Flush the data set and rewrite the AOF, so each scenario starts alike."""
    await admin.flushall()
    with contextlib.suppress(ResponseError):  # "already in progress"
        await admin.bgrewriteaof()
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        info = await admin.info("persistence")
        if not info.get("aof_rewrite_in_progress") and not info.get("aof_rewrite_scheduled"):
            return
        await asyncio.sleep(0.05)


# -- engine scenarios ------------------------------------------------------------------------


async def submit_scenario(
    opts: Options,
    admin: Redis,
    name: str,
    spec: WorkflowSpec,
    workflows: int,
    batch: int | None,
    fresh: Fresh | None = None,
) -> Result:
    """``workflows`` of ``spec``, or, given ``fresh``, of a new spec of its shape per submit."""
    make = fresh or (lambda n: spec)
    async with engine(opts, admin, name) as eng:
        ks = eng.keyspace
        watch_redis = Redis.from_url(opts.url)
        async with Client(opts.url, ClientSettings(keyspace=ks)) as client:
            watcher = EventWatcher(watch_redis, ks.events(0), eng.cursor, workflows, eng.check)
            watcher.keyspace = ks
            watcher.on_stall = eng.dump_tasks
            submitted: dict[bytes, float] = {}
            watcher.submitted = submitted
            await eng.begin(admin)
            first = now_ms()
            try:
                if batch:
                    for offset in range(0, workflows, batch):
                        count = min(batch, workflows - offset)
                        t = now_ms()
                        specs = [make(offset + i) for i in range(count)]
                        for wf in await client.submit_many(specs):
                            submitted[wf.encode()] = t
                        eng.check()
                else:
                    for i in range(workflows):
                        t = now_ms()
                        submitted[(await client.submit(make(i))).encode()] = t
                        if i % 1000 == 0:
                            eng.check()
                submit_s = (now_ms() - first) / 1000
                await watcher.run()
            finally:
                await watch_redis.aclose()
            cpu = await eng.end(admin)
    if watcher.failed:
        raise BenchError(f"{name}: {watcher.failed} workflows failed")
    last = max(watcher.ended.values())
    dump(opts, name, first, submitted, watcher.ended)
    return Result(
        scenario=name,
        tasks=workflows * len(spec.tasks),
        workflows=workflows,
        seconds=(last - first) / 1000,
        latencies=[watcher.ended[wf] - t for wf, t in submitted.items()],
        latency="submit call start -> 'completed' event id",
        cpu=cpu,
        extra={"submit_seconds": round(submit_s, 3), "cpu_sys_s": eng.cpu_sys},
    )


async def lat_scenario(opts: Options, admin: Redis, fresh: Fresh | None = None) -> Result:
    """Open loop; given ``fresh``, a new spec of ``STAMPED``'s shape per submit."""
    make = fresh or (lambda n: STAMPED)
    rate = 500
    duration = 1.0 if opts.quick else 10.0
    workflows = int(rate * duration)
    async with engine(opts, admin, "lat") as eng:
        ks = eng.keyspace
        watch_redis = Redis.from_url(opts.url)
        async with Client(opts.url, ClientSettings(keyspace=ks)) as client:
            watcher = EventWatcher(watch_redis, ks.events(0), eng.cursor, workflows, eng.check)
            watcher.keyspace = ks
            watcher.on_stall = eng.dump_tasks
            submitted: dict[bytes, float] = {}
            watcher.submitted = submitted
            scheduled: dict[bytes, float] = {}
            returned: list[float] = []

            # Bounded below redis-py's default pool of 100 connections; waiting for a slot
            # shows in from_schedule_p99_ms.
            in_flight = asyncio.Semaphore(64)

            async def one(at: float, n: int) -> None:
                async with in_flight:
                    t = time.time_ns() / 1e6
                    wf = (await client.submit(make(n))).encode()
                submitted[wf], scheduled[wf] = t, at
                returned.append(now_ms())

            await eng.begin(admin)
            watching = asyncio.create_task(watcher.run())
            jobs: list[asyncio.Task[None]] = []
            first = now_ms()
            start = time.monotonic()
            launched = 0
            try:
                while launched < workflows:
                    due = min(workflows, int((time.monotonic() - start) * rate) + 1)
                    while launched < due:
                        at = first + launched * 1000 / rate
                        jobs.append(asyncio.create_task(one(at, launched)))
                        launched += 1
                    if watching.done():
                        break
                    await asyncio.sleep(1 / rate)
                await asyncio.gather(*jobs)
                await watching
            finally:
                watching.cancel()
                for job in jobs:
                    job.cancel()
                await watch_redis.aclose()
            cpu = await eng.end(admin)
            started = await start_stamps(admin, ks, list(submitted))
    if watcher.failed:
        raise BenchError(f"lat: {watcher.failed} workflows failed")
    last = max(watcher.ended.values())
    dump(opts, "lat", first, submitted, watcher.ended, started)
    done_lat = sorted(watcher.ended[wf] - int(t) for wf, t in submitted.items())
    sched_lat = sorted(started[wf] - t for wf, t in scheduled.items())
    return Result(
        scenario="lat",
        tasks=workflows,
        workflows=workflows,
        seconds=(last - first) / 1000,
        latencies=[started[wf] - t for wf, t in submitted.items()],
        latency="submit call start -> the agent's start (its own clock, microseconds)",
        cpu=cpu,
        extra={
            "cpu_sys_s": eng.cpu_sys,
            "offered_per_s": rate,
            "submitted_per_s": round(workflows / ((max(returned) - first) / 1000), 1),
            "completed_p50_ms": percentile(done_lat, 0.5),
            "completed_p99_ms": percentile(done_lat, 0.99),
            "from_schedule_p99_ms": percentile(sched_lat, 0.99),
        },
    )


async def submit_only_scenario(opts: Options) -> Result:
    """Sequential submits and PINGs, nothing else running: the ceiling of ``flat``'s loop."""
    count = 2_000 if opts.quick else 20_000
    async with Client(opts.url) as c:
        await c.submit(FLAT)  # warm: functions loaded, template cached, connection open
        started = time.perf_counter()
        for _ in range(count):
            await c.redis.ping()
        ping_s = time.perf_counter() - started
        redis0, bench0, first = cpu_seconds(opts.redis_pid), time.process_time(), now_ms()
        for _ in range(count):
            await c.submit(FLAT)
        last, redis1 = now_ms(), cpu_seconds(opts.redis_pid)
    return Result(
        scenario="submit-only",
        tasks=count,
        workflows=count,
        seconds=(last - first) / 1000,
        latencies=[],
        latency="none (submits only: no task runs)",
        cpu={
            "redis": None if redis0 is None or redis1 is None else redis1 - redis0,
            "bench": time.process_time() - bench0,
        },
        extra={"ping_per_s": round(count / ping_s)},
    )


async def start_stamps(redis: Redis, keyspace: Keyspace, ids: list[bytes]) -> dict[bytes, float]:
    """Each workflow's task start in ms, as its agent stamped it (its result, in µs)."""
    asked = [(wf.decode(), [TaskField.RESULT.of("t1")]) for wf in ids]
    rows = await folded.hmget_many(redis, keyspace, asked)
    return {wf: int(cast(bytes, stamp)) / 1000 for wf, [stamp] in zip(ids, rows, strict=True)}


def dump(
    opts: Options,
    name: str,
    first: float,
    submitted: dict[bytes, float],
    ended: dict[bytes, int],
    started: dict[bytes, float] | None = None,
) -> None:
    """With --dump: one CSV line per workflow, times in ms from the first submit."""
    if not opts.dump_dir:
        return
    lines = ["workflow,submit_ms,started_ms,ended_ms"]
    for wf, t in sorted(submitted.items(), key=lambda item: item[1]):
        start = "" if started is None else f"{started[wf] - first:.3f}"
        lines.append(f"{wf.decode()},{t - first:.3f},{start},{ended[wf] - first:.1f}")
    (opts.dump_dir / f"{name}.csv").write_text("\n".join(lines) + "\n")


# -- the ceiling -----------------------------------------------------------------------------


async def produce(redis: Redis, stream: str, count: int) -> float:
    """XADD ``count`` entries in pipelines of 100; return the first call's start (ms)."""
    first = now_ms()
    for offset in range(0, count, 100):
        pipe = redis.pipeline(transaction=False)
        for _ in range(min(100, count - offset)):
            pipe.xadd(stream, LIMIT_FIELDS)  # type: ignore[arg-type]
        await pipe.execute()
    return first


async def consume(redis: Redis, stream: str, group: str, count: int) -> tuple[float, list[float]]:
    """XREADGROUP COUNT 100, one pipelined XACK per entry; return (last ack ms, latencies)."""
    acked = 0
    last = 0.0
    latencies: list[float] = []
    while acked < count:
        reply = cast(
            list[tuple[bytes, list[tuple[bytes, dict[bytes, bytes]]]]],
            await redis.xreadgroup(group, "c1", {stream: ">"}, count=100, block=1000),
        )
        for _, entries in reply or ():
            pipe = redis.pipeline(transaction=False)
            for entry_id, _ in entries:
                pipe.xack(stream, group, entry_id)
            await pipe.execute()
            last = now_ms()
            latencies += [last - entry_ms(entry_id) for entry_id, _ in entries]
            acked += len(entries)
    return last, latencies


async def limit_consumer_main(url: str, stream: str, group: str, count: int) -> None:
    """The ``limit`` consumer process: prints its result as one JSON line."""
    redis = Redis.from_url(url)
    try:
        await redis.ping()
        sys.stdout.buffer.write(b"ready\n")
        sys.stdout.flush()
        cpu0 = time.process_time()
        last, latencies = await consume(redis, stream, group, count)
        out = {"last_ms": last, "latencies": latencies, "cpu": time.process_time() - cpu0}
        sys.stdout.buffer.write(orjson.dumps(out) + b"\n")
    finally:
        await redis.aclose()


async def limit_scenario(opts: Options, admin: Redis, name: str) -> Result:
    """The best of LIMIT_RUNS runs (a ceiling, and one run lasts under a second)."""
    runs = [await limit_once(opts, admin, name) for _ in range(LIMIT_RUNS)]
    best = max(runs, key=lambda r: r.tasks_per_s)
    best.extra["runs_tasks_per_s"] = [round(r.tasks_per_s) for r in runs]
    return best


async def limit_once(opts: Options, admin: Redis, name: str) -> Result:
    count = 2_000 if opts.quick else 20_000
    stream, group = f"bench-limit-{uuid.uuid4().hex[:8]}", "g"
    await admin.xgroup_create(stream, group, id="0", mkstream=True)
    cpu_redis0 = cpu_seconds(opts.redis_pid)
    cpu_bench0 = time.process_time()
    consumer_cpu: float | None
    if name == "limit":
        argv = [sys.executable, str(SCRIPTS / "bench.py")]
        argv += ["--limit-consumer", opts.url, stream, group, str(count)]
        proc = spawn(argv, stdout=subprocess.PIPE)
        try:
            loop = asyncio.get_running_loop()
            assert proc.stdout is not None
            ready = await asyncio.wait_for(loop.run_in_executor(None, proc.stdout.readline), 30)
            if ready.strip() != b"ready":
                raise BenchError("the limit consumer did not start")
            first = await produce(admin, stream, count)
            line = await asyncio.wait_for(loop.run_in_executor(None, proc.stdout.read), 120)
        finally:
            await reap(proc, None, 10)
        if proc.returncode:
            raise BenchError(f"the limit consumer exited with status {proc.returncode}")
        result = orjson.loads(line)
        last, latencies, consumer_cpu = result["last_ms"], result["latencies"], result["cpu"]
        how = "XADD entry id -> XACK reply (producer: bench process, consumer: 2nd process)"
    else:
        consumer_redis = Redis.from_url(opts.url)
        try:
            consuming = asyncio.create_task(consume(consumer_redis, stream, group, count))
            first = await produce(admin, stream, count)
            last, latencies = await consuming
        finally:
            await consumer_redis.aclose()
        consumer_cpu = None
        how = "XADD entry id -> XACK reply (producer and consumer: 2 tasks of the bench process)"
    cpu_redis1 = cpu_seconds(opts.redis_pid)
    return Result(
        scenario=name,
        tasks=count,
        workflows=0,
        seconds=(last - first) / 1000,
        latencies=latencies,
        latency=how,
        cpu={
            "worker": consumer_cpu,
            "resolver": None,
            "redis": None if cpu_redis0 is None or cpu_redis1 is None else cpu_redis1 - cpu_redis0,
            "bench": time.process_time() - cpu_bench0,
        },
    )


def commandstats(info: dict[str, Any], top: int = 20) -> str:
    """INFO commandstats as a table, heaviest first (commands run by functions count too)."""
    rows = []
    for name, stats in info.items():
        if isinstance(stats, dict) and "usec" in stats:
            rows.append((int(stats["usec"]), int(stats["calls"]), name.removeprefix("cmdstat_")))
    rows.sort(reverse=True)
    total = sum(r[0] for r in rows if r[2] != "fcall") or 1
    lines = [
        f"  {'command':<16}{'calls':>9}{'usec/call':>11}{'seconds':>9}  share of non-FCALL time",
    ]
    for usec, calls, name in rows[:top]:
        share = "" if name == "fcall" else f"{100 * usec / total:5.1f}%"
        lines.append(f"  {name:<16}{calls:>9}{usec / calls:>11.2f}{usec / 1e6:>9.2f}  {share}")
    return "\n".join(lines)


# -- profiles --------------------------------------------------------------------------------

FRAME = re.compile(r"^(?P<fn>.*?) \((?P<file>[^()]*)\)$")
# Leaves that wait: asyncio's selector, an idle thread, and uvloop's loop, which runs in C
# under Runner.run (its own dispatching, which py-spy cannot tell apart, counts as waiting).
IDLE_LEAVES = (
    "select (selectors.py)",
    "_worker (concurrent/futures/thread.py)",
    "Runner.run (asyncio/runners.py)",
)


def _short(frame: str) -> str:
    match = FRAME.match(frame)
    if not match:
        return frame
    file = match["file"]
    for marker in ("site-packages/", "lib/python3.11/", f"{SCRIPTS.parent}/"):
        if marker in file:
            file = file.split(marker, 1)[1]
    return f"{match['fn']} ({file})"


def summarise_collapsed(path: Path, top: int = 20) -> str:
    """Self and inclusive time per function from py-spy's raw (collapsed) output."""
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    total = idle = 0
    for line in path.read_text(errors="replace").splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = [_short(f) for f in stack.split(";")]
        frames = [f for f in frames if not f.startswith("process ")]
        total += count
        if not frames or frames[-1].endswith(IDLE_LEAVES):
            idle += count
            continue
        own[frames[-1]] += count
        for frame in set(frames):
            inclusive[frame] += count
    busy = total - idle
    if not busy:
        return f"{path.name}: no busy samples"
    lines = [
        f"{path.name}: {total} samples, {100 * busy / total:.0f}% busy "
        f"({100 * idle / total:.0f}% waiting); percentages below are of busy samples",
        "  self time:",
    ]
    lines += [f"    {100 * n / busy:5.1f}%  {fn}" for fn, n in own.most_common(top)]
    lines.append("  inclusive time:")
    lines += [f"    {100 * n / busy:5.1f}%  {fn}" for fn, n in inclusive.most_common(top + 15)]
    return "\n".join(lines)


def summarise_profile(opts: Options, scenario: str, role: str) -> None:
    if opts.profile == "pyspy":
        path = opts.profile_dir / f"{scenario}-{role}.txt"
        if not path.exists():
            say(f"no py-spy output at {path} (see {opts.log_dir})")
            return
        text = summarise_collapsed(path)
    else:
        import io
        import pstats

        path = opts.profile_dir / f"{scenario}-{role}.prof"
        if not path.exists():
            say(f"no cProfile output at {path}")
            return
        buf = io.StringIO()
        stats = pstats.Stats(str(path), stream=buf)
        stats.sort_stats("tottime").print_stats(20)
        stats.sort_stats("cumulative").print_stats(30)
        text = buf.getvalue()
    summary = path.with_suffix(".summary.txt")
    summary.write_text(text + "\n")
    say(f"\n== profile of the {role} during {scenario} ({path}) ==\n{text}")


# -- main ------------------------------------------------------------------------------------


async def run(args: argparse.Namespace, server: EmbeddedRedis, log_dir: Path) -> list[Result]:
    import bench_chain  # these import this module as "bench": see main()
    import bench_engine_ir
    import bench_memory
    import bench_redis_cpu
    import bench_redis_ir
    import bench_submit
    import bench_submit_ir

    opts = Options(
        url=server.url,
        redis_pid=server.process.pid if server.process else None,
        quick=args.quick,
        concurrency=args.concurrency,
        profile=args.profile,
        profile_dir=Path(args.profile_dir),
        log_dir=log_dir,
        dump_dir=Path(args.dump) if args.dump else None,
    )
    if opts.dump_dir:
        opts.dump_dir.mkdir(parents=True, exist_ok=True)
    if opts.profile:
        opts.profile_dir.mkdir(parents=True, exist_ok=True)
    scale = 10 if args.quick else 1
    scenarios: dict[str, Callable[[], Coroutine[Any, Any, Result]]] = {
        "limit": lambda: limit_scenario(opts, admin, "limit"),
        "limit-1proc": lambda: limit_scenario(opts, admin, "limit-1proc"),
        "flat": lambda: submit_scenario(opts, admin, "flat", FLAT, 20_000 // scale, None),
        "flat-batch": lambda: submit_scenario(
            opts, admin, "flat-batch", FLAT, 20_000 // scale, 100
        ),
        "dag": lambda: submit_scenario(opts, admin, "dag", DAG, 2_000 // scale, None),
        "lat": lambda: lat_scenario(opts, admin),
        "submit-only": lambda: submit_only_scenario(opts),
        "submit-cpu": lambda: bench_submit.submit_cpu_scenario(opts.url, opts.quick),
        "submit-ir": lambda: bench_submit_ir.submit_ir_scenario(opts.url, opts.quick),
        "engine-ir": lambda: bench_engine_ir.engine_ir_scenario(opts.url, opts.quick),
        "redis-cpu": lambda: bench_redis_cpu.redis_cpu_scenario(opts.url, admin, opts.quick),
        "redis-ir": lambda: bench_redis_ir.redis_ir_scenario(opts.quick),
        "chain": lambda: bench_chain.chain_scenario(opts, admin),
        "memory": lambda: bench_memory.memory_scenario(opts, admin),
    }
    wanted = args.only or ([] if args.peers else list(ALL_SCENARIOS))
    # The ratio needs the ceiling: measure it first whenever anything else runs.
    order = (["limit"] if "limit" in wanted or (wanted and not args.no_limit) else []) + [
        s for s in wanted if s != "limit"
    ]
    admin = Redis.from_url(server.url)
    results: list[Result] = []
    limit: Result | None = None
    try:
        if args.peers:
            import bench_peers

            results += await bench_peers.compare(opts, admin, args.reps or (1 if args.quick else 3))
        for name in order:
            await settle(admin)
            say(f"running {name} ...")
            result = await scenarios[name]()
            if name == "limit":
                limit = result
            if limit is not None and limit.tasks_per_s and name not in UNBOUNDED_BY_LIMIT:
                result.ratio_to_limit = result.tasks_per_s / limit.tasks_per_s
            results.append(result)
            row = result.row()
            if args.json:
                sys.stdout.buffer.write(orjson.dumps(row) + b"\n")
                sys.stdout.flush()
            say(
                f"  {name}: {row['tasks']} tasks in {row['seconds']}s = "
                f"{row['tasks_per_s']}/s, p50 {row['p50_ms']} ms, p99 {row['p99_ms']} ms"
            )
    finally:
        await admin.aclose()
    return results


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    doc = __doc__ or ""
    parser = argparse.ArgumentParser(
        prog="scripts/bench",
        description=doc.split("\n\n", 1)[0],
        epilog=doc.split("\n\n", 1)[1],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--quick", action="store_true", help="a tenth of the work")
    parser.add_argument("--json", action="store_true", help="one JSON object per scenario")
    parser.add_argument(
        "--only", type=_scenario_list, help=f"comma separated: {','.join(ALL_SCENARIOS)}"
    )
    parser.add_argument(
        "--no-limit", action="store_true", help="with --only: skip the ceiling (no ratio)"
    )
    parser.add_argument("--concurrency", type=int, default=64, help="worker concurrency")
    parser.add_argument(
        "--profile",
        choices=("pyspy", "cprofile"),
        help="profile worker and resolver (py-spy: during the measured window; cProfile: the "
        "whole process) and print hotspots; slows the run",
    )
    parser.add_argument(
        "--profile-dir",
        default=str(Path(tempfile.gettempdir()) / "streamproc-bench-profile"),
        help="where profiles and their summaries go",
    )
    parser.add_argument(
        "--keep-logs",
        action="store_true",
        help="keep the daemons' and redis-server's logs after a good run",
    )
    parser.add_argument("--dump", metavar="DIR", help="write each workflow's timeline as CSV")
    parser.add_argument(
        "--peers",
        action="store_true",
        help="flat, dag and lat through streamproc, taskiq and Celery, alternating, with the "
        "ratio to the best peer (installs the bench extra if missing); then the --only "
        "scenarios, if given",
    )
    parser.add_argument("--reps", type=int, help="with --peers: runs of each (3; --quick: 1)")
    parser.add_argument("--limit-consumer", nargs=4, help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def _scenario_list(text: str) -> list[str]:
    names = [n.strip() for n in text.split(",") if n.strip()]
    unknown = [n for n in names if n not in ALL_SCENARIOS + EXTRA_SCENARIOS]
    if unknown or not names:
        known = ", ".join(ALL_SCENARIOS + EXTRA_SCENARIOS)
        raise argparse.ArgumentTypeError(f"unknown scenario {','.join(unknown)} (known: {known})")
    return names


def main(argv: Sequence[str]) -> int:
    # The scenario modules import this one by name: give them this copy, not a second one
    # (which would register the no-op agent again).
    sys.modules.setdefault("bench", sys.modules[__name__])
    args = parse_args(argv)
    if args.limit_consumer:
        url, stream, group, count = args.limit_consumer
        event_loop.run(limit_consumer_main(url, stream, group, int(count)))
        return 0
    if shutil.which("redis-server") is None:
        say("error: redis-server is not on PATH (scripts/setup installs it with apt-get/dnf/brew)")
        return 2
    if not STREAMPROC.exists():
        say(f"error: {STREAMPROC} is missing: run scripts/setup first")
        return 2
    if args.peers and not peers_installed():
        say("installing the bench extra (the peers' packages): scripts/setup bench")
        subprocess.run([str(SCRIPTS / "setup"), "bench"], check=True)
    signal.signal(signal.SIGTERM, _on_sigterm)
    log_dir = Path(tempfile.mkdtemp(prefix="streamproc-bench-"))
    port = free_port()
    while port == 6379:
        port = free_port()
    server = EmbeddedRedis(port)
    ok = False
    started = time.monotonic()
    try:
        server.start()
        start_watchdog(server)
        say(f"redis-server {server.url} (appendonly, data in {server.data_dir}); logs in {log_dir}")
        results = event_loop.run(run(args, server, log_dir))
        ok = True
    except BenchError as exc:
        say(f"error: {exc}\n(daemon logs kept in {log_dir})")
        return 1
    except KeyboardInterrupt:
        say("interrupted")
        return 130
    finally:
        for proc in list(_live):
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        with contextlib.suppress(OSError):
            shutil.copy(server.data_dir / "redis.log", log_dir / "redis.log")
        server.cleanup()
        if ok and not args.keep_logs:
            shutil.rmtree(log_dir, ignore_errors=True)
    if not args.json:
        print(render_table([r.row() for r in results]))
    if args.peers:
        import bench_peers

        print("\n" + bench_peers.ratios(results))
    say(f"total {time.monotonic() - started:.1f}s")
    return 0


def peers_installed() -> bool:
    import importlib.util

    return all(importlib.util.find_spec(name) for name in ("taskiq_redis", "celery"))


def _on_sigterm(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
