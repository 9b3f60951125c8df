"""The event loop streamproc's commands and ``SyncClient`` run on: uvloop's (a runtime
dependency wherever it is built: not on Windows), else asyncio's own;
``STREAMPROC_EVENT_LOOP=asyncio`` chooses asyncio's anyway, for an agent library that needs it.

Every task a worker runs costs round trips to Redis, and so does every submit: uvloop spends
about half of what asyncio's selector loop does around each one (a PING's client CPU, 36
against 66 µs here), and ``scripts/bench`` runs ``flat`` and ``dag`` up to a tenth faster
with it (docs/benchmarks.md).  The code stays plain asyncio (``TaskGroup``, one stop event)
either way; an application that runs its own loop (``asyncio.run`` around ``Client``) keeps
the loop it chose.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

from streamproc.errors import ConfigError

T = TypeVar("T")
LoopFactory = Callable[[], asyncio.AbstractEventLoop]
uvloop_factory: LoopFactory | None
try:
    from uvloop import new_event_loop as uvloop_factory
except ImportError:  # not built for this platform
    uvloop_factory = None
CHOICE = "STREAMPROC_EVENT_LOOP"


def loop_factory() -> LoopFactory | None:
    """What makes a new event loop, for ``asyncio.Runner`` (None: asyncio's own)."""
    chosen = os.environ.get(CHOICE, "uvloop")
    if chosen not in ("uvloop", "asyncio"):
        raise ConfigError(f"{CHOICE}={chosen!r}: use uvloop or asyncio")
    return uvloop_factory if chosen == "uvloop" else None


def run(main: Coroutine[Any, Any, T]) -> T:
    """``asyncio.run(main)`` on the chosen loop."""
    try:
        factory = loop_factory()
    except ConfigError:
        main.close()  # never to run: not left for the garbage collector to warn about
        raise
    with asyncio.Runner(loop_factory=factory) as runner:
        return runner.run(main)
