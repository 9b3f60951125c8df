"""Following lifecycle events over every shard (``streamproc events``), and the events as
their readers see them.

Each shard has its own events stream, so one ``XREAD BLOCK`` reads them all and the entries of
each reply are put in id (time) order.  Following one workflow (``follow.py``) reads only its
own history and output streams (the chunks its agents emit, as ``output`` events), merged by
id.  Each stream numbers the entries of a millisecond on its own, so within one millisecond
the output entries come first: a task's chunks are written before its end is, so they come
before its ``task_done`` and its workflow's final event, however quickly the task ended
(only a chunk emitted in the millisecond its task started can come before its start).  An
output event's position (``resume_id``) is its id marked ``:out``.

A Redis Cluster refuses one XREAD over keys of several slots (each shard is its own slot), so
there the streams are read slot by slot, concurrently, and merged.  Those reads block only
``CLUSTER_BLOCK_MS``: the merge waits for the slowest one, and a busy shard's events should
not wait a whole ``BLOCK_MS`` for an idle one.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any, cast

import orjson
from redis.asyncio import Redis
from redis.crc import key_slot

from streamproc.errors import SpecError
from streamproc.store import folded
from streamproc.store.codec import StreamReply, decode_fields, entry_order
from streamproc.store.entries import EntryField as EF
from streamproc.store.entries import EventKind
from streamproc.store.fields import ABSENT, TaskField, WorkflowField, parse_state
from streamproc.store.keys import Keyspace
from streamproc.store.state import TERMINAL, TaskStatus, WorkflowStatus
from streamproc.transport.cluster import is_cluster
from streamproc.transport.groups import served_agents

BATCH = 1000
BLOCK_MS = 1000
CLUSTER_BLOCK_MS = 100
HEAD = (EF.V, EF.KIND, EF.WF, EF.TASK, EF.ATT, EF.AT)
OUTPUT_MARK = ":out"  # ends the position of an output event (see the module's docstring)
POSITION = re.compile(r"(\d{1,20})(-\d{1,20})?(:out)?")  # an entry id (seq optional), mark
MAX_ID_PART = 2**64 - 1  # of an entry id's ms and seq: Redis refuses more
LAST_SEQ = 2**64 - 1
Position = tuple[int, int, int]  # ms, OUTPUT or HISTORY, seq: the order events are read in
OUTPUT, HISTORY = 0, 1  # within a millisecond, output first (see the module's docstring)


@dataclass(frozen=True)
class Event:
    """One lifecycle entry, or an output chunk; ``fields`` as text (see the key layout).
    ``superseded``: an output chunk's attempt is no longer its task's current one."""

    id: str
    fields: dict[str, str]
    superseded: bool = False

    @property
    def kind(self) -> str:
        return self.fields.get(EF.KIND, "")

    @property
    def workflow(self) -> str:
        return self.fields.get(EF.WF, "")

    @property
    def is_output(self) -> bool:
        return self.kind == EventKind.OUTPUT

    @property
    def stream(self) -> int:
        """``OUTPUT`` or ``HISTORY``: which of its workflow's streams holds it."""
        return OUTPUT if self.is_output else HISTORY

    @property
    def position(self) -> Position:
        ms, seq = entry_order(self.id)
        return ms, self.stream, seq

    @property
    def resume_id(self) -> str:
        """Where a reader that had this event resumes (an SSE event's ``id``)."""
        return self.id + OUTPUT_MARK if self.is_output else self.id

    def shown(self) -> dict[str, Any]:
        """The fields; an output event's ``chunk`` decoded, and whether it is superseded."""
        if not self.is_output:
            return dict(self.fields)
        chunk = self.fields.get(EF.CHUNK, "null")
        try:
            value = orjson.loads(chunk)
        except orjson.JSONDecodeError:
            value = chunk
        return {**self.fields, EF.CHUNK: value, "superseded": self.superseded}

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, **self.shown()}

    def line(self) -> str:
        """time, kind, workflow, task, attempt, then the kind's own fields as ``key=value``."""
        at = self.fields.get(EF.AT, "")
        ms = int(at) if at.isdigit() else int(self.id.split("-")[0])
        when = datetime.fromtimestamp(ms / 1000).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]
        detail = " ".join(f"{k}={v}" for k, v in self.fields.items() if k not in HEAD)
        if self.superseded:
            detail += " superseded"
        task = self.fields.get(EF.TASK, "-")
        attempt = self.fields.get(EF.ATT, "-")
        return f"{when}  {self.kind:<15} {self.workflow}  {task}  {attempt}  {detail}".rstrip()


