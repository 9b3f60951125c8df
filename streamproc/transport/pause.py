"""Pausing a loop that talks to Redis, until its next step or its stop.

Loops that talk to Redis end by checking their stop event rather than being cancelled, so a
cancellation never lands inside a Redis call (where a client may retry past it): they wait
between steps here.
"""

from __future__ import annotations

import asyncio


async def pause(stop: asyncio.Event, seconds: float) -> bool:
    """Sleep ``seconds``, or less if ``stop`` is set; return whether it is set."""
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        # Python 3.11 can drop a cancellation delivered inside a Redis call; honour it here.
        raise asyncio.CancelledError
    if stop.is_set():
        return True
    try:
        async with asyncio.timeout(seconds):
            await stop.wait()
    except TimeoutError:
        return False
    return True
