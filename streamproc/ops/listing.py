"""Listing workflows, newest first across every shard, from the shards' indexes (``keys.py``
``index``), without SCAN.

Each shard's index is read newest first a chunk at a time (ZREVRANGEBYSCORE) and the shards
are merged by (created, id), descending: a total order, so a cursor naming the last position
examined continues without duplicates or gaps, whatever was submitted since.  Only the
summary fields of a page's workflows are read (two pipelined HMGETs: the workflow's own
fields, then its tasks' states), never a whole hash.

Filters on the id prefix (a tenant's ``<tenant>.``) cost no Redis read; filters on status
and name read each candidate's summary.  One page examines at most ``SCAN_BUDGET`` index
members, so a filtered page may hold fewer than ``limit`` workflows with a cursor to go on
from; only a null cursor means there are no more.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any, cast

from redis.asyncio import Redis

from streamproc.engine.index import unindex_missing
from streamproc.errors import SpecError
from streamproc.ops.cursors import Position, decode_cursor, encode_cursor
from streamproc.store import folded
from streamproc.store.fields import TaskField, WorkflowField
from streamproc.store.keys import Keyspace
from streamproc.store.state import TaskStatus, WorkflowStatus

DEFAULT_LIMIT = 50
MAX_LIMIT = 500
SCAN_BUDGET = 5000  # index members one page may examine
CHUNK = 200  # index members read from a shard at a time, at most
SUMMARY = (
    WorkflowField.STATUS,
    WorkflowField.NAME,
    WorkflowField.CREATED,
    WorkflowField.ENDED,
    WorkflowField.REASON,
    WorkflowField.ORDER,
)


def parse_since(value: str | int | datetime) -> int:
    """``since`` as ms epoch: an integer, or an ISO-8601 time (UTC unless it names a zone)."""
    if isinstance(value, datetime):
        moment = value
    elif isinstance(value, bool) or not isinstance(value, int | str):
        raise SpecError(f"invalid since {value!r}: use ms since the epoch, ISO-8601 or a datetime")
    elif isinstance(value, int) or value.isdigit():
        return int(value)
    else:
        try:
            moment = datetime.fromisoformat(value)
        except ValueError:
            raise SpecError(
                f"invalid since {value!r}: use ms since the epoch or an ISO-8601 time"
            ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp() * 1000)


@dataclass(frozen=True)
class Query:
    """What to list: filters, page size, where the previous page stopped, and the id prefix a
    tenant's workflows carry ("" for every workflow)."""

    status: str | None = None
    name: str | None = None
    since: int | None = None
    limit: int = DEFAULT_LIMIT
    cursor: str | None = None
    prefix: str = ""

    def __post_init__(self) -> None:
        if self.status is not None and self.status not in set(WorkflowStatus):
            known = "|".join(WorkflowStatus)
            raise SpecError(f"invalid status {self.status!r}: use {known}")
        if self.name is not None and not isinstance(self.name, str):
            raise SpecError(f"invalid name {self.name!r}: a workflow's name is text")
        if isinstance(self.limit, bool) or not isinstance(self.limit, int):
            raise SpecError(
                f"invalid limit {self.limit!r}: use a whole number from 1 to {MAX_LIMIT}"
            )
        if not 1 <= self.limit <= MAX_LIMIT:
            raise SpecError(f"invalid limit {self.limit!r}: use 1 to {MAX_LIMIT}")
        if self.since is not None and self.since < 0:
            raise SpecError(f"invalid since {self.since!r}: use a time after the epoch")
        if self.cursor is not None and not isinstance(self.cursor, str):
            raise SpecError(f"invalid cursor {self.cursor!r}: pass the one a page gave")
        if self.cursor is not None:
            decode_cursor(self.cursor)

    @property
    def reads_summaries(self) -> bool:
        """Whether it filters on what only a workflow's hash says (status, name)."""
        return self.status is not None or self.name is not None

    def wants(self, raw: list[bytes | None]) -> bool:
        status, name = raw[0], raw[1]
        if self.status is not None and status != self.status.encode():
            return False
        return self.name is None or name == self.name.encode()


@dataclass(frozen=True)
class WorkflowSummary:
    """One listed workflow: ``tasks`` counts them (``total``, then one count per state)."""

    id: str
    name: str
    status: str
    created: int
    ended: int | None
    tasks: dict[str, int]
    reason: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class WorkflowPage:
    """A page of workflows, newest first; ``cursor`` fetches the next (None: no more)."""

    workflows: list[WorkflowSummary] = field(default_factory=list)
    cursor: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"workflows": [w.to_dict() for w in self.workflows], "cursor": self.cursor}


