"""What a worker process offers its agents besides the task: where Redis is, the keyspace,
and a place to register clean-ups (an HTTP session to close, say).

Agents that keep state in Redis (the search cache) or hold connections reach for
:func:`current` lazily, on their first task; the worker binds it before it reads.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from streamproc.config import RedisSettings
from streamproc.errors import ConfigError
from streamproc.store.keys import Keyspace

Cleanup = Callable[[], Awaitable[None]]


@dataclass
class Runtime:
    redis: RedisSettings
    keyspace: Keyspace
    cleanups: list[Cleanup] = field(default_factory=list)

    def on_close(self, cleanup: Cleanup) -> None:
        """Run ``cleanup`` when the worker stops (last registered, first run)."""
        self.cleanups.append(cleanup)

    async def close(self) -> None:
        while self.cleanups:
            await self.cleanups.pop()()


_current: Runtime | None = None


def bind(runtime: Runtime) -> None:
    global _current
    _current = runtime


def current() -> Runtime:
    if _current is None:
        raise ConfigError("no worker is running in this process")
    return _current
