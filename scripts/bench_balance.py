"""Load-balancing benchmark: the seed workflow against a rate-limited search API, under three
ways of sizing the calls (run it as ``scripts/bench_balance``; not a test).

The API is a local :class:`~streamproc.testing.fakes.LimitedSerpApi` in the bench process: at most
``--rate`` R answers a second (a token bucket of R tokens; above it a 429 with a whole-second
Retry-After), each admitted answer taking 50 ms + 20 ms per other request in flight.  Every
configuration gets a fresh fake, a fresh namespace on one private redis-server (flushed in
between), two worker processes serving the five agents of ``agents/agentic.py`` with
``--concurrency 32``, and one resolver.  It then runs N copies of
``streamproc/examples/agentic.yaml`` (t3's instances, one per step of the plan, and t5
search), all submitted at once.  Copy n searches within topic ``... #n`` in t3 (its adjusted
input too) and ``... #n`` in t5, the same queries in every configuration, so the search cache
answers nothing and every task loads the API.

Configurations:

``prototype``   the prototype's ``adjust_thread_count`` gates each worker process's searches
                (``bench_balance_worker.PrototypeGate``: 2 when the last 10 searches averaged
                over 2 s, else 5 with more than 5 ready, else 3); adaptive limit fixed at 32
                (above the gate), no shared limits, breaker off.
``fixed-32``    32 searches in flight per process at most; adaptive limit fixed at 32, no
                shared limits, breaker off.
``streamproc``  ``STREAMPROC_SERPAPI_RATE=R`` (shared GCRA limit in Redis; ``_BURST`` from
                ``--burst``, default 1 where the API allows R), adaptive limit (default
                settings), breaker on, ``worker --autoscale``.

Columns: ``goodput`` is the fake's 200 answers per second of the run, which lasts from the
first submit to the last workflow's end (``seconds``); ``429s`` the refusals it sent; ``waits``
the ``task_waiting`` events (a search found the API out, so its task went back to wait as a
delayed retry); ``peak`` the most requests the fake had in flight.  ``t3 p50/p99`` is t3's
latency (all its instances') from its first queueing (the history entry of t2's ``task_done``,
written by the call that published t3) to its last end (the ``at`` of t3's last ``task_done``,
once its last instance is done), waits included.
``cache hits`` should be 0: it shows the cache hid no load.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import bench
import orjson
from bench import STREAMPROC, BenchError, EventWatcher, percentile, say
from redis.asyncio import Redis

from streamproc.client import Client
from streamproc.config import ClientSettings
from streamproc.outbound.cache import cache_stats
from streamproc.spec.model import TaskSpec, WorkflowSpec
from streamproc.store.keys import Keyspace
from streamproc.testing.embedded import EmbeddedRedis, free_port
from streamproc.testing.fakes import LimitedSerpApi

SEED = Path(__file__).resolve().parent.parent / "streamproc" / "examples" / "agentic.yaml"
AGENTS = ("description", "planning", "execution", "evaluation", "validation")
CONCURRENCY = 32


@dataclass(frozen=True)
class Config:
    """One way to run the workers: the launcher mode, extra environment and worker flags."""

    name: str
    mode: str = ""  # BENCH_BALANCE_MODE for bench_balance_worker; "" imports nothing
    env: tuple[tuple[str, str], ...] = ()
    flags: tuple[str, ...] = ()


def configs(rate: float, burst: int = 1) -> dict[str, Config]:
    breaker_off = (("STREAMPROC_SERPAPI_BREAKER", "off"),)
    shared = (("STREAMPROC_SERPAPI_RATE", f"{rate:g}/s"), ("STREAMPROC_SERPAPI_BURST", str(burst)))
    return {
        "prototype": Config("prototype", "prototype", breaker_off),
        "fixed-32": Config("fixed-32", "fixed", breaker_off),
        "streamproc": Config("streamproc", env=shared, flags=("--autoscale",)),
    }


def unique_spec(seed: WorkflowSpec, n: int) -> WorkflowSpec:
    """The seed workflow with every search query made unique by ``#n``."""
    return replace(seed, tasks=tuple(_unique_task(task, f" #{n}") for task in seed.tasks))


def _unique_task(task: TaskSpec, suffix: str) -> TaskSpec:
    data = dict(task.input) if isinstance(task.input, dict) else {}
    if task.agent == "execution":
        data = _unique_input(data, suffix)
    elif task.agent == "validation":
        data["query"] = f"{data.get('query', 'workflow completeness validation')}{suffix}"
    elif task.agent == "evaluation" and isinstance(data.get("adjust"), dict):
        data["adjust"] = {
            dep: _unique_input(value, suffix) for dep, value in data["adjust"].items()
        }
    else:
        return task
    return replace(task, input=data)


def _unique_input(value: Any, suffix: str) -> Any:
    """An execution input whose searches are unique: each is ``<topic> <step of the plan>``."""
    if isinstance(value, dict) and "topic" in value:
        return {**value, "topic": f"{value['topic']}{suffix}"}
    return value


