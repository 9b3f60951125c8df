"""Stowing the workflows this process's ``sp_resolve`` calls ended (``store/stow.py`` says why
it is done here and not in Redis).

A stower reads each ended workflow's hash and archive in one transaction, makes its stowed
archive, and has ``sp_stow`` write it where the workflow is still as read.  One it does not
stow (Redis failed, or the process stopped first) stays a hash, whole and read the same by
every reader; it expires with its archive, and the next function call that touches it stows
it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import NoPermissionError, RedisError, ResponseError

from streamproc.store.functions import is_missing_library
from streamproc.store.keys import Keyspace
from streamproc.store.stow import STOW, Read, stow_arguments, stowed_archive
from streamproc.transport.lane import Lane, execute_queued, lane_for

log = logging.getLogger(__name__)
BATCH = 25  # workflows read in one transaction and stowed in one call, at most: the
# conversions run on the event loop the worker reads and flushes on, one at a time
GATHER_S = 0.05  # how long a wake waits for a whole batch: fewer, larger calls cost less


class Stower:
    """Stows the workflows :meth:`add` is given, in :meth:`run`, until :meth:`close`."""

    def __init__(self, redis: Redis, keyspace: Keyspace) -> None:
        self.redis = redis
        self.keyspace = keyspace
        self._pending: dict[int, list[str]] = {}
        self._ready = asyncio.Event()
        self._closing = False
        self._permitted = True  # until Redis refuses this user what stowing takes
        self._lane: Lane | None = None  # while it runs (not on a Cluster): see _read

    def add(self, shard: int, workflow_ids: Sequence[str]) -> None:
        """Stow these ended workflows of ``shard``."""
        if workflow_ids and self._permitted:
            self._pending.setdefault(shard, []).extend(workflow_ids)
            self._ready.set()

    def close(self) -> None:
        """None comes any more: :meth:`run` ends once it stowed what it was given."""
        self._closing = True
        self._ready.set()

    async def run(self) -> None:
        """Stow what is added, gathering a batch at each wake, until closed and done."""
        self._lane = lane_for(self.redis)
        try:
            while True:
                await self._ready.wait()
                if not self._closing and sum(map(len, self._pending.values())) < BATCH:
                    await asyncio.sleep(GATHER_S)
                self._ready.clear()
                pending, self._pending = self._pending, {}
                for shard, ids in pending.items():
                    for first in range(0, len(ids), BATCH):
                        await self.stow(shard, ids[first : first + BATCH])
                if self._closing and not self._pending:
                    return
        finally:
            if self._lane is not None:
                await self._lane.close()
                self._lane = None

    async def stow(self, shard: int, workflow_ids: Sequence[str]) -> int:
        """Stow these ended workflows of ``shard``; how many were.  A failure is logged: they
        stay hashes."""
        try:
            replies = await self._read(workflow_ids)
            hashes, archives = replies[::2], replies[1::2]
            read = []
            for workflow_id, raw, past in zip(workflow_ids, hashes, archives, strict=True):
                if raw:
                    made = _made(raw, past or b"")
                    read.append(Read(workflow_id, len(raw), len(past or b""), made))
                    await asyncio.sleep(0)  # the worker's reads and flushes go in between
            if not read:
                return 0
            return await self._write(stow_arguments(self.keyspace, shard, read))
        except RedisError as exc:
            if _refused(exc):
                log.error(
                    "this process's Redis user may not stow ended workflows (%s): they stay "
                    "hashes until they expire or a call touches them; grant what "
                    "deploy/acl.conf grants",
                    exc,
                )
                self._permitted = False
            else:
                log.warning("%d ended workflows stay unstowed for now: %s", len(workflow_ids), exc)
            return 0

    async def _read(self, workflow_ids: Sequence[str]) -> list[Any]:
        """Each workflow's hash (a dict) and archive, read in one transaction: on the lane
        while running, where hiredis parses the replies (redis-py's pipeline took three times
        the client CPU, a third of what stowing cost), else through redis-py."""
        pipe = self.redis.pipeline(transaction=True)
        for workflow_id in workflow_ids:
            pipe.hgetall(self.keyspace.workflow(workflow_id))
            pipe.get(self.keyspace.past(workflow_id))
        replies = await execute_queued(pipe, self._lane)
        for reply in replies:
            if isinstance(reply, ResponseError):
                raise reply
        return [_as_dict(reply) if i % 2 == 0 else reply for i, reply in enumerate(replies)]

    async def _write(self, arguments: list[Any]) -> int:
        """``sp_stow``: on the lane while running; through redis-py otherwise, and when Redis
        lacks the library (redis-py's call loads it)."""
        if self._lane is not None:
            [reply] = await self._lane.send([STOW.command(arguments)])
            if not isinstance(reply, ResponseError):
                return STOW.reply(reply)
            if not is_missing_library(reply):
                raise reply
        return await STOW(self.redis, arguments)


def _as_dict(reply: dict[bytes, bytes] | list[bytes]) -> dict[bytes, bytes]:
    """An HGETALL reply: a map under RESP3, a flat list of fields and values under RESP2."""
    return reply if isinstance(reply, dict) else dict(zip(reply[::2], reply[1::2], strict=True))


def _refused(error: RedisError) -> bool:
    """Redis refused this user a command: itself (NOPERM), or one a function calls."""
    return isinstance(error, NoPermissionError) or "can't run this command" in str(error)


def _made(raw: dict[bytes, bytes], past: bytes) -> bytes:
    """The stowed archive, or b"" for ``sp_stow`` to make it."""
    return stowed_archive(raw, past) or b""
