"""Running components until SIGTERM/SIGINT, on plain asyncio.

Why not ``mode``: a component here is a few loops and one stop event, and 3.11's
``asyncio.TaskGroup`` already guarantees no loop outlives its owner.  Plain asyncio lets the
same components run as daemons, side by side in ``up``, or inside a test's event loop, with
no framework owning the loop, the signals or the logging.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Callable, Coroutine, Sequence
from typing import Any

log = logging.getLogger(__name__)
Component = Callable[[asyncio.Event], Coroutine[Any, Any, None]]


async def run_until_signalled(components: Sequence[Component], deadline: float = 30.0) -> int:
    """Run ``component(stop)`` for each until they return; the exit code.

    The first SIGTERM/SIGINT sets ``stop`` for a graceful shutdown.  A second one, or
    ``deadline`` seconds without the components finishing (Redis is down, say, so nothing can
    be handed back), cancels them: their unacknowledged entries stay pending in Redis and are
    reclaimed after the visibility timeout, and the exit code is 1.
    """
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    current = asyncio.current_task()
    assert current is not None
    forced: list[str] = []

    def force(why: str) -> None:
        if current.done():
            return
        log.warning("%s: stopping now; unfinished work stays pending for reclaim", why)
        forced.append(why)
        current.cancel()

    def on_signal(signum: int) -> None:
        name = signal.Signals(signum).name
        if stop.is_set():
            force(f"second {name}")
            return
        log.warning("%s: shutting down gracefully (at most %ss)", name, deadline)
        stop.set()
        loop.call_later(deadline, force, f"still running {deadline}s after {name}")

    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, on_signal, signum)
    try:
        async with asyncio.TaskGroup() as group:
            for component in components:
                group.create_task(component(stop))
    except asyncio.CancelledError:
        if not forced:
            raise
        current.uncancel()
        return 1
    except BaseExceptionGroup as group:
        if len(group.exceptions) == 1:  # one component failed: its error is the daemon's
            raise group.exceptions[0] from None
        raise
    finally:
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(signum)
    return 0