# -- one configuration -----------------------------------------------------------------------


@dataclass
class Run:
    """Two workers and a resolver on a fresh namespace, calling a fresh fake API."""

    config: Config
    url: str
    log_dir: Path
    fake: LimitedSerpApi
    keyspace: Keyspace
    procs: dict[str, subprocess.Popen[bytes]]

    def env(self) -> dict[str, str]:
        """This shell's environment without any search, model or streamproc settings, plus
        the fake's and the configuration's."""
        keep = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith("STREAMPROC_") and not k.endswith("_API_KEY") and k != "SERPAPI_KEY"
        }
        path = os.pathsep.join(p for p in (str(bench.SCRIPTS), os.environ.get("PYTHONPATH")) if p)
        return {
            **keep,
            "PYTHONPATH": path,
            "SERPAPI_KEY": self.fake.key,
            "STREAMPROC_SERPAPI_URL": self.fake.base_url,
            "STREAMPROC_SERPAPI_PLAIN_HTTP": self.fake.address,
            "STREAMPROC_SEARCH_ORDER": "serpapi",
            "BENCH_BALANCE_MODE": self.config.mode,
            **dict(self.config.env),
        }

    def start(self) -> None:
        common = ["--redis-url", self.url, "--namespace", self.keyspace.namespace]
        common += ["--log-format", "text"]
        worker = [str(STREAMPROC), "worker", *common, "--agent", ",".join(AGENTS)]
        worker += ["--concurrency", str(CONCURRENCY), *self.config.flags]
        if self.config.mode:
            worker += ["--import", "bench_balance_worker"]
        argvs = {
            "worker-1": worker,
            "worker-2": worker,
            "resolver": [str(STREAMPROC), "resolver", *common],
        }
        for role, argv in argvs.items():
            log = self.log_dir / f"{self.config.name}-{role}.log"
            self.procs[role] = bench.spawn(argv, log, env=self.env())

    def check(self) -> None:
        """Raise if a daemon died."""
        for role, proc in self.procs.items():
            if proc.poll() is not None:
                log = self.log_dir / f"{self.config.name}-{role}.log"
                raise BenchError(f"{role} exited with status {proc.returncode}:\n{bench.tail(log)}")

    async def wait_ready(self, redis: Redis, timeout: float = 30.0) -> None:
        """Until every reader has called XREADGROUP (one per agent in each worker, one in the
        resolver), so no process joins late.  Blocked reads create no consumer, so the
        group's consumers cannot tell."""
        wanted = 2 * len(AGENTS) + 1
        deadline = time.monotonic() + timeout
        while True:
            self.check()
            clients = await redis.client_list()
            if sum(c.get("cmd") == "xreadgroup" for c in clients) >= wanted:
                return
            if time.monotonic() > deadline:
                raise BenchError(f"{self.config.name}: daemons not reading after {timeout}s")
            await asyncio.sleep(0.1)

    async def stop(self) -> None:
        await asyncio.gather(*(bench.reap(p, signal.SIGTERM, 20) for p in self.procs.values()))


async def run_config(
    config: Config, url: str, log_dir: Path, args: argparse.Namespace
) -> dict[str, Any]:
    fake = LimitedSerpApi(rate=args.rate)
    await fake.start()
    keyspace = Keyspace(f"balance-{config.name}-{uuid.uuid4().hex[:8]}")
    run = Run(config, url, log_dir, fake, keyspace, {})
    redis = Redis.from_url(url)
    try:
        run.start()
        await run.wait_ready(redis)
        return await measure(run, redis, args)
    finally:
        await run.stop()
        await redis.aclose()
        await fake.close()


async def measure(run: Run, redis: Redis, args: argparse.Namespace) -> dict[str, Any]:
    seed = WorkflowSpec.load(SEED)
    specs = [unique_spec(seed, n) for n in range(args.workflows)]
    ks = run.keyspace
    # A fresh namespace: its events stream starts with this run.
    watcher = EventWatcher(redis, ks.events(0), b"0-0", len(specs), run.check)
    async with Client(run.url, ClientSettings(keyspace=ks)) as client:
        first = bench.now_ms()
        ids = await client.submit_many(specs)
        async with asyncio.timeout(args.timeout):
            await watcher.run()
        seconds = (max(watcher.ended.values()) - first) / 1000
        histories = [await client.history(wf) for wf in ids]
    latencies = sorted(ms for events in histories if (ms := t3_latency(events)) is not None)
    waits = sum(e.get("kind") == "task_waiting" for events in histories for e in events)
    hits = sum(s["hit"] for s in (await cache_stats(redis, ks)).values())
    p50, p99 = percentile(latencies, 0.5), percentile(latencies, 0.99)
    return {
        "config": run.config.name,
        "rate": args.rate,
        "workflows": len(ids),
        "completed": len(watcher.ended) - watcher.failed,
        "failed": watcher.failed,
        "seconds": round(seconds, 2),
        "goodput_per_s": round(run.fake.served / seconds, 2),
        "ok_calls": run.fake.served,
        "rejected_429": run.fake.rejected,
        "task_waits": waits,
        "peak_in_flight": run.fake.peak_in_flight,
        "t3_p50_s": None if p50 is None else round(p50 / 1000, 2),
        "t3_p99_s": None if p99 is None else round(p99 / 1000, 2),
        "cache_hits": hits,
    }