class _ShardReader:
    """One shard's index from a position down, newest first, a chunk at a time.  Each read
    goes on from the last score read, skipping by offset only the members it already read at
    that score, so members dropped or added elsewhere in the index shift nothing."""

    def __init__(self, redis: Redis, key: str, after: Position | None, since: int | None):
        self.redis, self.key, self.origin = redis, key, after
        self.last = after
        self.ties = 0  # members already read at the score of ``last``
        self.bottom: float | str = "-inf" if since is None else since
        self.exhausted = False

    async def read(self, count: int) -> list[Position]:
        """The next ``count`` members at most (fewer once it is exhausted)."""
        top: float | str = "+inf" if self.last is None else self.last[0]
        rows = cast(
            list[tuple[bytes, float]],
            await self.redis.zrevrangebyscore(
                self.key, top, self.bottom, start=self.ties, num=count, withscores=True
            ),
        )
        found = [(int(score), member.decode()) for member, score in rows]
        self.exhausted = len(found) < count
        if found:
            oldest = found[-1][0]
            same = sum(1 for created, _ in found if created == oldest)
            at_top = self.last is not None and oldest == self.last[0]
            self.ties = self.ties + same if at_top else same
            self.last = found[-1]
        return [p for p in found if self.origin is None or p < self.origin]  # ties read again


class _Merge:
    """The shards' indexes merged newest first: positions are taken one at a time."""

    def __init__(self, readers: list[_ShardReader], chunk: int) -> None:
        self.readers, self.chunk = readers, chunk
        self.buffers: list[list[Position]] = [[] for _ in readers]  # each newest last

    async def _fill(self, i: int) -> None:
        while not self.buffers[i] and not self.readers[i].exhausted:
            self.buffers[i] = (await self.readers[i].read(self.chunk))[::-1]

    async def take(self, count: int) -> list[Position]:
        """The next ``count`` positions at most (fewer: none are left)."""
        taken: list[Position] = []
        while len(taken) < count:
            await asyncio.gather(*(self._fill(i) for i in range(len(self.readers))))
            heads = [(buffer[-1], i) for i, buffer in enumerate(self.buffers) if buffer]
            if not heads:
                break
            _, newest = max(heads)
            taken.append(self.buffers[newest].pop())
        return taken

    def done(self) -> bool:
        return all(not b and r.exhausted for b, r in zip(self.buffers, self.readers, strict=True))


def _counts(states: Iterator[bytes | None]) -> dict[str, int]:
    counts = {"total": 0, **{state.value: 0 for state in TaskStatus}}
    for state in states:
        counts["total"] += 1
        if state is not None:
            text = state.decode()
            counts[text] = counts.get(text, 0) + 1
    return counts


async def list_workflows(redis: Redis, keyspace: Keyspace, query: Query) -> WorkflowPage:
    """One page of workflows newest first, as ``query`` asks (see the module)."""
    after = None if query.cursor is None else decode_cursor(query.cursor, query.prefix)
    readers = [
        _ShardReader(redis, keyspace.index(shard), after, query.since)
        for shard in keyspace.all_shards()
    ]
    merge = _Merge(readers, min(CHUNK, query.limit + 1))
    found: list[WorkflowSummary] = []
    expired: list[str] = []
    examined, cursor = 0, None
    while examined < SCAN_BUDGET and len(found) < query.limit:
        needed = query.limit - len(found)
        # Every position is listed unless it expired, but for a tenant's or a filter's.
        some = CHUNK if query.prefix or query.reads_summaries else needed
        batch = await merge.take(min(some, SCAN_BUDGET - examined))
        if not batch:
            cursor = None
            break
        mine = [wf for _, wf in batch if wf.startswith(query.prefix)]
        summaries = await _summaries(redis, keyspace, query, mine, needed, expired)
        for position in batch:
            examined += 1
            summary = summaries.get(position[1])
            if summary is not None:
                found.append(summary)
            if len(found) == query.limit:
                break
        more = position != batch[-1] or not merge.done()
        cursor = encode_cursor(position, query.prefix) if more else None
    await unindex_missing(redis, keyspace, expired)
    return WorkflowPage(found, cursor)


async def _summaries(
    redis: Redis,
    keyspace: Keyspace,
    query: Query,
    workflow_ids: list[str],
    needed: int,
    expired: list[str],
) -> dict[str, WorkflowSummary]:
    """The summaries of the first ``needed`` of ``workflow_ids`` that ``query`` wants (the
    page is full at the last); adds those that expired to ``expired``."""
    if not workflow_ids:
        return {}
    rows = await folded.hmget_many(redis, keyspace, [(wf, SUMMARY) for wf in workflow_ids])
    expired += [wf for wf, row in zip(workflow_ids, rows, strict=True) if row[0] is None]
    wanted = [(wf, row) for wf, row in zip(workflow_ids, rows, strict=True) if row[0] is not None]
    wanted = [(wf, row) for wf, row in wanted if query.wants(row)][:needed]
    asked = [
        (workflow_id, [TaskField.STATE.of(t) for t in (row[5] or b"").decode().split()])
        for workflow_id, row in wanted
    ]
    states = await folded.hmget_many(redis, keyspace, asked)
    out = {}
    for (workflow_id, row), task_states in zip(wanted, states, strict=True):
        status, name, created, ended, reason, order = row
        out[workflow_id] = WorkflowSummary(
            id=workflow_id,
            name=(name or b"").decode(errors="replace"),
            status=(status or b"").decode(),
            created=int(created or 0),
            ended=int(ended) if ended else None,
            tasks=_counts(iter(task_states if order else [])),
            reason=(reason or b"").decode(errors="replace"),
        )
    return out
