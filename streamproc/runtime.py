"""What a worker offers its agents besides the task: where Redis is, the keyspace, the
services its agents share (an HTTP session, a search cache) and their clean-ups.

Each task carries its worker's runtime (:attr:`streamproc.Task.runtime`), so an agent reaches
these through what it is handed, and two workers in one process never share them.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TypeVar, cast

from streamproc.config import RedisSettings
from streamproc.store.keys import Keyspace

Cleanup = Callable[[], Awaitable[None]]
T = TypeVar("T")


@dataclass(eq=False)
class Runtime:
    redis: RedisSettings
    keyspace: Keyspace
    _cleanups: list[Cleanup] = field(default_factory=list, init=False, repr=False)
    _services: dict[Callable[[Runtime], object], object] = field(
        default_factory=dict, init=False, repr=False
    )

    def on_close(self, cleanup: Cleanup) -> None:
        """Run ``cleanup`` when the worker stops (last registered, first run)."""
        self._cleanups.append(cleanup)

    def service(self, build: Callable[[Runtime], T]) -> T:
        """This worker's one instance of what ``build`` makes, built on the first call: tasks
        share a connection or cache instead of opening their own.  ``build`` registers what
        must be closed with :meth:`on_close`; after :meth:`close` the next call builds anew."""
        if build not in self._services:
            self._services[build] = build(self)
        return cast(T, self._services[build])

    async def close(self) -> None:
        self._services.clear()
        while self._cleanups:
            await self._cleanups.pop()()
