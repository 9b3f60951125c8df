"""The worker's outbox: the reports it owes Redis, written by one flusher in transactions.

A report is a completion for ``done`` (or a raw entry for the agent's dead letters) together
with the XACK of the task entry it answers; a start says a task began (``sp_started``).
Queuing them lets one round trip serve every task that started or finished meanwhile: the
starts of one read ride with the reports of tasks that finished, so recording them costs
Redis a function call per flush, not a round trip per task.  A start whose task's report goes
in the same flush (a task quicker than a round trip) is not sent at all: the resolver records
it with the completion, as it does for any start it never saw (``sp_resolve``).
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import NamedTuple

from redis.asyncio import Redis
from redis.exceptions import ResponseError

from streamproc.engine import failpoints
from streamproc.store import calls
from streamproc.store.functions import is_missing_library
from streamproc.store.keys import Keyspace
from streamproc.transport.retrying import until_redis_answers


class Report(NamedTuple):
    """One write: XADD ``fields`` to ``target`` and XACK ``entry_id`` from ``stream`` (both
    keys of ``shard``).  A named tuple: one is made per task."""

    shard: int
    stream: str
    group: str
    entry_id: bytes
    target: str
    fields: Mapping[bytes, bytes | str | int]


@dataclass(slots=True)
class _Batch:
    """What one shard's transaction writes."""

    reports: list[Report] = field(default_factory=list)
    starts: list[tuple[str, calls.Start]] = field(default_factory=list)  # (its stream, start)
    covered: list[tuple[str, calls.Start]] = field(default_factory=list)  # their reports here


class Outbox:
    """Reports and starts queued by :meth:`post` and :meth:`started`, written by
    :meth:`flush_loop`."""

    def __init__(self, redis: Redis, keyspace: Keyspace) -> None:
        self.redis = redis
        self.keyspace = keyspace
        self._outbox: list[Report] = []
        self._starts: list[tuple[int, str, calls.Start]] = []
        self._outbox_ready = asyncio.Event()
        self._writing: list[Report] = []  # the reports being written now
        self._closing = False
        self._posted = self._written = 0  # reports and starts queued, and written
        self._flushed = asyncio.Condition()

    def post(self, report: Report) -> None:
        self._outbox.append(report)
        self._posted += 1
        self._outbox_ready.set()

    def started(self, shard: int, stream: str, start: calls.Start) -> None:
        """Record that a task of ``shard`` (its entry in ``stream``) began, with the next
        flush."""
        self._starts.append((shard, stream, start))
        self._posted += 1
        self._outbox_ready.set()

    async def flushed(self) -> None:
        """Return once everything queued so far is written: a task's output waits for its
        start, so no reader sees a chunk before the task began."""
        target = self._posted
        async with self._flushed:
            await self._flushed.wait_for(lambda: self._written >= target)

    def held(self) -> set[tuple[str, bytes]]:
        """The (stream, entry id) of every report not yet written: queued or being written."""
        return {(r.stream, r.entry_id) for r in self._outbox + self._writing}

    def close(self) -> None:
        """No report comes any more: :meth:`flush_loop` ends once it has written the rest."""
        self._closing = True
        self._outbox_ready.set()

    async def flush_loop(self) -> None:
        while True:
            await self._outbox_ready.wait()
            self._outbox_ready.clear()
            await until_redis_answers(self._flush_once)
            if self._closing and not (self._outbox or self._starts):
                return

    async def _flush_once(self) -> None:
        """Write everything queued: per shard, one MULTI/EXEC of the XADDs, their XACKs and
        the starts, so an entry is acknowledged only if its report was written (Redis refuses
        an XADD over maxmemory but not an XACK).  A crash after EXEC re-runs nothing; a crash
        before it leaves the entries pending for reclaim, and a duplicate completion of the
        same attempt is ignored by the resolver.  A start is posted before its task's report
        and written in the same or an earlier transaction; a lost one (a crash) leaves the
        resolver to emit it with the completion, and a repeated one changes nothing; so a start
        whose report is in this flush is left to the resolver."""
        by_shard: defaultdict[int, _Batch] = defaultdict(_Batch)
        reported: set[tuple[str, bytes | str]] = set()
        for report in self._outbox:
            by_shard[report.shard].reports.append(report)
            reported.add((report.stream, report.entry_id))
        for shard, stream, start in self._starts:
            batch = by_shard[shard]
            covered = (stream, start.entry) in reported
            (batch.covered if covered else batch.starts).append((stream, start))
        self._outbox, self._starts = [], []
        shards = list(by_shard.items())
        for done, (shard, batch) in enumerate(shards):
            self._writing = batch.reports
            try:
                await self._write(shard, batch)
            except BaseException:
                for unwritten_shard, unwritten in reversed(shards[done:]):
                    self._outbox[:0] = unwritten.reports
                    starts = unwritten.starts + unwritten.covered
                    self._starts[:0] = [(unwritten_shard, *start) for start in starts]
                raise
            finally:
                self._writing = []
            async with self._flushed:
                self._written += len(batch.reports) + len(batch.starts) + len(batch.covered)
                self._flushed.notify_all()

    async def _write(self, shard: int, batch: _Batch) -> None:
        acks: dict[tuple[str, str], list[bytes]] = {}
        pipe = self.redis.pipeline(transaction=True)
        for report in batch.reports:
            pipe.xadd(report.target, report.fields)  # type: ignore[arg-type]
            acks.setdefault((report.stream, report.group), []).append(report.entry_id)
        for (stream, group), ids in acks.items():
            pipe.xack(stream, group, *ids)
        starts = batch.starts and calls.started_arguments(
            self.keyspace, shard, [start for _, start in batch.starts]
        )
        if starts:
            calls.STARTED.queue(pipe, starts)
        if batch.reports:  # the crash windows are those of a flush that reports outcomes
            await failpoints.queue_then_die(pipe, "worker.before_exec")
            split = len(batch.reports)
            replies = await failpoints.execute(pipe, "worker.after_xadd_before_xack", split)
        else:
            replies = await pipe.execute(raise_on_error=False)
        if starts and _missing_library(replies[-1]):
            await calls.STARTED(self.redis, starts)  # loads the library first
            replies.pop()
        errors = [reply for reply in replies if isinstance(reply, Exception)]
        if errors:
            raise errors[0]


def _missing_library(reply: object) -> bool:
    """Redis lost the engine's functions (flushed): the rest of the transaction still ran."""
    return isinstance(reply, ResponseError) and is_missing_library(reply)
