"""Fixtures: a real redis-server per session, a fresh namespace per test, and an in-process
engine (resolver + worker) with test timings."""

from __future__ import annotations

import asyncio
import io
import os
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator

import pytest
from redis.asyncio import Redis

from streamproc import (
    Client,
    ClientSettings,
    Keyspace,
    RedisSettings,
    ResolverSettings,
    WorkerSettings,
)
from streamproc.engine.resolver import Resolver
from streamproc.engine.worker import Worker
from streamproc.ops.events import with_start
from streamproc.registry import registered
from streamproc.store.fields import TaskField
from streamproc.testing.embedded import EmbeddedRedis
from streamproc.transport import retrying
from tests import agents_for_tests  # noqa: F401  (registers the test agents)
from tests.daemon import Daemon


@pytest.fixture(scope="session")
def redis_server() -> Iterator[EmbeddedRedis]:
    with EmbeddedRedis() as server:
        os.environ["STREAMPROC_TEST_LEDGER_URL"] = server.url
        yield server


@pytest.fixture
def redis_url(redis_server: EmbeddedRedis) -> str:
    return redis_server.url


@pytest.fixture
def keyspace() -> Keyspace:
    return Keyspace(namespace=f"t{uuid.uuid4().hex[:10]}")


@pytest.fixture
async def redis(redis_url: str) -> AsyncIterator[Redis]:
    client = Redis.from_url(redis_url)
    yield client
    await client.aclose()


def fast_worker(keyspace: Keyspace, agents: tuple[str, ...], **overrides: object) -> WorkerSettings:
    options: dict[str, object] = dict(
        agents=agents,
        keyspace=keyspace,
        concurrency=16,
        block_ms=200,
        visibility_timeout=3.0,
        heartbeat_interval=0.5,
        claim_interval=0.5,
        shutdown_grace=5.0,
    )
    options.update(overrides)
    return WorkerSettings(**options)  # type: ignore[arg-type]


def fast_resolver(keyspace: Keyspace) -> ResolverSettings:
    return ResolverSettings(
        keyspace=keyspace,
        block_ms=200,
        visibility_timeout=3.0,
        claim_interval=0.5,
        retry_base=0.05,
        retry_cap=0.2,
        release_interval=0.05,
        trim_interval=0.5,
    )


class Engine:
    """Resolver and workers running in this event loop; ``stop()`` shuts them down gracefully."""

    def __init__(self, redis_url: str, keyspace: Keyspace) -> None:
        self.redis = RedisSettings.from_url(redis_url)
        self.keyspace = keyspace
        self.stop_event = asyncio.Event()
        self.tasks: list[asyncio.Task[None]] = []

    def start_resolver(self) -> None:
        resolver = Resolver(self.redis, fast_resolver(self.keyspace))
        self.tasks.append(asyncio.create_task(resolver.run(self.stop_event)))

    def start_worker(self, agents: tuple[str, ...], **overrides: object) -> Worker:
        worker = Worker(self.redis, fast_worker(self.keyspace, agents, **overrides), registered())
        self.tasks.append(asyncio.create_task(worker.run(self.stop_event)))
        return worker

    async def stop(self) -> None:
        self.stop_event.set()
        _, pending = await asyncio.wait(self.tasks, timeout=30)
        if pending:
            stacks = io.StringIO()
            for task in asyncio.all_tasks():
                task.print_stack(file=stacks)
            raise AssertionError(f"engine did not stop within 30s:\n{stacks.getvalue()}")
        for task in self.tasks:
            task.result()


ALL_AGENTS = (
    "echo",
    "sleep",
    "flaky",
    "poison",
    "ledger",
    "fatal",
    "misconfigured",
    "writer",
    "judge",
    "patient",
    "retry_later",
    "fixable",
    "gate",
    "planner",
)


@pytest.fixture
async def engine(redis_url: str, keyspace: Keyspace) -> AsyncIterator[Engine]:
    """A resolver and one worker serving every test agent."""
    running = Engine(redis_url, keyspace)
    running.start_resolver()
    running.start_worker(ALL_AGENTS)
    yield running
    await running.stop()


@pytest.fixture
async def resolver_only(redis_url: str, keyspace: Keyspace) -> AsyncIterator[Engine]:
    """A resolver alone: the test brings its own workers (often as processes to kill)."""
    running = Engine(redis_url, keyspace)
    running.start_resolver()
    yield running
    await running.stop()


