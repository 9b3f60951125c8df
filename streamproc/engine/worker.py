"""The agent worker: reads task-ready events in batches, runs agents, reports completions.

Per (agent, shard) one reader does XREADGROUP COUNT/BLOCK into a shared pool of
``concurrency`` slots.  Finished tasks queue in an outbox that one flusher writes as a single
pipeline (XADD to ``done`` + XACK).  A heartbeat re-claims the entries still running so their
idle time never reaches the visibility timeout; a sweeper takes over entries that did reach
it (their worker died) and publishes them as a new attempt.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any, cast

from redis.asyncio import Redis

from streamproc import metrics
from streamproc.autoscale.fleet import Autoscaler
from streamproc.config import RedisSettings, WorkerSettings
from streamproc.engine import failpoints, runtime
from streamproc.engine.daemon import pause
from streamproc.engine.linger import Linger
from streamproc.engine.outcome import run_agent
from streamproc.engine.runtime import Runtime
from streamproc.errors import CodecError, ConfigError
from streamproc.registry import AgentFn
from streamproc.store import calls, codec, functions
from streamproc.store.codec import Entry, Fields, StreamReply, TaskEvent
from streamproc.transport.epoch import Epoch
from streamproc.transport.groups import ensure_group, leave_group
from streamproc.transport.preflight import check_server
from streamproc.transport.retrying import until_redis_answers

log = logging.getLogger(__name__)
SWEEP_COUNT = 100
LINGER_TARGET = 16  # entries per read worth waiting for under load (see linger.py)


def consumer_name() -> str:
    return f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"


def now_ms() -> int:
    return time.time_ns() // 1_000_000


@dataclass(frozen=True, slots=True)
class Report:
    """One write: XADD ``fields`` to ``target`` and XACK ``entry_id`` from ``stream`` (both
    keys of ``shard``)."""

    shard: int
    stream: str
    group: str
    entry_id: bytes
    target: str
    fields: Mapping[bytes, bytes | str | int]


class Worker:
    """Serves the agents in ``settings.agents`` until :meth:`run`'s stop event is set."""

    def __init__(
        self, redis: RedisSettings, settings: WorkerSettings, agents: Mapping[str, AgentFn]
    ) -> None:
        missing = [name for name in settings.agents if name not in agents]
        if missing:
            raise ConfigError(f"no agent registered as {', '.join(missing)}")
        redis.check_block(settings.block_ms)
        self.settings = settings
        self.agents = {name: agents[name] for name in settings.agents}
        self.redis: Redis = redis.connect()
        # Reads are never retried by the client: a retried XREADGROUP > would skip the entries
        # whose reply was lost (see _read_once).
        self.reader: Redis = replace(redis, command_retries=0).connect()
        self.consumer = consumer_name()
        self.runtime = Runtime(redis, settings.keyspace)
        self.epoch = Epoch(self.redis, settings.keyspace)
        self._free = settings.concurrency
        self._running: dict[tuple[str, bytes], asyncio.Task[None]] = {}
        self._outbox: list[Report] = []
        self._outbox_ready = asyncio.Event()
        self._writing: list[Report] = []  # the reports being written now
        self._rereading: dict[str, bytes | str] = {}  # stream -> own pending read after this id
        self._slot_freed = asyncio.Event()
        self._closing = asyncio.Event()
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
        runtime.bind(self.runtime)
        try:
            async with asyncio.TaskGroup() as background:
                background.create_task(self.epoch.watch(self._closing))
                background.create_task(self._heartbeat_loop())
                background.create_task(self._sweep_loop())
                background.create_task(self._flush_loop())
                if self.autoscaler is not None:
                    background.create_task(self._autoscale_loop(self.autoscaler))
                async with asyncio.TaskGroup() as readers:
                    for agent in self.agents:
                        for shard in self.settings.keyspace.all_shards():
                            readers.create_task(self._read_loop(agent, shard, stop))
                    await stop.wait()
                    self._slot_freed.set()  # wake readers waiting for a slot, so they see stop
                await self._finish_running()
                self._closing.set()  # upkeep loops end; the flusher writes what is left first
                self._outbox_ready.set()
            await until_redis_answers(self._hand_back)
        except BaseExceptionGroup as errors:
            await self.epoch.raise_reset_behind(errors)
            raise
        finally:
            await self.runtime.close()
            await self.redis.aclose()
            await self.reader.aclose()
        log.info("worker %s stopped", self.consumer)

    async def _prepare(self) -> None:
        await check_server(self.redis)
        await self.epoch.establish()
        await functions.load(self.redis)
        for agent in self.agents:
            for shard in self.settings.keyspace.all_shards():
                await ensure_group(self.redis, self.settings.keyspace.tasks(shard, agent), agent)
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

    async def _hand_back(self) -> None:
        """Requeue what this consumer still holds, then leave the groups."""
        for agent in self.agents:
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
                    await self._requeue(agent, shard, entries, "handed back")
                    log.info("handed back %d tasks of %s", len(ids), agent)
                if not await leave_group(self.redis, stream, agent, self.consumer):
                    log.warning(
                        "%s still holds entries of %s; left for reclaim", self.consumer, stream
                    )

    # -- reading and running -----------------------------------------------------------------

    async def _read_loop(self, agent: str, shard: int, stop: asyncio.Event) -> None:
        stream = self.settings.keyspace.tasks(shard, agent)
        linger = Linger(LINGER_TARGET, self.settings.read_linger)
        while not stop.is_set():
            scaler = self.autoscaler
            asked = self._free if scaler is None else scaler.room(agent, self._free)
            if asked <= 0:  # readers of other streams may have overshot the pool
                self._slot_freed.clear()
                await self._slot_freed.wait()
                continue
            got = await until_redis_answers(self._read_once, agent, shard, stream, asked)
            wait = linger.after_read(got, asked)
            if wait:
                await asyncio.sleep(wait)

    async def _read_once(self, agent: str, shard: int, stream: str, count: int) -> int:
        """Start up to ``count`` entries.  A read whose reply was lost with its connection
        delivered its entries all the same: pending with this consumer, they would wait for a
        sweep to count them lost.  So after a failed read, the next reads page through this
        consumer's own pending entries (from id 0) and start those not yet held here, then
        go back to new entries (``>``).  Trimmed ones (no fields) are left to the sweep."""
        after = self._rereading.get(stream, ">")
        if after == ">":
            self._rereading[stream] = "0"  # until this read's reply is in
        reply = cast(
            StreamReply,
            await self.reader.xreadgroup(
                agent, self.consumer, {stream: after}, count=count, block=self.settings.block_ms
            ),
        )
        entries = [entry for _, batch in reply or () for entry in batch]
        if after == ">" or not entries:
            del self._rereading[stream]
        else:
            self._rereading[stream] = entries[-1][0]
        held: set[tuple[str, bytes]] = set()
        if after != ">":  # re-reading: skip what runs here or waits to be reported
            held = set(self._running) | {
                (r.stream, r.entry_id) for r in self._outbox + self._writing
            }
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
        began = now_ms()
        agent = self.agents[event.agent]
        outcome = await run_agent(agent, event, self.settings.max_result_bytes)
        ended = now_ms()
        fields = codec.encode_completion(
            event,
            outcome.kind,
            outcome.output,
            began,
            ended,
            self.consumer,
            outcome.adjust,
            outcome.wait,
        )
        metrics.task_finished(event.agent, outcome.kind.decode(), (ended - began) / 1000)
        if self.autoscaler is not None:
            self.autoscaler.observe(event.agent, (ended - began) / 1000)
        done = self.settings.keyspace.done(shard)
        self._post(Report(shard, stream, event.agent, event.entry_id, done, fields))

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
                b"reason": f"malformed entry: {exc.reason}",
            }
            dead[b"entry"] = entry_id
            self._post(Report(shard, stream, agent, entry_id, keyspace.dead(shard, agent), dead))
            return
        event = TaskEvent(entry_id, ref[0], ref[1], agent, ref[2], None, {}, None)
        reason = f"malformed task entry: {exc.reason}".encode()
        fields = codec.encode_completion(
            event, b"fatal", reason, now_ms(), now_ms(), self.consumer, None
        )
        self._post(Report(shard, stream, agent, entry_id, keyspace.done(shard), fields))

    # -- reporting ---------------------------------------------------------------------------

    def _post(self, report: Report) -> None:
        self._outbox.append(report)
        self._outbox_ready.set()

    async def _flush_loop(self) -> None:
        while True:
            await self._outbox_ready.wait()
            self._outbox_ready.clear()
            await until_redis_answers(self._flush_once)
            if self._closing.is_set() and not self._outbox:
                return

    async def _flush_once(self) -> None:
        """Write every queued report: per shard, one MULTI/EXEC of the XADDs and their XACKs,
        so an entry is acknowledged only if its report was written (Redis refuses an XADD
        over maxmemory but not an XACK).  A crash after EXEC re-runs nothing; a crash before
        it leaves the entries pending for reclaim, and a duplicate completion of the same
        attempt is ignored by the resolver."""
        if not self._outbox:
            return
        batch, self._outbox = self._outbox, []
        by_shard: dict[int, list[Report]] = {}
        for report in batch:
            by_shard.setdefault(report.shard, []).append(report)
        shards = list(by_shard.values())
        for done, reports in enumerate(shards):
            self._writing = reports
            try:
                await self._write_reports(reports)
            except BaseException:
                self._outbox[:0] = [r for unwritten in shards[done:] for r in unwritten]
                raise
            finally:
                self._writing = []

    async def _write_reports(self, reports: list[Report]) -> None:
        acks: dict[tuple[str, str], list[bytes]] = {}
        pipe = self.redis.pipeline(transaction=True)
        for report in reports:
            pipe.xadd(report.target, report.fields)  # type: ignore[arg-type]
            acks.setdefault((report.stream, report.group), []).append(report.entry_id)
        for (stream, group), ids in acks.items():
            pipe.xack(stream, group, *ids)
        await failpoints.queue_then_die(pipe, "worker.before_exec")
        await failpoints.execute(pipe, "worker.after_xadd_before_xack", len(reports))

    # -- autoscaling ---------------------------------------------------------------------------

    async def _autoscale_loop(self, scaler: Autoscaler) -> None:
        """Follow the desired counts (streamproc/autoscale/fleet.py); a cut budget retires slots as
        their tasks finish, and a raised one wakes the readers waiting for a slot."""
        while not await pause(self._closing, scaler.settings.interval):
            await until_redis_answers(scaler.tick)
            self._slot_freed.set()
        await until_redis_answers(scaler.leave)

    # -- keeping and taking over claims ------------------------------------------------------

    async def _heartbeat_loop(self) -> None:
        while not await pause(self._closing, self.settings.heartbeat_interval):
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

    async def _sweep_loop(self) -> None:
        while True:
            for agent in self.agents:
                for shard in self.settings.keyspace.all_shards():
                    await until_redis_answers(self._sweep_once, agent, shard)
            if await pause(self._closing, self.settings.claim_interval):
                return

    async def _sweep_once(self, agent: str, shard: int) -> None:
        """Take over entries idle past the visibility timeout (their worker is gone)."""
        stream = self.settings.keyspace.tasks(shard, agent)
        min_idle = int(self.settings.visibility_timeout * 1000)
        start: bytes | str = "0-0"
        for _ in range(100):
            start, entries, deleted = await self.redis.xautoclaim(
                stream, agent, self.consumer, min_idle, start, count=SWEEP_COUNT
            )
            if deleted:
                await self._dead_letter_trimmed(agent, shard, deleted)
            if entries:
                await self._requeue(agent, shard, entries, "reclaimed")
            if start in (b"0-0", "0-0"):
                return

    async def _requeue(self, agent: str, shard: int, entries: list[Entry], reason: str) -> None:
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
            await calls.requeue(self.redis, keyspace, shard, reason, max_lost, items)

    async def _dead_letter_trimmed(self, agent: str, shard: int, deleted: list[bytes]) -> None:
        pipe = self.redis.pipeline(transaction=False)
        for entry_id in deleted:
            log.error("pending entry %s of %s was trimmed before ack", entry_id.decode(), agent)
            fields = {
                "v": "1",
                "agent": agent,
                "entry": entry_id,
                "reason": "payload trimmed before ack",
            }
            pipe.xadd(self.settings.keyspace.dead(shard, agent), fields)  # type: ignore[arg-type]
        await pipe.execute()
