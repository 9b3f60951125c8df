"""A consumer's XREADGROUP reads, each stream's on a connection of its own.

A worker reads a few task entries at a time, and every read through redis-py cost more client
CPU than its entries: a pool checkout, a retry wrapper and a timer around the call, then each
entry's fields made a dict in Python.  On a :class:`~streamproc.transport.lane.Lane` hiredis
parses the reply, and the dicts are made by ``dict(zip(...))``.  A blocked XREADGROUP holds
its connection until it answers, so each stream gets a lane of its own (as many connections
as redis-py's pool opened for the same reads).  A Cluster client has no lane: its reads go
through redis-py.  Like the reader they are made from, reads are never retried: a read whose
reply was lost delivered its entries all the same (see each daemon's ``_read_once``).
"""

from __future__ import annotations

from typing import Any, cast

from redis.asyncio import Redis
from redis.exceptions import ResponseError

from streamproc.store.codec import GroupEntry
from streamproc.transport.cluster import is_cluster
from streamproc.transport.lane import Lane


class GroupReads:
    """``consumer``'s reads in consumer groups, on ``reader`` (a client that never retries)."""

    def __init__(self, reader: Redis, consumer: str) -> None:
        self.reader = reader
        self.consumer = consumer
        self._lanes: dict[str, Lane] = {}  # by stream

    async def read(
        self, group: str, stream: str, after: str | bytes, count: int, block_ms: int
    ) -> list[GroupEntry]:
        """``stream``'s entries after ``after`` (``>``: new ones), at most ``count``, waiting
        up to ``block_ms`` for one; a trimmed one's fields are None."""
        if is_cluster(self.reader):
            reply = await self.reader.xreadgroup(
                group, self.consumer, {stream: after}, count=count, block=block_ms
            )
            return [entry for _, entries in cast(_Reply, reply) or () for entry in entries]
        lane = self._lanes.get(stream)
        if lane is None:
            lane = self._lanes[stream] = Lane(self.reader)
        options = ("COUNT", count, "BLOCK", block_ms, "STREAMS", stream, after)
        [reply] = await lane.send([("XREADGROUP", "GROUP", group, self.consumer, *options)])
        if isinstance(reply, ResponseError):
            raise reply
        return _entries(reply)

    async def close(self) -> None:
        for lane in self._lanes.values():
            await lane.close()
        self._lanes.clear()


_Reply = list[tuple[bytes, list[GroupEntry]]]  # redis-py's, for one stream


def _entries(reply: Any) -> list[GroupEntry]:
    """The entries of a one-stream XREADGROUP reply as hiredis parses it: a map of streams
    under RESP3, a list of [stream, entries] pairs under RESP2, None when none came; an
    entry's fields a flat list of names and values."""
    if not reply:
        return []
    [entries] = reply.values() if isinstance(reply, dict) else [batch for _, batch in reply]
    return [(i, f if f is None else dict(zip(f[::2], f[1::2], strict=True))) for i, f in entries]
