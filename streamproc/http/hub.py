"""One reader of every followed workflow's history, shared by the API's event streams.

Were each event stream to block on its own read, each would hold a pooled Redis connection
while it waits, and a hundred open streams would leave no connection for any other request.
The hub reads the history and output streams of every workflow someone follows in one
blocking XREAD (one per slot on a Cluster), on one connection, and hands each event to the
streams that follow its workflow: open streams cost memory, not connections.  Output chunks
are marked superseded (one HMGET per workflow that had any, pipelined) as they are handed out.

A follower first takes hold of the workflow's history stream (``history.Watch``: events go to
it only while someone follows; the hub renews the hold while anyone follows) and catches up on
its own with what is kept after its start (``Last-Event-ID``, ``ops/follow.py``).  Then it
joins: the hub reads a workflow from the earliest position any follower had, and each follower
skips what it has already had.  A follower that joins during a read gets nothing of that read
(its events could come before ones it has not had yet); the next read, at most ``BLOCK_MS``
later, starts from its start.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncGenerator, AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from streamproc.ops.events import (
    BATCH,
    Event,
    Position,
    has_settled,
    mark_superseded,
    position_of,
    read_from,
    read_streams,
)
from streamproc.ops.follow import catch_up
from streamproc.ops.history import Watch
from streamproc.store.codec import entry_order
from streamproc.store.keys import Keyspace
from streamproc.store.state import TERMINAL

log = logging.getLogger(__name__)
BLOCK_MS = 250  # the longest a new follower waits for the read that includes it
CHECK_EVERY = 2.0  # seconds between checks that a workflow with no new events has ended
BACKLOG = 10_000  # events held for one slow follower before its stream is ended
RETRY = 1.0  # seconds before reading again after Redis failed
Item = Event | Exception | None  # None ends the follower's stream


@dataclass(eq=False)
class Follower:
    """One event stream: what it has had (``after``) and what waits for it."""

    after: Position
    queue: asyncio.Queue[Item] = field(default_factory=asyncio.Queue)

    def offer(self, event: Event) -> None:
        """Queue ``event`` unless already had; past ``BACKLOG`` the stream ends instead (its
        client resumes with ``Last-Event-ID``), so a reader that stalls holds no more."""
        position = event.position
        if position <= self.after:
            return
        self.after = position
        self.queue.put_nowait(event if self.queue.qsize() < BACKLOG else None)


@dataclass(eq=False)
class Followed:
    """A followed workflow: where the next read of its history and output streams starts,
    its followers."""

    cursors: dict[str, bytes]
    watch: Watch
    followers: set[Follower] = field(default_factory=set)
    check_at: float = 0.0


class Hub:
    """Reads followed workflows' history for every event stream of one API process."""

    def __init__(self, redis: Redis, keyspace: Keyspace) -> None:
        self.redis, self.keyspace = redis, keyspace
        self._followed: dict[str, Followed] = {}
        self._joined = asyncio.Event()

    async def follow(self, workflow_id: str, start: str = "0") -> AsyncGenerator[Event, None]:
        """The workflow's events after ``start``, ending after its final event once none of
        its tasks runs on (``has_settled``): first what is
        kept (its archive), then as they come."""
        had = position_of(start)
        watch = Watch(self.redis, self.keyspace, workflow_id)
        await watch()
        events, status = await catch_up(self.redis, self.keyspace, workflow_id, (had, had), True)
        for event in events:
            had = event.position
            yield event
        if status is None or (status in TERMINAL and await self._settled(workflow_id)):
            return
        follower = self._join(workflow_id, had, watch)
        try:
            while (item := await follower.queue.get()) is not None:
                if isinstance(item, Exception):
                    raise item
                yield item
        finally:
            self._leave(workflow_id, follower)

    def _join(self, workflow_id: str, after: Position, watch: Watch) -> Follower:
        follower = Follower(after)
        cursor = read_from(follower.after)
        followed = self._followed.get(workflow_id)
        if followed is None:
            streams = (self.keyspace.history(workflow_id), self.keyspace.output(workflow_id))
            followed = Followed(dict.fromkeys(streams, cursor), watch)
            self._followed[workflow_id] = followed
        for stream, at in followed.cursors.items():
            if entry_order(cursor) < entry_order(at):
                followed.cursors[stream] = cursor
        followed.followers.add(follower)
        followed.check_at = 0.0  # it may have ended already: see at the next read
        self._joined.set()
        return follower

    def _leave(self, workflow_id: str, follower: Follower) -> None:
        followed = self._followed.get(workflow_id)
        if followed is not None:
            followed.followers.discard(follower)
            if not followed.followers:
                del self._followed[workflow_id]

    async def run(self) -> None:
        """Read while anyone follows; on a Redis failure, fail every follower (their streams
        say so) and try again after ``RETRY``."""
        while True:
            if not self._followed:
                self._joined.clear()
                await self._joined.wait()
                continue
            try:
                await self._read_once()
            except (RedisConnectionError, RedisTimeoutError) as exc:
                log.warning("event streams: redis unavailable: %s", exc)
                for followed in self._followed.values():
                    for follower in followed.followers:
                        follower.queue.put_nowait(exc)
                self._followed.clear()
                await asyncio.sleep(RETRY)

    async def _read_once(self) -> None:
        taken = {
            wf: (f, dict(f.cursors), frozenset(f.followers)) for wf, f in self._followed.items()
        }
        cursors = {stream: at for _, read, _ in taken.values() for stream, at in read.items()}
        by_workflow: dict[str, list[Event]] = {}
        read = await read_streams(self.redis, cursors, BLOCK_MS)
        for event in await mark_superseded(self.redis, self.keyspace, read):
            by_workflow.setdefault(event.workflow, []).append(event)
        now = asyncio.get_running_loop().time()
        for workflow_id, (followed, was, followers) in taken.items():
            if followed.cursors == was:  # not moved back by a follower that joined meanwhile
                followed.cursors = {stream: cursors[stream] for stream in was}
            events = by_workflow.get(workflow_id, [])
            for event in events:
                for follower in followers:
                    follower.offer(event)
            if events:
                followed.check_at = now + CHECK_EVERY
                final = events[-1].kind in TERMINAL and len(events) < BATCH
                if final and await self._settled(workflow_id):
                    self._end(workflow_id, followers)
            elif followed.check_at <= now:
                followed.check_at = now + CHECK_EVERY
                await self._end_if_over(workflow_id, followers)
            if await followed.watch.lapsed():  # what came meanwhile is in the archive only
                await self._catch_up(workflow_id, followers)

    async def _end_if_over(self, workflow_id: str, followers: frozenset[Follower]) -> None:
        """End the streams of a workflow that is over and settled, though no final event
        came (it came during the read just done, or before its last tasks ended)."""
        if not await self._settled(workflow_id):
            return
        await self._catch_up(workflow_id, followers)
        self._end(workflow_id, followers)

    async def _catch_up(self, workflow_id: str, followers: frozenset[Follower]) -> None:
        """Offer what is kept, from the earliest any follower had."""
        if followers:
            had = min(follower.after for follower in followers)
            events, _ = await catch_up(self.redis, self.keyspace, workflow_id, (had, had), True)
            for event in events:
                for follower in followers:
                    follower.offer(event)

    async def _settled(self, workflow_id: str) -> bool:
        return await has_settled(self.redis, self.keyspace, workflow_id)

    def _end(self, workflow_id: str, followers: frozenset[Follower]) -> None:
        for follower in followers:
            follower.queue.put_nowait(None)
            self._leave(workflow_id, follower)


@asynccontextmanager
async def running(hub: Hub) -> AsyncIterator[None]:
    """The hub's reader, for as long as the block runs."""
    task = asyncio.create_task(hub.run(), name="event-stream hub")
    try:
        yield
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
