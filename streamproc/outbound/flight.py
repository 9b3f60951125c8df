"""Single flight: concurrent requests for one thing make one upstream call, across processes.

Within a process, callers of one key share one task.  Across processes that task first takes
a Redis lock on the key (SET NX PX ``lock_ttl``, released by token): the holder makes the
value and stores it where ``look`` finds it; the others ``look`` every ``poll_interval`` and,
if nothing appears within ``wait_timeout`` (holder slow or dead), make it themselves.  The
holder looks once more after taking the lock, because the value may have been stored between
the caller's miss and the lock.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from functools import partial
from typing import Generic, TypeVar

from redis.asyncio import Redis

log = logging.getLogger(__name__)
T = TypeVar("T")


class SingleFlight(Generic[T]):
    def __init__(
        self, redis: Redis, lock_ttl: float, wait_timeout: float, poll_interval: float
    ) -> None:
        self.redis = redis
        self.lock_ttl = lock_ttl
        self.wait_timeout = wait_timeout
        self.poll_interval = poll_interval
        self._flights: dict[str, asyncio.Task[T]] = {}

    async def run(
        self,
        lock_key: str,
        look: Callable[[], Awaitable[T | None]],
        make: Callable[[], Awaitable[T]],
    ) -> tuple[T, bool]:
        """``(value, shared)``; ``shared`` is True for a caller that joined another's task."""
        flight = self._flights.get(lock_key)
        if flight is not None:
            return await asyncio.shield(flight), True
        flight = asyncio.create_task(self._fly(lock_key, look, make))
        self._flights[lock_key] = flight
        flight.add_done_callback(partial(self._landed, lock_key))
        return await asyncio.shield(flight), False

    def _landed(self, lock_key: str, flight: asyncio.Task[T]) -> None:
        del self._flights[lock_key]
        if not flight.cancelled():
            flight.exception()  # retrieved here, as every caller that shared it may be gone

    async def _fly(
        self,
        lock_key: str,
        look: Callable[[], Awaitable[T | None]],
        make: Callable[[], Awaitable[T]],
    ) -> T:
        lock = self.redis.lock(
            lock_key,
            timeout=self.lock_ttl,
            blocking=False,
            thread_local=False,
            raise_on_release_error=False,
        )
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.wait_timeout
        while not await lock.acquire():
            if loop.time() >= deadline:
                log.warning("no value from the holder of %s; making it here", lock_key)
                return await make()
            await asyncio.sleep(self.poll_interval)
            found = await look()
            if found is not None:
                return found
        try:
            found = await look()
            return found if found is not None else await make()
        finally:
            await lock.release()
