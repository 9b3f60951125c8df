"""The agent worker: reads task-ready events in batches, runs agents, reports completions.

Per (agent, shard) one reader does XREADGROUP COUNT/BLOCK into a shared pool of
``concurrency`` slots.  Starts and finished tasks queue in an outbox that one flusher writes
as a single transaction (``sp_started``, and ``sp_resolve`` applying the completions and
acknowledging their entries; ``outbox.py``).  Keeping
the claims on running entries, and taking over those of a dead worker, is ``claims.py``'s.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping
from functools import partial

from streamproc import metrics
from streamproc.autoscale.fleet import Autoscaler
from streamproc.config import RedisSettings, WorkerSettings
from streamproc.engine.claims import Claims
from streamproc.engine.completions import Completions
from streamproc.engine.consumer import Consumer
from streamproc.engine.linger import Linger
from streamproc.engine.outbox import Outbox
from streamproc.engine.outcome import run_agent
from streamproc.engine.output import OutputWriter
from streamproc.engine.reports import Report
from streamproc.errors import CodecError, ConfigError
from streamproc.registry import AgentFn
from streamproc.runtime import Runtime
from streamproc.store import calls, codec
from streamproc.store.agents import record_served
from streamproc.store.codec import Fields, TaskEvent
from streamproc.store.entries import EntryField as EF
from streamproc.transport.groups import join_group
from streamproc.transport.lane import lane_for
from streamproc.transport.pause import pause
from streamproc.transport.retrying import until_redis_answers

log = logging.getLogger(__name__)
LINGER_TARGET = 16  # entries per read worth waiting for under load (see linger.py)


def now_ms() -> int:
    return time.time_ns() // 1_000_000


class Worker(Consumer):
    """Serves the agents in ``settings.agents`` until :meth:`run`'s stop event is set."""

    def __init__(
        self, redis: RedisSettings, settings: WorkerSettings, agents: Mapping[str, AgentFn]
    ) -> None:
        missing = [name for name in settings.agents if name not in agents]
        if missing:
            raise ConfigError(f"no agent registered as {', '.join(missing)}")
        super().__init__(redis, settings.keyspace, settings.block_ms)
        self.settings = settings
        self.agents = {name: agents[name] for name in settings.agents}
        self.known_agents = frozenset(agents)  # what a Spawn may name
        self.runtime = Runtime(redis, settings.keyspace)
        self._free = settings.concurrency
        self._running: dict[tuple[str, bytes], asyncio.Task[None]] = {}
        completions = Completions(
            self.redis, settings.keyspace, settings.retry_base, settings.retry_cap
        )
        # Flushes go on a lane of their own: redis-py's pipeline cost a flush of one
        # completion more client CPU than the rest of it (none on a Cluster).
        self._flush_lane = lane_for(self.redis)
        self.outbox = Outbox(
            self.redis, settings.keyspace, completions, settings.apply_completions, self._flush_lane
        )
        self.output = OutputWriter(self.redis, settings.keyspace, self.outbox.flushed)
        self._rereading: dict[str, bytes | str] = {}  # stream -> own pending read after this id
        self._slot_freed = asyncio.Event()
        self._closing = asyncio.Event()
        self.claims = Claims(self.redis, settings, self.consumer, self._running, self._reject)
        scale = settings.autoscale
        self.autoscaler = (
            None if scale is None else Autoscaler(self.redis, settings, scale, self.consumer)
        )

    # -- lifecycle ---------------------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        """Serve until ``stop`` is set, then shut down gracefully: stop reading, let running
        tasks finish within the grace period, hand the rest back, leave no pending entry."""
        await until_redis_answers(self._prepare)
        log.info("worker %s serving %s", self.consumer, ",".join(self.agents))
        try:
            await self._serve(stop, watch_until=self._closing)
        finally:
            await self.runtime.close()
        log.info("worker %s stopped", self.consumer)

    async def _start_loops(self, loops: asyncio.TaskGroup, stop: asyncio.Event) -> None:
        """Upkeep loops (heartbeat, sweep, flush, autoscale) outlive the readers: after
        ``stop`` the running tasks finish, the flusher writes their reports, then all end."""
        loops.create_task(self.claims.heartbeat_loop(self._closing))
        loops.create_task(self.claims.sweep_loop(self._closing))
        loops.create_task(self._flush_loop())
        loops.create_task(self.outbox.completions.stower.run())
        loops.create_task(self.output.flush_loop())
        if self.autoscaler is not None:
            loops.create_task(self._autoscale_loop(self.autoscaler))
        async with asyncio.TaskGroup() as readers:
            for agent in self.agents:
                for shard in self.settings.keyspace.all_shards():
                    stream = self.settings.keyspace.tasks(shard, agent)
                    room = partial(self._room, agent)
                    read = partial(self._read_once, agent, shard, stream)
                    linger = Linger(LINGER_TARGET, self.settings.read_linger)
                    readers.create_task(self._read_loop(stop, linger, room, read))
            await stop.wait()
            self._slot_freed.set()  # wake readers waiting for a slot, so they see stop
        await self._finish_running()
        self._closing.set()  # upkeep loops end; the flusher writes what is left first
        self.outbox.close()
        self.output.close()

    async def _flush_loop(self) -> None:
        """The outbox's flusher; the stower ends once it stowed what the last flush ended."""
        try:
            await self.outbox.flush_loop()
        finally:
            self.outbox.completions.stower.close()
            if self._flush_lane is not None:
                await self._flush_lane.close()

    async def _leave(self) -> None:
        await until_redis_answers(self.claims.hand_back)

    async def _join(self) -> None:
        for agent in self.agents:
            for shard in self.settings.keyspace.all_shards():
                stream = self.settings.keyspace.tasks(shard, agent)
                await join_group(self.redis, stream, agent, self.consumer)
        await record_served(self.redis, self.settings.keyspace, list(self.agents))
        if self.autoscaler is not None:
            await self.autoscaler.tick()  # the first budgets, before any read

    async def _finish_running(self) -> None:
        if self._running:
            log.info(
                "waiting up to %ss for %d running tasks",
                self.settings.shutdown_grace,
                len(self._running),
            )
            await asyncio.wait(list(self._running.values()), timeout=self.settings.shutdown_grace)
        for task in list(self._running.values()):
            task.cancel()
        if self._running:
            await asyncio.wait(list(self._running.values()))

    # -- reading and running -----------------------------------------------------------------

    async def _room(self, agent: str) -> int:
        """Free slots ``agent``'s reader may fill.  None (readers of other streams may have
        overshot the pool): wait for one to free up, and answer 0 so the reader asks again."""
        scaler = self.autoscaler
        asked = self._free if scaler is None else scaler.room(agent, self._free)
        if asked <= 0:
            self._slot_freed.clear()
            await self._slot_freed.wait()
        return asked

    async def _read_once(self, agent: str, shard: int, stream: str, count: int) -> int:
        """Start up to ``count`` entries.  A read whose reply was lost with its connection
        delivered its entries all the same: pending with this consumer, they would wait for a
        sweep to count them lost.  So after a failed read, the next reads page through this
        consumer's own pending entries (from id 0) and start those not yet held here, then
        go back to new entries (``>``).  Trimmed ones (no fields) are left to the sweep."""
        after = self._rereading.get(stream, ">")
        if after == ">":
            self._rereading[stream] = "0"  # until this read's reply is in
        block = self.settings.block_ms
        entries = await self.reads.read(agent, stream, after, count, block)
        if after == ">" or not entries:
            del self._rereading[stream]
        else:
            self._rereading[stream] = entries[-1][0]
        held: set[tuple[str, bytes]] = set()
        if after != ">":  # re-reading: skip what runs here or waits to be reported
            held = set(self._running) | self.outbox.held()
        got = 0
        for entry_id, fields in entries:
            if (stream, entry_id) not in held and fields is not None:
                got += 1
                self._start(agent, shard, stream, entry_id, fields)
        return got

    def _start(self, agent: str, shard: int, stream: str, entry_id: bytes, fields: Fields) -> None:
        try:
            event = codec.decode_task(entry_id, fields, agent)
        except CodecError as exc:
            self._reject(agent, shard, stream, entry_id, exc)
            return
        self._free -= 1
        if self.autoscaler is not None:
            self.autoscaler.started(agent)
        task = asyncio.create_task(self._run_task(shard, stream, event))
        self._running[(stream, entry_id)] = task
        task.add_done_callback(lambda _: self._release(agent, stream, entry_id))

    def _release(self, agent: str, stream: str, entry_id: bytes) -> None:
        self._running.pop((stream, entry_id), None)
        self._free += 1
        if self.autoscaler is not None:
            self.autoscaler.finished(agent)
        self._slot_freed.set()

    async def _run_task(self, shard: int, stream: str, event: TaskEvent) -> None:
        """Run the task and report its outcome.  Its start is reported first, so the workflow
        shows it running (``sp_started``) with the next flush, not when it ends."""
        began = now_ms()
        start = calls.Start(
            event.workflow, event.task, event.attempt, event.entry_id, began, self.consumer
        )
        self.outbox.started(shard, stream, start)
        agent = self.agents[event.agent]
        emitter = self.output.emitter(event)
        cap = self.settings.max_result_bytes
        outcome = await run_agent(agent, event, cap, self.runtime, emitter, self.known_agents)
        if emitter.count:
            await self.output.flushed()
        ended = now_ms()
        completion = codec.completion_of(
            event,
            outcome.kind,
            outcome.output,
            began,
            ended,
            self.consumer,
            outcome.adjust,
            outcome.wait,
            outcome.traceback,
            outcome.spawn,
            outcome.awaits,
        )
        metrics.task_finished(event.agent, outcome.kind.decode(), (ended - began) / 1000)
        if self.autoscaler is not None:
            self.autoscaler.observe(event.agent, (ended - began) / 1000)
        self.outbox.finished(shard, stream, completion)

    def _reject(
        self, agent: str, shard: int, stream: str, entry_id: bytes, exc: CodecError
    ) -> None:
        """A malformed entry: fail its task through the resolver when it names one, else park
        the raw entry in the agent's dead letters.  Either way it is acknowledged."""
        keyspace = self.settings.keyspace
        ref = codec.task_ref(exc.fields)
        log.error("malformed task entry %s in %s: %s", entry_id.decode(), stream, exc.reason)
        if ref is None:
            dead: dict[bytes, bytes | str | int] = {
                **codec.parked(exc.fields),
                EF.REASON.key: f"malformed entry: {exc.reason}",
            }
            dead[EF.ENTRY.key] = entry_id
            self.outbox.post(
                Report(shard, stream, agent, entry_id, keyspace.dead(shard, agent), dead)
            )
            return
        event = TaskEvent(entry_id, ref[0], ref[1], agent, ref[2], None, {}, None)
        reason = f"malformed task entry: {exc.reason}".encode()
        completion = codec.completion_of(event, b"fatal", reason, now_ms(), now_ms(), self.consumer)
        self.outbox.finished(shard, stream, completion)

    # -- autoscaling ---------------------------------------------------------------------------

    async def _autoscale_loop(self, scaler: Autoscaler) -> None:
        """Follow the desired counts (streamproc/autoscale/fleet.py); a cut budget retires slots as
        their tasks finish, and a raised one wakes the readers waiting for a slot."""
        while not await pause(self._closing, scaler.settings.interval):
            await until_redis_answers(scaler.tick)
            self._slot_freed.set()
        await until_redis_answers(scaler.leave)