def t3_latency(history: list[dict[str, str]]) -> float | None:
    """Milliseconds from t3's first queueing to its last end, from a workflow's history."""
    queued = ended = None
    for event in history:
        if event.get("kind") != "task_done":
            continue
        if event.get("task") == "t2" and queued is None:
            queued = bench.entry_ms(event["id"].encode())
        elif event.get("task") == "t3":
            ended = int(event["at"])
    return None if queued is None or ended is None else float(ended - queued)


# -- main ------------------------------------------------------------------------------------


def render_table(rows: list[dict[str, Any]]) -> str:
    def cell(value: Any) -> str:
        return "-" if value is None else str(value)

    columns = [
        ("config", "config", 12),
        ("completed", "done", 6),
        ("failed", "failed", 7),
        ("seconds", "seconds", 9),
        ("goodput_per_s", "goodput/s", 11),
        ("ok_calls", "ok calls", 10),
        ("rejected_429", "429s", 7),
        ("task_waits", "waits", 7),
        ("peak_in_flight", "peak", 6),
        ("t3_p50_s", "t3 p50 s", 10),
        ("t3_p99_s", "t3 p99 s", 10),
        ("cache_hits", "cache hits", 12),
    ]
    head = "".join(
        f"{title:<{w}}" if key == "config" else f"{title:>{w}}" for key, title, w in columns
    )
    lines = [head, "-" * len(head)]
    for row in rows:
        lines.append(
            "".join(
                f"{cell(row[key]):<{w}}" if key == "config" else f"{cell(row[key]):>{w}}"
                for key, _, w in columns
            )
        )
    return "\n".join(lines)


async def run_all(
    args: argparse.Namespace, server: EmbeddedRedis, log_dir: Path
) -> list[dict[str, Any]]:
    admin = Redis.from_url(server.url)
    rows = []
    try:
        for name in args.configs:
            await bench.settle(admin)
            say(f"running {name}: {args.workflows} workflows, API at {args.rate:g}/s ...")
            row = await run_config(configs(args.rate, args.burst)[name], server.url, log_dir, args)
            rows.append(row)
            if args.json:
                sys.stdout.buffer.write(orjson.dumps(row) + b"\n")
                sys.stdout.flush()
            say(f"  {row}")
    finally:
        await admin.aclose()
    return rows


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    doc = __doc__ or ""
    parser = argparse.ArgumentParser(
        prog="scripts/bench_balance",
        description=doc.split("\n\n", 1)[0],
        epilog=doc.split("\n\n", 1)[1],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--quick", action="store_true", help="60 workflows instead of 300")
    parser.add_argument("--json", action="store_true", help="one JSON object per configuration")
    parser.add_argument("--workflows", type=int, help="workflows per configuration")
    parser.add_argument("--rate", type=float, default=20.0, help="the API's requests/s (R)")
    parser.add_argument(
        "--burst", type=int, default=1, help="STREAMPROC_SERPAPI_BURST of streamproc (default 1)"
    )
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds per configuration")
    parser.add_argument(
        "--configs",
        type=lambda text: [c.strip() for c in text.split(",") if c.strip()],
        default=list(configs(1.0)),
        help=f"comma separated, of {','.join(configs(1.0))}",
    )
    parser.add_argument("--keep-logs", action="store_true", help="keep the daemons' logs")
    args = parser.parse_args(argv)
    args.workflows = args.workflows or (60 if args.quick else 300)
    unknown = set(args.configs) - set(configs(1.0))
    if unknown:
        parser.error(f"unknown configuration {', '.join(sorted(unknown))}")
    return args


def main(argv: Sequence[str]) -> int:
    args = parse_args(argv)
    if shutil.which("redis-server") is None:
        say("error: redis-server is not on PATH (scripts/setup installs it)")
        return 2
    log_dir = Path(tempfile.mkdtemp(prefix="streamproc-bench-balance-"))
    server = EmbeddedRedis(free_port())
    ok = False
    try:
        server.start()
        bench.start_watchdog(server)
        say(f"redis-server {server.url}; logs in {log_dir}")
        rows = asyncio.run(run_all(args, server, log_dir))
        ok = True
    except (BenchError, TimeoutError) as exc:
        say(f"error: {exc or 'a configuration ran past --timeout'}\n(logs kept in {log_dir})")
        return 1
    finally:
        for proc in list(bench._live):
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        server.cleanup()
        if ok and not args.keep_logs:
            shutil.rmtree(log_dir, ignore_errors=True)
    if not args.json:
        print(render_table(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
