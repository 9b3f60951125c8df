"""Test-only failpoints: die at a named point of a crash window, as SIGKILL would.

``STREAMPROC_FAILPOINT`` holds comma-separated names, read once at import.  ``failpoint(name)``
then SIGKILLs the current process when ``name`` is armed, and costs one set lookup otherwise.
The fault tests (tests/faults/) and ``scripts/chaos`` arm them in worker, resolver and
API subprocesses to hit a window exactly, instead of hoping a random kill lands in it:

====================================  ============================================================
``worker.after_xadd_before_xack``     a worker's flush sent its completions to the resolver
                                      (``--via-resolver``), not their XACKs
``worker.before_exec``                a worker's flush sent MULTI and its queued commands, no EXEC
``resolver.mid_batch``                the resolver read a batch of completions, applied none
``api.after_submit_before_response``  the API created a workflow but has not replied yet
====================================  ============================================================

There is no ``resolver.after_lua_before_xack``: the resolver's XACK runs inside the
``sp_resolve`` function, so no process can die between the two; nor can a worker applying its
own completions, whose XACKs run inside it too.
"""

from __future__ import annotations

import os
import signal
from typing import Any

from redis.asyncio.client import Pipeline

ARMED = frozenset(
    name.strip() for name in os.environ.get("STREAMPROC_FAILPOINT", "").split(",") if name.strip()
)


def failpoint(name: str) -> None:
    """SIGKILL this process if ``name`` is armed."""
    if name in ARMED:
        os.kill(os.getpid(), signal.SIGKILL)


async def execute(pipe: Pipeline, name: str, split: int) -> list[Any]:
    """``pipe.execute()``, with the errors of single commands among the replies; when
    ``name`` is armed, as two round trips with the failpoint between the first ``split``
    commands and the rest (one pipeline otherwise)."""
    if name not in ARMED:
        return await pipe.execute(raise_on_error=False)
    rest = pipe.command_stack[split:]
    del pipe.command_stack[split:]
    replies = await pipe.execute(raise_on_error=False)
    failpoint(name)
    pipe.command_stack.extend(rest)
    return replies + await pipe.execute(raise_on_error=False)


async def queue_then_die(pipe: Pipeline, name: str) -> None:
    """When ``name`` is armed: send MULTI and ``pipe``'s commands, without EXEC, on a connection
    of their own, wait until Redis has queued each one, then SIGKILL.  Redis discards a
    transaction whose connection closes before EXEC, so none of it may show."""
    if name not in ARMED:
        return
    connection = await pipe.connection_pool.get_connection()  # type: ignore[no-untyped-call]
    commands = [("MULTI",), *(args for args, _ in pipe.command_stack)]
    await connection.send_packed_command(connection.pack_commands(commands))
    for _ in commands:
        await connection.read_response()
    failpoint(name)
