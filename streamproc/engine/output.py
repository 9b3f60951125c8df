"""The worker's output writer: the chunks its agents emit (``Task.emit``), written by one
flusher, pipelined, to each workflow's output stream.

Emitting only queues the chunk, so an agent never waits on Redis.  Chunks are progress, not
results: a chunk Redis refuses (or that finds the queue past ``MAX_QUEUED_BYTES`` while Redis
is slow) is dropped with a warning, and the task carries on; the gap shows in the ``seq`` of
those that follow.  One flusher writing in queue order keeps each attempt's chunks in order.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from functools import cached_property

from redis.asyncio import Redis
from redis.exceptions import RedisError

from streamproc.errors import EmitRefused
from streamproc.store.chunks import (
    MAX_CHUNKS,
    OUTPUT_MAXLEN,
    UNENDED_TTL_MS,
    Chunk,
    chunk_fields,
)
from streamproc.store.codec import TaskEvent
from streamproc.store.keys import Keyspace

log = logging.getLogger(__name__)
MAX_QUEUED_BYTES = 16 << 20  # chunks waiting for Redis, in all, before new ones are dropped
Entry = tuple[str, dict[bytes, bytes | str | int]]


class OutputWriter:
    """Chunks queued by :meth:`offer` (on the loop's thread), written by :meth:`flush_loop`,
    each batch once ``before()`` returned (the worker's outbox has written the starts of the
    tasks that emitted them)."""

    def __init__(
        self, redis: Redis, keyspace: Keyspace, before: Callable[[], Awaitable[None]]
    ) -> None:
        self.redis, self.keyspace, self._before = redis, keyspace, before
        self._queue: list[Entry] = []
        self._queued_bytes = 0
        self._dropped = 0  # for lack of room, since the last warning
        self._ready = asyncio.Event()
        self._queued_total = self._settled_total = 0  # chunks queued, and written or dropped
        self._settled = asyncio.Condition()
        self._closing = False

    def emitter(self, event: TaskEvent) -> Emitter:
        """What the task of ``event`` emits through (called on the loop's thread)."""
        loop = asyncio.get_running_loop()
        thread = threading.get_ident()
        return Emitter(self, loop, thread, event.workflow, event.task, event.attempt)

    def offer(self, key: str, fields: dict[bytes, bytes | str | int]) -> None:
        size = sum(len(v) if isinstance(v, bytes | str) else 8 for v in fields.values())
        if self._closing or self._queued_bytes + size > MAX_QUEUED_BYTES:
            self._dropped += 1
        else:
            self._queue.append((key, fields))
            self._queued_bytes += size
            self._queued_total += 1
        self._ready.set()

    async def flushed(self) -> None:
        """Return once every chunk queued so far is written (or dropped): a task's report
        waits for its chunks, so they come before its end in every reader."""
        target = self._queued_total
        async with self._settled:
            await self._settled.wait_for(lambda: self._settled_total >= target)

    def close(self) -> None:
        """No chunk comes any more: :meth:`flush_loop` ends once it has written the rest."""
        self._closing = True
        self._ready.set()

    async def flush_loop(self) -> None:
        while True:
            await self._ready.wait()
            self._ready.clear()
            await self._flush_once()
            if self._closing and not self._queue:
                return

    async def _flush_once(self) -> None:
        """Write everything queued in one pipeline: each chunk's XADD (capped), and an expiry
        for a stream that has none yet (its workflow's end sets the workflow's own)."""
        if self._dropped:
            log.warning("dropped %d output chunks: Redis is not keeping up", self._dropped)
            self._dropped = 0
        batch, self._queue, self._queued_bytes = self._queue, [], 0
        if not batch:
            return
        await self._before()
        pipe = self.redis.pipeline(transaction=False)
        for key, fields in batch:
            pipe.xadd(key, fields, maxlen=OUTPUT_MAXLEN, approximate=True)  # type: ignore[arg-type]
        for key in dict.fromkeys(key for key, _ in batch):
            pipe.pexpire(key, UNENDED_TTL_MS, nx=True)
        try:
            replies = await pipe.execute(raise_on_error=False)
        except RedisError as exc:
            replies = [exc] * len(batch)
        finally:
            async with self._settled:
                self._settled_total += len(batch)
                self._settled.notify_all()
        errors = [reply for reply in replies[: len(batch)] if isinstance(reply, Exception)]
        if errors:
            log.warning("dropped %d output chunks: %s", len(errors), errors[0])


@dataclass(eq=False)
class Emitter:
    """One task attempt's way to its workflow's output stream; :meth:`put` may be called from
    the loop or from the thread a plain function agent runs in."""

    writer: OutputWriter
    loop: asyncio.AbstractEventLoop
    loop_thread: int
    workflow: str
    task: str
    attempt: int
    count: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    @cached_property
    def key(self) -> str:
        """The workflow's output stream, named at the first chunk (most tasks emit none)."""
        return self.writer.keyspace.output(self.workflow)

    def put(self, chunk: Chunk) -> None:
        """Queue ``chunk`` as the attempt's next; :class:`EmitRefused` past ``MAX_CHUNKS``."""
        with self.lock:
            if self.count >= MAX_CHUNKS:
                raise EmitRefused(
                    f"task {self.task} attempt {self.attempt} already emitted {MAX_CHUNKS} "
                    "chunks, the most one attempt may emit"
                )
            seq, self.count = self.count, self.count + 1
        now = time.time_ns() // 1_000_000
        fields = chunk_fields(self.workflow, self.task, self.attempt, seq, now, chunk)
        if threading.get_ident() == self.loop_thread:
            self.writer.offer(self.key, fields)
        else:  # a plain function's thread; the loop may have closed (the worker is gone)
            with contextlib.suppress(RuntimeError):
                self.loop.call_soon_threadsafe(self.writer.offer, self.key, fields)
