"""A worker's claims on task entries: kept while their tasks run, taken over when a worker dies.

An entry a worker read stays pending with it until the completion is written.  The heartbeat
re-claims the running ones so their idle time never reaches the visibility timeout; an entry
that did reach it belongs to a worker that is gone, and the sweep takes it over and requeues
it as a new attempt (``sp_requeue`` counts the lost deliveries and fails the task past
``max_lost_deliveries``).  At shutdown the worker hands back what it still holds the same way,
so it leaves its groups with nothing pending.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from typing import Any, cast

from redis.asyncio import Redis

from streamproc import metrics
from streamproc.config import WorkerSettings
from streamproc.engine.consumer import claim_idle
from streamproc.errors import CodecError
from streamproc.store import calls, codec
from streamproc.store.codec import Entry
from streamproc.transport.groups import leave_group
from streamproc.transport.pause import pause
from streamproc.transport.retrying import until_redis_answers

log = logging.getLogger(__name__)
SWEEP_COUNT = 100
ALIVE_ROUNDS = 3  # sweep rounds a worker's alive mark outlasts
MIN_ALIVE = 30.0  # seconds, however short the rounds
Running = Mapping[tuple[str, bytes], asyncio.Task[None]]  # (stream, entry id) -> its task
Reject = Callable[[str, int, str, bytes, CodecError], None]  # agent, shard, stream, id, error


class Claims:
    """The claims of one worker (``consumer``) over the task streams of its agents."""

    def __init__(
        self,
        redis: Redis,
        settings: WorkerSettings,
        consumer: str,
        running: Running,
        reject: Reject,
    ) -> None:
        """``running`` is the worker's live map of started tasks; ``reject`` reports an entry
        too malformed to requeue (it fails the task, or parks the entry as a dead letter)."""
        self.redis = redis
        self.settings = settings
        self.consumer = consumer
        self._running = running
        self._reject = reject

    # -- keeping -----------------------------------------------------------------------------

    async def heartbeat_loop(self, closing: asyncio.Event) -> None:
        while not await pause(closing, self.settings.heartbeat_interval):
            await until_redis_answers(self._heartbeat_once)

    async def _heartbeat_once(self) -> None:
        """Reset the idle time of running entries; cancel any entry another worker took over."""
        by_stream: dict[str, list[Any]] = {}
        for stream, entry_id in list(self._running):
            by_stream.setdefault(stream, []).append(entry_id)
        for stream, ids in by_stream.items():
            group = self._group_of(stream)
            kept = set(await self.redis.xclaim(stream, group, self.consumer, 0, ids, justid=True))
            for entry_id in ids:
                task = self._running.get((stream, entry_id))
                if entry_id not in kept and task is not None:
                    log.warning("lost the claim on %s %s; dropping it", stream, entry_id.decode())
                    task.cancel()

    def _group_of(self, stream: str) -> str:
        return stream.rsplit(":", 1)[1]

    # -- taking over -------------------------------------------------------------------------

    async def sweep_loop(self, closing: asyncio.Event) -> None:
        while True:
            await until_redis_answers(self._mark_alive)
            for agent in self.settings.agents:
                for shard in self.settings.keyspace.all_shards():
                    await until_redis_answers(self._sweep_once, agent, shard)
            if await pause(closing, self.settings.claim_interval):
                return

    async def _mark_alive(self) -> None:
        """Renew this worker's mark that it lives (``Keyspace.alive``): without it, once idle
        and holding nothing, its consumers are taken for a killed worker's and removed."""
        ttl = max(ALIVE_ROUNDS * self.settings.claim_interval, MIN_ALIVE)
        await self.redis.set(self.settings.keyspace.alive(self.consumer), 1, px=int(ttl * 1000))

    async def _sweep_once(self, agent: str, shard: int) -> None:
        """Take over entries idle past the visibility timeout (their worker is gone)."""
        stream = self.settings.keyspace.tasks(shard, agent)
        min_idle = int(self.settings.visibility_timeout * 1000)
        pages = claim_idle(self.redis, stream, agent, self.consumer, min_idle, SWEEP_COUNT)
        async for entries, deleted in pages:
            if deleted:
                await self._dead_letter_trimmed(agent, shard, deleted)
            if entries:
                await self._requeue(agent, shard, entries, calls.RequeueReason.RECLAIMED)

    async def hand_back(self) -> None:
        """Requeue what this consumer still holds, then leave the groups."""
        for agent in self.settings.agents:
            for shard in self.settings.keyspace.all_shards():
                stream = self.settings.keyspace.tasks(shard, agent)
                pending = await self.redis.xpending_range(
                    stream, agent, min="-", max="+", count=10_000, consumername=self.consumer
                )
                ids: list[Any] = [p["message_id"] for p in pending]
                if ids:
                    entries = cast(
                        list[Entry], await self.redis.xclaim(stream, agent, self.consumer, 0, ids)
                    )
                    await self._requeue(agent, shard, entries, calls.RequeueReason.HANDED_BACK)
                    log.info("handed back %d tasks of %s", len(ids), agent)
                if not await leave_group(self.redis, stream, agent, self.consumer):
                    log.warning(
                        "%s still holds entries of %s; left for reclaim", self.consumer, stream
                    )
        await self.redis.delete(self.settings.keyspace.alive(self.consumer))

    async def _requeue(
        self, agent: str, shard: int, entries: list[Entry], reason: calls.RequeueReason
    ) -> None:
        keyspace = self.settings.keyspace
        items: list[calls.Requeue] = []
        stream = keyspace.tasks(shard, agent)
        for entry_id, fields in entries:
            ref = codec.task_ref(fields or {})
            if ref is None:
                error = CodecError("malformed entry (taken over)", fields or {})
                self._reject(agent, shard, stream, entry_id, error)
                continue
            items.append(calls.Requeue(entry_id, ref[0], ref[1], ref[2], agent))
            log.info("%s task", reason, extra={"wf": ref[0], "task": ref[1], "attempt": ref[2]})
        if items:
            max_lost = self.settings.max_lost_deliveries
            requeued = await calls.requeue(self.redis, keyspace, shard, reason, max_lost, items)
            metrics.workflows_ended("failed", requeued.failed)

    async def _dead_letter_trimmed(self, agent: str, shard: int, deleted: list[bytes]) -> None:
        pipe = self.redis.pipeline(transaction=False)
        for entry_id in deleted:
            log.error("pending entry %s of %s was trimmed before ack", entry_id.decode(), agent)
            fields = codec.trimmed_dead_letter(agent, entry_id)
            pipe.xadd(self.settings.keyspace.dead(shard, agent), fields)  # type: ignore[arg-type]
        await pipe.execute()
