"""The completion consumer: applies completions, resolves dependencies, publishes ready tasks.

Per shard it reads ``done`` in batches and applies each batch with one ``sp_resolve`` call
(record results, count down dependents, publish the ready ones, emit lifecycle events, XACK),
so a crash anywhere leaves either nothing or the whole batch applied.  It also releases due
retries from the delayed set, takes over completions a dead resolver left pending, and trims
streams below what every group has acknowledged.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Collection, Sequence
from functools import partial
from typing import cast

from redis.asyncio import Redis

from streamproc.config import RedisSettings, ResolverSettings
from streamproc.engine.completions import Completions
from streamproc.engine.consumer import Consumer, claim_idle
from streamproc.engine.deadline import fail_overdue
from streamproc.engine.failpoints import failpoint
from streamproc.engine.index import PRUNE_ROUNDS, prune
from streamproc.engine.linger import Linger
from streamproc.engine.reconcile import Reconciler
from streamproc.errors import CodecError
from streamproc.store import calls, codec
from streamproc.store.agents import prune_agents, shard_agents
from streamproc.store.codec import Acks, Completion, GroupEntry
from streamproc.store.entries import EntryField as EF
from streamproc.store.keys import RESOLVER_GROUP
from streamproc.transport.groups import (
    drop_idle_debug_groups,
    ensure_group,
    group_positions,
    leave_group,
    reap,
)
from streamproc.transport.pause import pause
from streamproc.transport.retrying import until_redis_answers as until_ready

log = logging.getLogger(__name__)
RELEASE_BATCH = 100
LINGER_TARGET = 64  # completions per batch worth waiting for under load (see linger.py)


class Resolver(Consumer):
    """Runs until :meth:`run`'s stop event is set; any number may run side by side."""

    def __init__(self, redis: RedisSettings, settings: ResolverSettings) -> None:
        super().__init__(redis, settings.keyspace, settings.block_ms)
        self.settings = settings
        self.keyspace = settings.keyspace
        self._restarted = False
        self.completions = Completions(
            self.redis, self.keyspace, settings.retry_base, settings.retry_cap
        )
        self.reconciler = Reconciler(self.redis, self.keyspace, self.completions.stower)
        self._unsettled: set[int] = set()  # shards whose last batch may be read, not applied
        self._prune_from: dict[int, int] = {}  # each shard's next index rank to check (index.py)

    async def run(self, stop: asyncio.Event) -> None:
        """Serve until ``stop`` is set; a batch being applied is finished, not cut short."""
        await until_ready(self._prepare)
        log.info("resolver %s running over %d shard(s)", self.consumer, self.keyspace.shards)
        await self._serve(stop, on_restart=self._on_restart)
        log.info("resolver %s stopped", self.consumer)

    async def _join(self) -> None:
        for shard in self.keyspace.all_shards():
            await ensure_group(self.redis, self.keyspace.done(shard), RESOLVER_GROUP)
            self.completions.refresh(shard)

    async def _start_loops(self, loops: asyncio.TaskGroup, stop: asyncio.Event) -> None:
        loops.create_task(self._reconcile_loop(stop))
        for shard in self.keyspace.all_shards():
            linger = Linger(LINGER_TARGET, self.settings.read_linger)
            read = partial(self._read_once, shard)
            loops.create_task(self._read_loop(stop, linger, self._batch_size, read))
            loops.create_task(self._release_loop(shard, stop))
            loops.create_task(self._sweep_loop(shard, stop))
        loops.create_task(self._trim_loop(stop))
        loops.create_task(self.completions.stower.run())
        await stop.wait()
        self.completions.stower.close()  # what a batch finishing after this ends stays a hash

    async def _leave(self) -> None:
        for shard in self.keyspace.all_shards():
            await leave_group(self.redis, self.keyspace.done(shard), RESOLVER_GROUP, self.consumer)

    # -- completions -------------------------------------------------------------------------

    async def _batch_size(self) -> int:
        """Every read asks for a whole batch: one ``sp_resolve`` call applies it."""
        return self.settings.batch

    async def _read_once(self, shard: int, count: int) -> int:
        """Read a batch and apply it.  A batch can be delivered yet not applied: its reply lost
        with a dropped connection (Redis delivered it all the same), or its apply failed.  It
        stays pending with this consumer, so after a failure the next reads take this
        consumer's own pending entries (id 0) until none is left, rather than leaving them to
        the sweep a visibility timeout later."""
        done = self.keyspace.done(shard)
        since = "0" if shard in self._unsettled else ">"
        self._unsettled.add(shard)
        entries = await self.reads.read(RESOLVER_GROUP, done, since, count, self.settings.block_ms)
        if entries:
            failpoint("resolver.mid_batch")
            await self.apply(shard, entries)
        got = len(entries)
        if since == ">" or not got:
            self._unsettled.discard(shard)
        return got

    async def apply(self, shard: int, entries: Sequence[GroupEntry]) -> None:
        """Apply one batch of ``done`` entries; malformed ones go to dead-done with the reason."""
        good: list[Completion] = []
        pipe = self.redis.pipeline(transaction=False)
        for entry_id, fields in entries:
            try:
                good.append(codec.decode_completion(entry_id, fields or {}))
            except CodecError as exc:
                log.error("malformed completion %s: %s", entry_id.decode(), exc.reason)
                dead = {
                    **codec.parked(exc.fields),
                    EF.REASON.key: f"malformed completion: {exc.reason}",
                    EF.ENTRY.key: entry_id,
                }
                pipe.xadd(self.keyspace.dead_done(shard), dead)  # type: ignore[arg-type]
                pipe.xack(self.keyspace.done(shard), RESOLVER_GROUP, entry_id)
        if len(pipe):
            await pipe.execute()
        await self.completions.apply(shard, good, Acks.DONE)

    # -- delayed retries ---------------------------------------------------------------------

    async def _release_loop(self, shard: int, stop: asyncio.Event) -> None:
        """Publish due retries and fail workflows past their deadline (deadline.py)."""
        while not await pause(stop, self.settings.release_interval):
            await until_ready(self._release_once, shard)

    async def _release_once(self, shard: int) -> None:
        """Due-ness is judged by the Redis clock, never the local one.  TIME goes on its
        own: a Cluster pipeline refuses it (it has no key to route by)."""
        seconds, micros = await self.redis.time()
        now = seconds * 1000 + micros // 1000
        await fail_overdue(self.redis, self.keyspace, shard, now)
        delayed = self.keyspace.delayed(shard)
        members = cast(
            list[tuple[bytes, float]],
            await self.redis.zrange(delayed, 0, RELEASE_BATCH - 1, withscores=True),
        )
        due = [m for m, score in members if score <= now]
        while due:
            agents = await self.completions.agents(shard)
            _, missing = await calls.release(self.redis, self.keyspace, shard, agents, due)
            if not missing:
                return
            self.completions.learn(shard, missing)

    # -- recovery and retention --------------------------------------------------------------

    async def _sweep_loop(self, shard: int, stop: asyncio.Event) -> None:
        while not await pause(stop, self.settings.claim_interval):
            await until_ready(self._sweep_once, shard)

    async def _sweep_once(self, shard: int) -> None:
        """Re-apply completions another resolver read but never acknowledged (it died)."""
        done = self.keyspace.done(shard)
        min_idle = int(self.settings.visibility_timeout * 1000)
        batch = self.settings.batch
        pages = claim_idle(self.redis, done, RESOLVER_GROUP, self.consumer, min_idle, batch)
        async for entries, deleted in pages:
            for entry_id in deleted:
                log.error("completion %s was trimmed before it was applied", entry_id.decode())
                reason = "completion trimmed before ack"
                await self.redis.xadd(
                    self.keyspace.dead_done(shard), {EF.ENTRY: entry_id, EF.REASON: reason}
                )
            if entries:
                await self.apply(shard, entries)

    async def _on_restart(self) -> None:
        log.info("Redis restarted: looking for tasks it may have stranded")
        self._restarted = True

    async def _reconcile_loop(self, stop: asyncio.Event) -> None:
        """Sweep for stranded tasks (reconcile.py) at start, after a restart, every
        ``reconcile_interval``, and a visibility timeout after finding any (to confirm them)."""
        tick = min(self.settings.visibility_timeout, self.settings.reconcile_interval)
        await until_ready(self.reconciler.sweep)
        last = time.monotonic()
        while not await pause(stop, tick):
            now = time.monotonic()
            due = now - last >= self.settings.reconcile_interval
            if self._restarted or self.reconciler.suspects or due:
                self._restarted, last = False, now
                await until_ready(self.reconciler.sweep)

    async def _trim_loop(self, stop: asyncio.Event) -> None:
        while not await pause(stop, self.settings.trim_interval):
            for shard in self.keyspace.all_shards():
                await until_ready(self._trim_once, shard)
                await until_ready(self._prune_index, shard)
                await until_ready(self._reap_consumers, shard)
            await until_ready(self._prune_agents)

    async def _prune_index(self, shard: int) -> None:
        """Drop expired workflows from the shard's index, walking on from the last pass while
        batches find some, up to ``PRUNE_ROUNDS`` batches (index.py)."""
        for _ in range(PRUNE_ROUNDS):
            start = self._prune_from.get(shard, 0)
            self._prune_from[shard], dropped = await prune(self.redis, self.keyspace, shard, start)
            if not dropped:
                return

    async def _trim_once(self, shard: int) -> None:
        """Trim task and completion streams below what every live group acknowledged and
        below the retention window, dropping expired debug groups first; then the events."""
        seconds, micros = await self.redis.time()
        window_ms = int(self.settings.stream_retention * 1000)
        retained = f"{max(seconds * 1000 + micros // 1000 - window_ms, 0)}-0".encode()
        streams = [(self.keyspace.done(shard), RESOLVER_GROUP)]
        agents = await self.completions.agents(shard)
        streams += [(self.keyspace.tasks(shard, agent), agent) for agent in agents]
        for stream, owner in streams:
            idle = self.settings.debug_group_idle
            expired = await drop_idle_debug_groups(self.redis, stream, owner, idle)
            floor = await acknowledged_floor(self.redis, stream, ignore=expired)
            if floor:
                floor = min(floor, retained, key=codec.entry_order) if window_ms else floor
                await self.redis.xtrim(stream, minid=floor, approximate=False)
        events = self.keyspace.events(shard)
        await self.redis.xtrim(events, maxlen=self.settings.events_maxlen, approximate=True)
        if self.settings.events_max_age is not None:
            oldest_ms = int((seconds - self.settings.events_max_age) * 1000)
            await self.redis.xtrim(events, minid=max(oldest_ms, 0), approximate=False)

    async def _reap_consumers(self, shard: int) -> None:
        """Remove the consumers workers killed outright left in the shard's agent groups
        (``groups.reap``): until then their agents count as served."""
        max_idle = self.settings.consumer_max_idle
        for agent in await shard_agents(self.redis, self.keyspace, shard):
            stream = self.keyspace.tasks(shard, agent)
            reaped = await reap(self.redis, self.keyspace, stream, agent, max_idle)
            if reaped:
                log.info("removed consumers of %s (worker gone): %s", stream, ", ".join(reaped))

    async def _prune_agents(self) -> None:
        """Forget the agents nothing needs any more (``store/agents.py``); a submit naming
        one again adds it back, and a completion for it teaches it again."""
        for shard, pruned in (await prune_agents(self.redis, self.keyspace)).items():
            if pruned:
                log.info("forgot agents nothing uses any more: %s", ", ".join(pruned))
                self.completions.forget(shard, pruned)


async def acknowledged_floor(
    redis: Redis, stream: str, ignore: Collection[bytes] = ()
) -> bytes | None:
    """The lowest id any group but those in ``ignore`` may still need (its oldest pending
    entry, or the last one it read): everything below it is acknowledged by every group that
    counts and safe to trim."""
    floors = [
        last if oldest is None else min(last, oldest, key=codec.entry_order)
        for name, (last, oldest) in (await group_positions(redis, stream)).items()
        if name not in ignore
    ]
    return min(floors, key=codec.entry_order) if floors else None
