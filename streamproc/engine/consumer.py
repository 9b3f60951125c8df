"""The shell both daemons share: a consumer in Redis's consumer groups.

A :class:`Consumer` owns two connections (commands, and a reader the client never retries),
its reads of streams in groups (group_reads.py), its consumer name, and the epoch check
that tells a Redis which came back empty from one that merely restarted.  A daemon (worker,
resolver) supplies what it joins, the loops it runs and how it leaves; the shell prepares
Redis, runs those loops beside the epoch watch, explains a failure a Redis reset caused, and
closes the connections.
"""

from __future__ import annotations

import asyncio
import os
import socket
import uuid
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import replace

from redis.asyncio import Redis

from streamproc.config import RedisSettings
from streamproc.engine.linger import Linger
from streamproc.store import functions
from streamproc.store.codec import Entry
from streamproc.store.keys import Keyspace
from streamproc.transport.epoch import Epoch
from streamproc.transport.group_reads import GroupReads
from streamproc.transport.preflight import check_server
from streamproc.transport.retrying import until_redis_answers

CLAIM_PAGES = 100  # bounds one sweep, so a huge pending list cannot starve the other loops
OnRestart = Callable[[], Awaitable[None]]


def consumer_name() -> str:
    """Unique per process and per daemon, so two daemons never share pending entries."""
    return f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"


async def claim_idle(
    redis: Redis, stream: str, group: str, consumer: str, min_idle_ms: int, count: int
) -> AsyncIterator[tuple[list[Entry], list[bytes]]]:
    """Take over ``group``'s entries idle for ``min_idle_ms`` (their consumer is gone), a page
    of XAUTOCLAIM at a time: each page's claimed entries, and the ids of pending entries whose
    payload was trimmed away (Redis has already dropped those from the pending list)."""
    start: bytes | str = "0-0"
    for _ in range(CLAIM_PAGES):
        start, entries, deleted = await redis.xautoclaim(
            stream, group, consumer, min_idle_ms, start, count=count
        )
        yield entries, deleted
        if start in (b"0-0", "0-0"):
            return


class Consumer(ABC):
    """A daemon that reads streams in consumer groups until its stop event is set."""

    def __init__(self, redis: RedisSettings, keyspace: Keyspace, block_ms: int) -> None:
        redis.check_block(block_ms)
        self.redis: Redis = redis.connect()
        # Reads are never retried by the client: a retried XREADGROUP > would skip the entries
        # whose reply was lost (see each daemon's _read_once).
        self.consumer = consumer_name()
        self.reads = GroupReads(replace(redis, command_retries=0), self.consumer)
        self.epoch = Epoch(self.redis, keyspace)

    @abstractmethod
    async def _join(self) -> None:
        """Create the groups this daemon reads, and load what it needs before its first read."""

    @abstractmethod
    async def _start_loops(self, loops: asyncio.TaskGroup, stop: asyncio.Event) -> None:
        """Start the daemon's loops in ``loops``.  The group waits for every loop, so each
        must end once ``stop`` is set; this may itself wait for ``stop``, to wind down in order."""

    @abstractmethod
    async def _leave(self) -> None:
        """Give up what this consumer holds, once every loop has ended."""

    async def _prepare(self) -> None:
        """Each step is idempotent: the caller retries the whole while Redis is down."""
        await check_server(self.redis)
        await self.epoch.establish()
        await functions.load(self.redis)
        await self._join()

    async def _serve(
        self,
        stop: asyncio.Event,
        watch_until: asyncio.Event | None = None,
        on_restart: OnRestart | None = None,
    ) -> None:
        """Run the loops beside the epoch watch (until ``watch_until``, by default ``stop``),
        then leave, and close both connections whatever happened.  A loop that failed because
        Redis came back empty (a NOGROUP, say) ends the daemon with :class:`RedisReset`, which
        names the cause, rather than with the symptom."""
        try:
            async with asyncio.TaskGroup() as loops:
                until = stop if watch_until is None else watch_until
                loops.create_task(self.epoch.watch(until, on_restart))
                await self._start_loops(loops, stop)
            await self._leave()
        except BaseExceptionGroup as errors:
            await self.epoch.raise_reset_behind(errors)
            raise
        finally:
            await self.redis.aclose()
            await self.reads.close()

    async def _read_loop(
        self,
        stop: asyncio.Event,
        linger: Linger,
        room: Callable[[], Awaitable[int]],
        read_once: Callable[[int], Awaitable[int]],
    ) -> None:
        """Until ``stop``: ask ``room`` how many entries to read (none: ask again), read them
        with ``read_once`` (which returns how many it got), and linger after a short read
        while entries arrive fast (see linger.py)."""
        while not stop.is_set():
            asked = await room()
            if asked <= 0:
                continue
            got = await until_redis_answers(read_once, asked)
            wait = linger.after_read(got, asked)
            if wait:
                await asyncio.sleep(wait)
