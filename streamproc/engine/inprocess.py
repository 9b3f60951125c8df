"""A resolver and a worker inside the caller's event loop, for one-shot commands (``demo``,
``replay``) that need an engine for as long as they run and no daemon beside them."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager

from streamproc.config import RedisSettings, ResolverSettings, WorkerSettings
from streamproc.engine.resolver import Resolver
from streamproc.engine.worker import Worker
from streamproc.registry import AgentFn
from streamproc.store.keys import Keyspace


@asynccontextmanager
async def running_engine(
    redis: RedisSettings,
    keyspace: Keyspace,
    agents: Mapping[str, AgentFn],
    concurrency: int = WorkerSettings.concurrency,
) -> AsyncIterator[None]:
    """Serve ``agents`` until the block ends, then stop gracefully.  An error in the block
    reaches the caller as itself, not wrapped in the engine's task group, so a verb can
    report it in one line."""
    stop = asyncio.Event()
    failure: Exception | None = None
    settings = WorkerSettings(
        agents=tuple(sorted(agents)), keyspace=keyspace, concurrency=concurrency
    )
    async with asyncio.TaskGroup() as engine:
        engine.create_task(Resolver(redis, ResolverSettings(keyspace=keyspace)).run(stop))
        engine.create_task(Worker(redis, settings, agents).run(stop))
        try:
            yield
        except Exception as exc:
            failure = exc
        finally:
            stop.set()
    if failure is not None:
        raise failure
