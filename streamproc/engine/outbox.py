"""The worker's outbox: the reports it owes Redis, written by one flusher in transactions.

A completion is applied by the worker itself: ``sp_resolve`` records it, publishes what it
made ready and acknowledges the task entry it answers, in one call (``completions.py``).  A
worker whose Redis user may not write every agent's task stream (a least-privilege ACL user,
``deploy/acl.conf``) reports its completions to ``done`` instead, each with the XACK of its
task entry, and the resolver applies them.  A raw entry for an agent's dead letters goes the
same way.  A start says a task began (``sp_started``).  Queuing them lets one round trip
serve every task that started or finished meanwhile.  A start whose task's completion goes in
the same flush (a task quicker than a round trip) is not sent at all: ``sp_resolve`` records
it with the completion, as it does for any start it never saw.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import defaultdict
from typing import Any

from redis.asyncio import Redis
from redis.asyncio.client import Pipeline
from redis.exceptions import NoPermissionError

from streamproc.engine import failpoints
from streamproc.engine.completions import Completions
from streamproc.engine.reports import Batch, Finished, Report, missing_library, queue_reports
from streamproc.store import calls
from streamproc.store.codec import Acks, Completion, completion_fields
from streamproc.store.keys import Keyspace
from streamproc.transport.lane import Lane, execute_queued
from streamproc.transport.retrying import until_redis_answers

log = logging.getLogger(__name__)
BATCH = 500  # completions per sp_resolve call at most, as the resolver's batch


class Outbox:
    """Reports, completions and starts queued by :meth:`post`, :meth:`finished` and
    :meth:`started`, written by :meth:`flush_loop`."""

    def __init__(
        self,
        redis: Redis,
        keyspace: Keyspace,
        completions: Completions,
        applying: bool = True,
        lane: Lane | None = None,
    ) -> None:
        self.redis = redis
        self.keyspace = keyspace
        self.completions = completions
        self._applying = applying  # until Redis refuses this user the keys of applying them
        self._outbox: list[Report] = []
        self._finished: list[Finished] = []
        self._starts: list[tuple[int, str, calls.Start]] = []
        self._outbox_ready = asyncio.Event()
        self._writing: Batch | None = None  # the batch being written now
        self._closing = False
        self._posted = self._written = 0  # items queued, and written
        self._flushed = asyncio.Condition()
        self._lane = lane  # applying flushes run on it, if given (its owner closes it)

    def post(self, report: Report) -> None:
        self._outbox.append(report)
        self._queued()

    def finished(self, shard: int, stream: str, completion: Completion) -> None:
        """Report ``completion``, of a task entry of ``stream``, with the next flush."""
        self._finished.append(Finished(shard, stream, completion))
        self._queued()

    def started(self, shard: int, stream: str, start: calls.Start) -> None:
        """Record that a task of ``shard`` (its entry in ``stream``) began, with the next
        flush."""
        self._starts.append((shard, stream, start))
        self._queued()

    def _queued(self) -> None:
        self._posted += 1
        self._outbox_ready.set()

    async def flushed(self) -> None:
        """Return once everything queued so far is written: a task's output waits for its
        start, so no reader sees a chunk before the task began."""
        target = self._posted
        async with self._flushed:
            await self._flushed.wait_for(lambda: self._written >= target)

    def held(self) -> set[tuple[str, bytes]]:
        """The (stream, entry id) of every task entry whose report is not yet written:
        queued or being written."""
        writing = self._writing or Batch()
        reports = self._outbox + writing.reports
        finished = self._finished + writing.finished
        return {(r.stream, r.entry_id) for r in reports} | {
            (f.stream, f.completion.source) for f in finished
        }

    def close(self) -> None:
        """No report comes any more: :meth:`flush_loop` ends once it has written the rest."""
        self._closing = True
        self._outbox_ready.set()

    async def flush_loop(self) -> None:
        while True:
            await self._outbox_ready.wait()
            self._outbox_ready.clear()
            await until_redis_answers(self._flush_once)
            if self._closing and not (self._outbox or self._finished or self._starts):
                return

    async def _flush_once(self) -> None:
        """Write everything queued, per shard in one MULTI/EXEC, so a task entry is
        acknowledged only with its completion (Redis refuses an XADD over maxmemory but not
        an XACK).  A crash after EXEC re-runs nothing; a crash before it leaves the entries
        pending for reclaim, and a duplicate completion of the same attempt is ignored.  A
        start is posted before its task's completion and written in the same or an earlier
        transaction; a lost one (a crash) leaves ``sp_resolve`` to record it with the
        completion, and a repeated one changes nothing; so a start whose completion is in
        this flush is left to ``sp_resolve``.  What a failed write left undone is queued
        again, first."""
        by_shard: defaultdict[int, Batch] = defaultdict(Batch)
        reported: set[tuple[str, bytes | str]] = set()
        for report in self._outbox:
            by_shard[report.shard].reports.append(report)
            reported.add((report.stream, report.entry_id))
        for done in self._finished:
            by_shard[done.shard].finished.append(done)
            reported.add((done.stream, done.completion.source))
        for shard, stream, start in self._starts:
            batch = by_shard[shard]
            covered = (stream, start.entry) in reported
            (batch.covered if covered else batch.starts).append((stream, start))
        self._outbox, self._finished, self._starts = [], [], []
        shards = list(by_shard.items())
        for position, (shard, batch) in enumerate(shards):
            self._writing, size = batch, len(batch)
            try:
                await self._write(shard, batch)
            except BaseException:
                for unwritten_shard, unwritten in reversed(shards[position:]):
                    self._outbox[:0] = unwritten.reports
                    self._finished[:0] = unwritten.finished
                    starts = unwritten.starts + unwritten.covered
                    self._starts[:0] = [(unwritten_shard, *start) for start in starts]
                raise
            finally:
                self._writing = None
                async with self._flushed:
                    self._written += size - len(batch)
                    self._flushed.notify_all()

    async def _write(self, shard: int, batch: Batch) -> None:
        """Write ``batch``, emptying it of what was written."""
        if self._applying and batch.finished:
            try:
                await self._write_applying(shard, batch)
                return
            except NoPermissionError as exc:
                log.warning(
                    "this worker's Redis user may not apply completions (%s): they go to the "
                    "resolver through the completion stream",
                    exc,
                )
                self._applying = False
        await self._write_reports(shard, batch)

    async def _write_applying(self, shard: int, batch: Batch) -> None:
        """One transaction: the reports, the starts, and ``sp_resolve`` calls applying the
        completions.  A call that stopped at an agent it had no keys for, or found the
        library missing, leaves the rest to :meth:`Completions.apply`, after the EXEC."""
        pipe = self.redis.pipeline(transaction=True)
        queue_reports(pipe, batch.reports)
        starts = self._queue_starts(pipe, shard, batch.starts)
        chunks = [
            batch.finished[first : first + BATCH] for first in range(0, len(batch.finished), BATCH)
        ]
        for chunk in chunks:
            completions = [done.completion for done in chunk]
            args = await self.completions.arguments(shard, completions, Acks.TASKS)
            calls.RESOLVE.queue(pipe, args)
        await failpoints.queue_then_die(pipe, "worker.before_exec")
        began = time.perf_counter()
        replies = await execute_queued(pipe, self._lane)
        seconds = time.perf_counter() - began
        applied = replies[len(replies) - len(chunks) :]
        await self._settle(starts, replies[: len(replies) - len(chunks)])
        batch.reports, batch.starts, batch.covered = [], [], []
        left: list[Finished] = []
        error: Exception | None = None
        for chunk, reply in zip(chunks, applied, strict=True):
            if isinstance(reply, Exception):
                left += chunk
                error = error or (None if missing_library(reply) else reply)
                continue
            resolved = calls.RESOLVE.reply(reply)
            self.completions.record(shard, resolved, seconds)
            left += chunk[resolved.consumed :]
            if resolved.missing:
                self.completions.learn(shard, resolved.missing)
        batch.finished = left
        if error is not None:
            raise error
        if left:
            await self.completions.apply(shard, [d.completion for d in left], Acks.TASKS)
        batch.finished = []

    async def _write_reports(self, shard: int, batch: Batch) -> None:
        """One transaction: the reports, each completion as a ``done`` entry, the XACKs of
        the task entries they answer, and the starts."""
        done = self.keyspace.done(shard)
        reports = batch.reports + [
            Report(
                shard,
                f.stream,
                f.completion.agent.decode(),
                f.completion.source,
                done,
                completion_fields(f.completion),
            )
            for f in batch.finished
        ]
        pipe = self.redis.pipeline(transaction=True)
        queue_reports(pipe, reports)
        starts = self._queue_starts(pipe, shard, batch.starts)
        if reports:  # the crash windows are those of a flush that reports outcomes
            await failpoints.queue_then_die(pipe, "worker.before_exec")
            split = len(reports)
            replies = await failpoints.execute(pipe, "worker.after_xadd_before_xack", split)
        else:
            replies = await pipe.execute(raise_on_error=False)
        await self._settle(starts, replies)
        batch.reports, batch.finished, batch.starts, batch.covered = [], [], [], []

    def _queue_starts(
        self, pipe: Pipeline, shard: int, starts: list[tuple[str, calls.Start]]
    ) -> list[Any]:
        """Queue the ``sp_started`` call of ``starts`` (none when empty); its arguments."""
        arguments = starts and calls.started_arguments(
            self.keyspace, shard, [start for _, start in starts]
        )
        if arguments:
            calls.STARTED.queue(pipe, arguments)
        return arguments

    async def _settle(self, starts: list[Any], replies: list[Any]) -> None:
        """Raise the first error among ``replies``; the starts call, last of them, is made
        again on its own (loading the library) when Redis lacked the library."""
        if starts and missing_library(replies[-1]):
            await calls.STARTED(self.redis, starts)
            replies = replies[:-1]
        errors = [reply for reply in replies if isinstance(reply, Exception)]
        if errors:
            raise errors[0]