def is_position(text: object) -> bool:
    """Whether ``text`` is a position Redis would take (an over-long part is its error)."""
    return (
        isinstance(text, str)
        and POSITION.fullmatch(text) is not None
        and all(int(part) <= MAX_ID_PART for part in text.removesuffix(OUTPUT_MARK).split("-"))
    )


def position_of(resume_id: str) -> Position:
    """The position a ``resume_id`` (or a bare entry id, or its milliseconds alone) names, or
    :class:`SpecError`."""
    if not is_position(resume_id):
        raise SpecError(
            f"invalid start {resume_id!r}: use 0, or an event's id (ms-seq, with :out for an "
            "output event's)"
        )
    entry_id = resume_id.removesuffix(OUTPUT_MARK)
    ms, seq = entry_order(entry_id)
    return ms, OUTPUT if entry_id != resume_id else HISTORY, seq


def read_from(position: Position) -> bytes:
    """An XREAD cursor that reads every stream from ``position``'s millisecond on (the reader
    drops what it already had): the id just before that millisecond."""
    ms = position[0]
    return f"{ms - 1}-{LAST_SEQ}".encode() if ms else b"0-0"


def cursor_after(position: Position, stream: int) -> bytes:
    """The XREAD cursor of a stream (``OUTPUT`` or ``HISTORY``) past every entry of it at or
    before ``position``."""
    ms, of, seq = position
    if stream == of:
        return f"{ms}-{seq}".encode()
    return f"{ms}-{LAST_SEQ}".encode() if stream < of else read_from(position)


async def mark_superseded(redis: Redis, keyspace: Keyspace, events: list[Event]) -> list[Event]:
    """``events``, each output chunk marked superseded when its task has moved on to a newer
    attempt by now: one HMGET per workflow, in one round trip."""
    asked: dict[str, list[str]] = {}
    for event in events:
        if event.is_output:
            tasks = asked.setdefault(event.workflow, [])
            if _task(event) not in tasks:
                tasks.append(_task(event))
    if not asked:
        return events
    replies = await folded.hmget_many(
        redis,
        keyspace,
        [(wf, [TaskField.ATTEMPT.of(t) for t in tasks]) for wf, tasks in asked.items()],
    )
    current = {
        (workflow_id, task): int(attempt or ABSENT[TaskField.ATTEMPT])
        for (workflow_id, tasks), attempts in zip(asked.items(), replies, strict=True)
        for task, attempt in zip(tasks, attempts, strict=True)
    }
    return [
        replace(event, superseded=_attempt(event) < current[(event.workflow, _task(event))])
        if event.is_output
        else event
        for event in events
    ]


def _task(event: Event) -> str:
    return event.fields.get(EF.TASK, "")


def _attempt(event: Event) -> int:
    attempt = event.fields.get(EF.ATT, "0")
    return int(attempt) if attempt.isdigit() else 0


async def cursors_now(redis: Redis, streams: list[str], start: str) -> dict[str, bytes]:
    """Where each stream is read from: ``$`` is fixed to each stream's last id now, so events
    added between two reads are not skipped."""
    if start != "$":
        return {stream: start.encode() for stream in streams}
    cursors = {}
    for stream in streams:
        last = cast(list[tuple[bytes, Any]], await redis.xrevrange(stream, count=1))
        cursors[stream] = last[0][0] if last else b"0-0"
    return cursors


