"""How a client's submits reach Redis: each chunk of workflows (all of one shard) one
``sp_submit``, the chunks of a call in one round trip, on the client's lane where it has one
(``transport/lane.py``; the usual submit packed from a frame, ``submit_frame.py``) or on
redis-py's pipeline (a Cluster), followed on the same connection by the waits a durable
client asks for (``transport/durability.py``).
"""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import ResponseError

from streamproc.config import ClientSettings
from streamproc.store import calls, functions, packed, submit_frame
from streamproc.transport import durability
from streamproc.transport.lane import lane_for


class Submits:
    """A client's way to ``sp_submit``: its lane (cheaper per call than redis-py's pool; a
    Cluster has none), and what it learnt of the server's fsync."""

    def __init__(self, redis: Redis, settings: ClientSettings) -> None:
        self.redis = redis
        self.settings = settings
        self.lane = lane_for(redis)
        self.fsync: durability.Fsync | None = None

    async def close(self) -> None:
        if self.lane is not None:
            await self.lane.close()

    async def send(
        self, chunks: list[list[calls.NewWorkflow]], quota: list[functions.Arg] = calls.NO_TENANT
    ) -> list[list[calls.Submitted]]:
        """``sp_submit`` each chunk (workflows of one shard) for the tenant ``quota`` names
        (``tenants.quota_arguments``), or for none, in one round trip, followed on the same
        connection, when durable, by WAITAOF, which waits for their fsync (Redis 7.2+), and
        with ``replicas`` by WAIT, which waits until that many replicas have them (see
        durability.py).  A submission Redis refused is raised first: no wait speaks for what
        was not written."""
        if self.settings.durable and self.fsync is None:
            self.fsync = await durability.detect(self.redis)
        waitaof = self.fsync is durability.Fsync.WAITAOF
        replies = await self._pipeline(chunks, quota, waitaof)
        for reply in replies:
            if isinstance(reply, ResponseError) and functions.is_missing_library(reply):
                await functions.load(self.redis)
                replies = await self._pipeline(chunks, quota, waitaof)  # submit is idempotent
                break
        acknowledged = replies.pop() if self.settings.replicas else None
        fsynced = replies.pop() if waitaof else None
        for reply in replies:
            if isinstance(reply, ResponseError):
                raise reply
        s = self.settings
        if waitaof and not durability.fsynced(fsynced, s.durable_timeout):
            self.fsync = durability.Fsync.NONE
        if s.replicas:
            durability.check_replicas(acknowledged, s.replicas, s.replica_timeout)
        return [calls.SUBMIT.reply(reply) for reply in replies]

    def _pipeline(
        self, chunks: list[list[calls.NewWorkflow]], quota: list[functions.Arg], waitaof: bool
    ) -> Awaitable[list[Any]]:
        """The replies of ``sp_submit`` per chunk, then WAITAOF's and WAIT's when asked for, a
        refused command's error in its place.  (A plain call, not a coroutine: one fewer on
        every submit's way.)"""
        waits: list[list[functions.Arg]] = []
        if waitaof:
            waits.append(["WAITAOF", 1, 0, int(self.settings.durable_timeout * 1000)])
        if self.settings.replicas:
            timeout_ms = int(self.settings.replica_timeout * 1000)
            waits.append(["WAIT", self.settings.replicas, timeout_ms])
        if self.lane is not None:
            commands = [self._command(chunk, quota) for chunk in chunks]
            return self.lane.send([*commands, *waits])
        pipe = self.redis.pipeline(transaction=False)
        for chunk in chunks:
            call = calls.submit_arguments(self.settings.keyspace, chunk, quota)
            pipe.execute_command(*calls.SUBMIT.command(packed.flat(call)))
        for command in waits:
            pipe.execute_command(*command)
        return pipe.execute(raise_on_error=False)

    def _command(self, chunk: list[calls.NewWorkflow], quota: list[functions.Arg]) -> bytes:
        """One chunk's ``sp_submit``, packed: the usual submit from a frame (submit_frame.py)."""
        if len(chunk) == 1 and quota is calls.NO_TENANT:
            return submit_frame.submit_command(self.settings.keyspace, chunk[0])
        return calls.submit_command(calls.submit_arguments(self.settings.keyspace, chunk, quota))
