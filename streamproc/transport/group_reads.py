"""A consumer's XREADGROUP reads, each stream's on a connection of its own.

A worker reads a few task entries at a time, and every read through redis-py cost more client
CPU than its entries: a pool checkout, a retry wrapper and a timer around the call, then each
entry's fields made a dict in Python.  On a :class:`~streamproc.transport.lane.Lane` hiredis
parses the reply, and the dicts are made by ``dict(zip(...))``.  A blocked XREADGROUP holds
its connection until it answers, so each stream gets a lane of its own (as many connections
as redis-py's pool opened for the same reads).  A Cluster client has no lane: its reads go
through redis-py, each stream's on a Cluster client of its own.  One client shared by every
blocked read turned any one read's lost connection into all of them: redis-py's Cluster
client answers a connection error by closing every connection it holds and mapping the
slots again, which failed the other blocked reads, which did the same, for as long as the
worker ran.  Reads are never retried (the settings they are made from say so): a read whose
reply was lost delivered its entries all the same (see each daemon's ``_read_once``).
"""

from __future__ import annotations

from functools import cached_property
from typing import Any, cast

from redis.asyncio import Redis
from redis.exceptions import ResponseError

from streamproc.config import RedisSettings
from streamproc.store.codec import GroupEntry
from streamproc.transport.lane import Lane


class GroupReads:
    """``consumer``'s reads in consumer groups, on clients made from ``settings`` (which
    should say no retries)."""

    def __init__(self, settings: RedisSettings, consumer: str) -> None:
        self.settings = settings
        self.consumer = consumer
        self._lanes: dict[str, Lane] = {}  # by stream
        self._cluster_readers: dict[str, Redis] = {}  # by stream

    async def read(
        self, group: str, stream: str, after: str | bytes, count: int, block_ms: int
    ) -> list[GroupEntry]:
        """``stream``'s entries after ``after`` (``>``: new ones), at most ``count``, waiting
        up to ``block_ms`` for one; a trimmed one's fields are None."""
        if self.settings.cluster:
            reader = self._cluster_readers.get(stream)
            if reader is None:
                reader = self._cluster_readers[stream] = self.settings.connect()
            reply = await reader.xreadgroup(
                group, self.consumer, {stream: after}, count=count, block=block_ms
            )
            return [entry for _, entries in cast(_Reply, reply) or () for entry in entries]
        lane = self._lanes.get(stream)
        if lane is None:
            lane = self._lanes[stream] = Lane(self._lane_client)
        options = ("COUNT", count, "BLOCK", block_ms, "STREAMS", stream, after)
        [reply] = await lane.send([("XREADGROUP", "GROUP", group, self.consumer, *options)])
        if isinstance(reply, ResponseError):
            raise reply
        return _entries(reply)

    @cached_property
    def _lane_client(self) -> Redis:
        """The client the lanes open their connections through (off a Cluster only)."""
        return self.settings.connect()

    async def close(self) -> None:
        for lane in self._lanes.values():
            await lane.close()
        self._lanes.clear()
        for reader in self._cluster_readers.values():
            await reader.aclose()
        self._cluster_readers.clear()
        if "_lane_client" in self.__dict__:  # made by a first lane
            await self._lane_client.aclose()


_Reply = list[tuple[bytes, list[GroupEntry]]]  # redis-py's, for one stream


def _entries(reply: Any) -> list[GroupEntry]:
    """The entries of a one-stream XREADGROUP reply as hiredis parses it: a map of streams
    under RESP3, a list of [stream, entries] pairs under RESP2, None when none came; an
    entry's fields a flat list of names and values."""
    if not reply:
        return []
    [entries] = reply.values() if isinstance(reply, dict) else [batch for _, batch in reply]
    return [(i, f if f is None else dict(zip(f[::2], f[1::2], strict=True))) for i, f in entries]