async def read_streams(redis: Redis, cursors: dict[str, bytes], block: int | None) -> list[Event]:
    """The next entries (up to ``BATCH`` a stream) of every stream, in id order; the cursors
    move past them."""
    groups = _by_slot(cursors) if is_cluster(redis) else [cursors]
    if len(groups) == 1:
        replies = [await _xread(redis, groups[0], block)]
    else:
        short = None if block is None else min(block, CLUSTER_BLOCK_MS)
        replies = await asyncio.gather(*(_xread(redis, group, short) for group in groups))
    batches = [
        (stream.decode(), [Event(i.decode(), decode_fields(fields)) for i, fields in batch])
        for reply in replies
        for stream, batch in reply or ()
        if batch
    ]
    # A stream that filled its batch may hold more before the others' later entries: only
    # what comes up to the earliest end of a full batch is merged now, the rest read again.
    horizon = min((b[-1].position for _, b in batches if len(b) >= BATCH), default=None)
    events = []
    for stream, batch in batches:
        kept = batch if horizon is None else [e for e in batch if e.position <= horizon]
        if kept:
            cursors[stream] = kept[-1].id.encode()
        events += kept
    events.sort(key=lambda event: event.position)
    return events


async def _xread(redis: Redis, cursors: dict[str, bytes], block: int | None) -> StreamReply:
    return cast(StreamReply, await redis.xread(cursors, count=BATCH, block=block))  # type: ignore[arg-type]


def _by_slot(cursors: dict[str, bytes]) -> list[dict[str, bytes]]:
    """The cursors split into groups one Cluster XREAD may read (keys of one slot each)."""
    groups: dict[int, dict[str, bytes]] = {}
    for stream, cursor in cursors.items():
        groups.setdefault(key_slot(stream.encode()), {})[stream] = cursor
    return list(groups.values())


def with_start(event: dict[str, str]) -> list[dict[str, str]]:
    """The event, after the ``task_started`` its start stands for when it is a ``task_done``
    that carries its task's start (``began``, ``by``: its worker ended it before reporting
    the start): one form for readers, whichever way the start was recorded."""
    if event["kind"] == EventKind.TASK_DONE and EF.BEGAN in event:
        return [{**event, "kind": EventKind.TASK_STARTED, "at": event[EF.BEGAN]}, event]
    return [event]


async def tail(redis: Redis, keyspace: Keyspace, start: str = "$") -> AsyncIterator[Event]:
    """Every shard's events after ``start`` (an entry id, ``0`` for all, ``$`` for new ones),
    forever."""
    cursors = await cursors_now(redis, [keyspace.events(s) for s in keyspace.all_shards()], start)
    while True:
        for event in await read_streams(redis, cursors, BLOCK_MS):
            yield event


async def has_ended(redis: Redis, key: str) -> bool:
    """Whether the workflow hashed at ``key`` is over: finished, or expired and gone."""
    status = cast(bytes | None, await redis.hget(key, WorkflowField.STATUS))
    return status is None or status.decode() in TERMINAL


async def has_settled(redis: Redis, keyspace: Keyspace, workflow_id: str) -> bool:
    """Whether the workflow is over and none of its tasks is running, or queued for an agent
    a worker serves: those still run once it has ended (their results are recorded), so
    their events and output come after its final event.  A task queued for an agent nobody
    serves (the usual cause of a deadline) may never run: it holds nothing up."""
    key = keyspace.workflow(workflow_id)
    status = cast(bytes | None, await redis.hget(key, WorkflowField.STATUS))
    if status == WorkflowStatus.COMPLETED.encode():  # every task done
        return True
    if status is not None and status.decode() not in TERMINAL:
        return False
    raw = await folded.workflow_hash(redis, keyspace, workflow_id)  # stowed, or gone
    tasks = parse_state(workflow_id, raw).tasks if raw else []
    if any(t.state == TaskStatus.RUNNING for t in tasks):
        return False
    queued = {t.agent for t in tasks if t.state == TaskStatus.QUEUED}
    return not await served_agents(redis, keyspace, sorted(queued))