@pytest.fixture
async def client(redis_url: str, keyspace: Keyspace) -> AsyncIterator[Client]:
    async with Client(redis_url, ClientSettings(keyspace=keyspace), agents=registered()) as c:
        yield c


async def eventually(check, timeout: float = 20.0, interval: float = 0.05):  # type: ignore[no-untyped-def]
    """Await ``check()`` until it returns something truthy, or fail after ``timeout`` seconds."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        value = await check()
        if value:
            return value
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"condition not met within {timeout}s (last value {value!r})")
        await asyncio.sleep(interval)


async def outage_met(caplog: pytest.LogCaptureFixture) -> None:
    """Until a daemon of this process has met Redis down: it logged that it retries (the test
    clears ``caplog`` before it stops Redis)."""

    async def met() -> bool:
        return any(record.name == retrying.log.name for record in caplog.records)

    await eventually(met)


async def stowed(redis: Redis, keyspace: Keyspace, workflow_id: str) -> None:
    """Wait until the engine stowed an ended workflow (its hash gone): the process whose call
    ended it stows it just after (engine/stower.py)."""

    async def gone() -> bool:
        return not await redis.exists(keyspace.workflow(workflow_id))

    await eventually(gone)


def until(check: Callable[[], object], what: str, timeout: float = 10.0) -> None:
    """``eventually`` outside an event loop: call ``check()`` until it is truthy, or fail
    saying ``what`` was awaited after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout}s")
        time.sleep(0.05)


def with_starts(events: list[dict[str, str]]) -> list[dict[str, str]]:
    """The events with each start a ``task_done`` carries as the ``task_started`` it stands
    for, just before it (``ops/events.with_start``)."""
    return [shown for event in events for shown in with_start(event)]


async def some_task(client: Client, ids: list[str], state: str = "done") -> bool:
    """For ``eventually``: a task of one of these workflows is in ``state``."""
    states = [await client.get(workflow_id) for workflow_id in ids]
    return any(t.state == state for s in states for t in s.tasks)


async def unserved_workflow(client: Client, redis: Redis, agent: str) -> str:
    """A workflow whose task ``a`` is queued as ``agent``'s attempt 1 but was never published
    to that agent's stream: a test publishes it by hand (:func:`publish_by_hand`)."""
    async with Client(client.redis_settings, client.settings) as plain:
        workflow_id = await plain.submit({"tasks": [{"id": "a", "agent": "nobody"}]})
    await redis.hset(client.keyspace.workflow(workflow_id), TaskField.AGENT.of("a"), agent)
    return workflow_id


async def publish_by_hand(
    redis: Redis, keyspace: Keyspace, workflow_id: str, fields: dict[str, str | bytes]
) -> None:
    """XADD ``fields`` to their agent's stream as task ``a``'s current entry, as the engine
    publishes one: in one transaction, so no worker reads it before the workflow names it,
    with an id ahead of the clock (it must be known before the XADD)."""
    entry_id = f"{time.time_ns() // 1_000_000 + 1000}-0"
    shard = keyspace.shard_of(workflow_id)
    async with redis.pipeline(transaction=True) as pipe:
        pipe.xadd(keyspace.tasks(shard, str(fields["agent"])), fields, id=entry_id)  # type: ignore[arg-type]
        pipe.hset(keyspace.workflow(workflow_id), TaskField.ENTRY.of("a"), entry_id)
        await pipe.execute()


def worker_process(
    redis_url: str,
    keyspace: Keyspace,
    agents: str,
    *extra: str,
    env: dict[str, str] | None = None,
    ledger_url: str | None = None,
) -> Daemon:
    """``streamproc worker`` with the tests' visibility timeout (3 s), to be killed, stopped
    or terminated by a test; ``extra`` options come last, so they win."""
    return Daemon(
        redis_url,
        keyspace.namespace,
        "worker",
        "--agent",
        agents,
        "--visibility-timeout",
        "3",
        *extra,
        env=env,
        ledger_url=ledger_url,
    )


@pytest.fixture
def worker_processes(redis_url: str, keyspace: Keyspace) -> Iterator[Callable[..., Daemon]]:
    started: list[Daemon] = []

    def start(agents: str, *extra: str, env: dict[str, str] | None = None) -> Daemon:
        process = worker_process(redis_url, keyspace, agents, *extra, env=env)
        started.append(process)
        return process

    yield start
    for process in started:
        process.kill()
