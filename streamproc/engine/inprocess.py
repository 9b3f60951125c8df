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
    redis: RedisSettings, keyspace: Keyspace, agents: Mapping[str, AgentFn]
) -> AsyncIterator[None]:
    """Serve ``agents`` until the block ends, then stop gracefully."""
    stop = asyncio.Event()
    settings = WorkerSettings(agents=tuple(sorted(agents)), keyspace=keyspace)
    async with asyncio.TaskGroup() as engine:
        engine.create_task(Resolver(redis, ResolverSettings(keyspace=keyspace)).run(stop))
        engine.create_task(Worker(redis, settings, agents).run(stop))
        try:
            yield
        finally:
            stop.set()
