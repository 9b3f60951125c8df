"""The worker's outbox: the reports it owes Redis, written by one flusher in transactions.

A report is a completion for ``done`` (or a raw entry for the agent's dead letters) together
with the XACK of the task entry it answers.  Queuing them lets one round trip serve every
task that finished meanwhile.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass

from redis.asyncio import Redis

from streamproc.engine import failpoints
from streamproc.transport.retrying import until_redis_answers


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


class Outbox:
    """Reports queued by :meth:`post` and written by :meth:`flush_loop`."""

    def __init__(self, redis: Redis) -> None:
        self.redis = redis
        self._outbox: list[Report] = []
        self._outbox_ready = asyncio.Event()
        self._writing: list[Report] = []  # the reports being written now
        self._closing = False

    def post(self, report: Report) -> None:
        self._outbox.append(report)
        self._outbox_ready.set()

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
            if self._closing and not self._outbox:
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
