"""Reconciliation: find queued tasks that no stream will ever deliver, and publish them again.

Every engine write is one function call or one MULTI/EXEC, and Redis loads a torn AOF up to
its last whole command (an unfinished MULTI is dropped), so after a crash, even one that lost
the AOF's last second, workflow state and streams still agree.  What can part them comes from
outside: an undelivered entry trimmed or deleted by hand, a restore that mixes files.  A
queued task whose current entry is neither pending in its group nor still ahead of the
group's read position would wait forever.

The resolver sweeps each shard at start, after Redis restarts (``epoch.py``) and every
``reconcile_interval``.  A task found stranded may only have its completion on its way (a
worker acknowledges the entry as it writes the completion, which the resolver applies
later), so it is published again, as a new attempt by ``sp_requeue`` with reason
``reconciled``, only on a later sweep that finds it still stranded after the resolver has
applied every completion written before it was first seen.  A late completion of the old
attempt is then refused as superseded.

A sweep reads every workflow hash of the shard, so it also hands the ended ones it finds,
those whose worker died before stowing them, to the resolver's stower (``stower.py``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from functools import partial
from typing import NamedTuple, cast

from redis.asyncio import Redis
from redis.exceptions import ResponseError

from streamproc.engine.stower import Stower
from streamproc.store import calls, fields
from streamproc.store.codec import entry_order
from streamproc.store.fields import WorkflowField
from streamproc.store.keys import RESOLVER_GROUP, Keyspace
from streamproc.store.state import WorkflowStatus
from streamproc.transport.groups import group_positions

log = logging.getLogger(__name__)
Ended = Callable[[list[str]], None]
SCAN_COUNT = 500
NEVER_DEAD_LETTER = 1 << 30  # sp_requeue's lost-delivery cap: a re-drive is no lost delivery


class Queued(NamedTuple):
    workflow: str
    task: str
    attempt: int
    agent: str
    entry: bytes


async def queued_tasks(
    redis: Redis, keyspace: Keyspace, shard: int, ended: Ended | None = None
) -> list[Queued]:
    """Every queued or running task of the shard's running workflows; ``ended`` is given the
    ids of the ended workflows found still hashes (their stower did not stow them)."""
    found: list[Queued] = []
    keys = [key async for key in redis.scan_iter(match=keyspace.workflows(shard), count=SCAN_COUNT)]
    running = WorkflowStatus.RUNNING.encode()
    for start in range(0, len(keys), SCAN_COUNT):
        batch = keys[start : start + SCAN_COUNT]
        pipe = redis.pipeline(transaction=False)
        for key in batch:
            pipe.hget(key, WorkflowField.STATUS)
        statuses = list(zip(batch, await pipe.execute(), strict=True))
        live = [k for k, status in statuses if status == running]
        if ended is not None:
            ended([_id(k) for k, status in statuses if status not in (running, None)])
        pipe = redis.pipeline(transaction=False)
        for key in live:
            pipe.hgetall(key)
        hashes = cast(list[dict[bytes, bytes]], await pipe.execute())  # [] for none
        for key, raw in zip(live, hashes, strict=True):
            found += (Queued(_id(key), *queued) for queued in fields.queued_tasks(raw))
    return found


def _id(key: bytes) -> str:
    """The workflow id of a hash key."""
    return key.decode().rsplit(":wf:", 1)[1]


async def stranded(
    redis: Redis, keyspace: Keyspace, shard: int, ended: Ended | None = None
) -> set[Queued]:
    """Queued tasks whose entry is neither pending nor yet to be read by their agent's group
    (``ended``: as for :func:`queued_tasks`)."""
    out: set[Queued] = set()
    tasks = await queued_tasks(redis, keyspace, shard, ended)
    for agent in {t.agent for t in tasks}:
        stream = keyspace.tasks(shard, agent)
        group = (await group_positions(redis, stream)).get(agent.encode())
        read_up_to = entry_order(group[0]) if group else (0, 0)
        mine = [t for t in tasks if t.agent == agent]
        pipe = redis.pipeline(transaction=False)
        for t in mine:
            pipe.xrange(stream, t.entry, t.entry, count=1)
            if group:
                pipe.xpending_range(stream, agent, t.entry, t.entry, 1)
        replies = iter(await pipe.execute())
        for t in mine:
            exists = bool(next(replies))
            pending = bool(next(replies)) if group else False
            ahead = group is None or entry_order(t.entry) > read_up_to  # no group: read all
            if not pending and not (exists and ahead):
                out.add(t)
    return out


async def redrive(redis: Redis, keyspace: Keyspace, shard: int, tasks: Iterable[Queued]) -> int:
    """Publish each task again as a new attempt (only if it is still that queued attempt)."""
    tasks = list(tasks)
    for t in tasks:
        log.warning(
            "task was queued but no stream held it: publishing it again",
            extra={"wf": t.workflow, "task": t.task, "attempt": t.attempt},
        )
    items = [calls.Requeue(t.entry, t.workflow, t.task, t.attempt, t.agent) for t in tasks]
    reason = calls.RequeueReason.RECONCILED
    requeued = await calls.requeue(redis, keyspace, shard, reason, NEVER_DEAD_LETTER, items)
    return requeued.moved  # never dead-letters, so it never fails a workflow


class Reconciler:
    """Remembers, for each stranded task, the completion stream's newest entry when the task
    was first seen stranded; re-drives it once the resolver has applied every completion up
    to that entry and the task is still stranded (a completion of it would have been among
    them: a worker writes the completion and acknowledges the task entry in one MULTI)."""

    def __init__(self, redis: Redis, keyspace: Keyspace, stower: Stower | None = None) -> None:
        self.redis, self.keyspace = redis, keyspace
        self.stower = stower  # given the ended workflows a sweep finds still hashes
        self.first_seen: dict[Queued, tuple[int, int]] = {}

    async def sweep(self) -> int:
        """One pass over every shard; the number of tasks published again."""
        moved, seen = 0, dict[Queued, tuple[int, int]]()
        for shard in self.keyspace.all_shards():
            ended = None if self.stower is None else partial(self.stower.add, shard)
            found = await stranded(self.redis, self.keyspace, shard, ended)
            if not found:
                continue
            unapplied = await first_unapplied(self.redis, self.keyspace.done(shard))
            due = [t for t in found if t in self.first_seen and self.first_seen[t] < unapplied]
            if due:
                moved += await redrive(self.redis, self.keyspace, shard, due)
            newest = await newest_entry(self.redis, self.keyspace.done(shard))
            seen |= {t: self.first_seen.get(t, newest) for t in found if t not in due}
        self.first_seen = seen
        return moved

    @property
    def suspects(self) -> int:
        return len(self.first_seen)


async def newest_entry(redis: Redis, stream: str) -> tuple[int, int]:
    """The id of the newest entry ever added to ``stream`` (0-0 if none)."""
    try:
        info = await redis.xinfo_stream(stream)
    except ResponseError:  # no such stream
        return (0, 0)
    return entry_order(info["last-generated-id"])


async def first_unapplied(redis: Redis, done: str) -> tuple[int, int]:
    """The lowest completion id the resolver has not applied yet: its oldest pending one, or
    the one after the last it read (0-1 before it has read any)."""
    last, oldest = (await group_positions(redis, done)).get(RESOLVER_GROUP.encode(), (b"0-0", None))
    if oldest is not None:
        return entry_order(oldest)
    ms, seq = entry_order(last)
    return ms, seq + 1
