"""Following one workflow: its events after a start, up to its final event.

A follower first takes hold of the workflow's history stream (``history.Watch``: events go to
it only while someone follows), then catches up with what is kept (``catch_up``: its archive
and its output stream, in one transaction, ``history.py``), then reads its history and output
streams as they grow (``events.read_streams``), and ends after its final event, unless the
workflow was resumed after it.  When a read finds nothing and the workflow has ended
meanwhile, or its history stream had expired while the follower was away, it catches up
again from its archive.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any, cast

from redis.asyncio import Redis

from streamproc.errors import WorkflowNotFound
from streamproc.ops import history
from streamproc.ops.events import (
    BATCH,
    BLOCK_MS,
    HISTORY,
    OUTPUT,
    Event,
    Position,
    cursor_after,
    has_ended,
    mark_superseded,
    position_of,
    read_streams,
)
from streamproc.ops.history import Entry
from streamproc.store.codec import decode_fields, entry_order
from streamproc.store.ids import check_id
from streamproc.store.keys import Keyspace
from streamproc.store.state import TERMINAL

Had = tuple[Position, Position]  # the last positions a reader had of output and of history


async def catch_up(
    redis: Redis, keyspace: Keyspace, workflow_id: str, had: Had, output: bool
) -> tuple[list[Event], str | None]:
    """The workflow's kept events after what the reader ``had`` (from its archive, and its
    output stream unless ``output`` is false), in order, and its status as they were read
    (None: no such workflow).  A reader starts here, once it holds a ``history.Watch``."""
    start = cursor_after(had[OUTPUT], OUTPUT).decode() if output else None
    kept = await history.snapshot(redis, keyspace, workflow_id, start)
    events = [Event(i.decode(), decode_fields(f)) for i, f in (*kept.history, *kept.output)]
    events = [e for e in events if e.position > had[e.stream]]
    events.sort(key=lambda e: e.position)
    return await mark_superseded(redis, keyspace, events), kept.status


def cursors_after(
    keyspace: Keyspace, workflow_id: str, had: Had, events: list[Event], output: bool
) -> tuple[dict[str, bytes], Had]:
    """Where a reader that ``had`` that much and then ``events`` (in order) reads each of the
    workflow's streams on, and what it had then."""
    last = list(had)
    for event in events:
        last[event.stream] = event.position
    hist, out = keyspace.history(workflow_id), keyspace.output(workflow_id)
    cursors = {hist: cursor_after(last[HISTORY], HISTORY)}
    if output:
        cursors[out] = cursor_after(last[OUTPUT], OUTPUT)
    return cursors, (last[0], last[1])


async def follow_workflow(
    redis: Redis, keyspace: Keyspace, workflow_id: str, start: str = "0"
) -> AsyncIterator[Event]:
    """The workflow's events and output after ``start`` (from its own archive, history and
    output streams, so nothing of other workflows is read), ending once it is read up to a
    final event (completed, failed or cancelled) with nothing after it."""
    key = keyspace.workflow(check_id("workflow id", workflow_id))
    watch = history.Watch(redis, keyspace, workflow_id)
    if start == "$":
        cursors, had, _ = await _now(redis, keyspace, workflow_id, watch, True)
    else:
        await watch()
        events, status = await catch_up(redis, keyspace, workflow_id, _from(start), True)
        if status is None:
            raise WorkflowNotFound(workflow_id)
        for event in events:
            if event.workflow == workflow_id:
                yield event
        if status in TERMINAL:
            return  # over when read: everything it had is in these events
        cursors, had = cursors_after(keyspace, workflow_id, _from(start), events, True)
    ended = False
    while True:
        read = await read_streams(redis, cursors, BLOCK_MS)
        events = await mark_superseded(redis, keyspace, read)
        _, had = cursors_after(keyspace, workflow_id, had, events, True)
        for event in events:
            if event.workflow == workflow_id:
                ended = event.kind in TERMINAL
                yield event
        if ended and len(events) < BATCH:
            return
        over = not events and await has_ended(redis, key)
        if over or await watch.lapsed():
            # Ended during the empty read, or its stream expired meanwhile: its archive has it
            events, _ = await catch_up(redis, keyspace, workflow_id, had, True)
            cursors, had = cursors_after(keyspace, workflow_id, had, events, True)
            for event in events:
                if event.workflow == workflow_id:
                    yield event
            if over:
                return


async def follow_state(
    redis: Redis, keyspace: Keyspace, workflow_id: str, start: str | None, output: bool
) -> AsyncIterator[dict[str, Any]]:
    """``Client.follow``: the workflow's events as shown (from now on, or after ``start``), with
    its output unless ``output`` is false, up to its final event; each with its ``id``, the
    ``start`` that resumes after it."""
    key = keyspace.workflow(check_id("workflow id", workflow_id))
    watch = history.Watch(redis, keyspace, workflow_id)
    if start is not None:
        await watch()
        events, status = await catch_up(redis, keyspace, workflow_id, _from(start), output)
        if status is None:
            raise WorkflowNotFound(workflow_id)
        for event in events:
            yield {"id": event.resume_id, **event.shown()}
            if event.kind in TERMINAL:
                return
        if status in TERMINAL:
            return  # its final event came before ``start``
        cursors, had = cursors_after(keyspace, workflow_id, _from(start), events, output)
    else:
        cursors, had, status = await _now(redis, keyspace, workflow_id, watch, output)
        if status in TERMINAL:
            return
    while True:
        read = await read_streams(redis, cursors, BLOCK_MS)
        over = not read and await has_ended(redis, key)
        if over or await watch.lapsed():
            # Ended during the empty read, or its stream expired meanwhile: its archive has it
            events, status = await catch_up(redis, keyspace, workflow_id, had, output)
            if status is None:
                raise WorkflowNotFound(workflow_id)  # expired or deleted while we waited
            cursors, had = cursors_after(keyspace, workflow_id, had, events, output)
        else:
            events = await mark_superseded(redis, keyspace, read)
            _, had = cursors_after(keyspace, workflow_id, had, events, output)
        for event in events:
            yield {"id": event.resume_id, **event.shown()}
            if event.kind in TERMINAL:
                return
        if over:
            return


async def _now(
    redis: Redis, keyspace: Keyspace, workflow_id: str, watch: history.Watch, output: bool
) -> tuple[dict[str, bytes], Had, str]:
    """For a reader that starts now: where it reads the workflow's history stream (and its
    output stream, with ``output``) on, what it had then, and the workflow's status
    (:class:`WorkflowNotFound` when there is no such workflow)."""
    watched = await watch()
    if watched.status is None:
        raise WorkflowNotFound(workflow_id)
    history_id = (watched.last or "0-0").encode()
    cursors = {keyspace.history(workflow_id): history_id}
    output_id = b"0-0"
    if output:
        last = cast(list[Entry], await redis.xrevrange(keyspace.output(workflow_id), count=1))
        output_id = last[0][0] if last else b"0-0"
        cursors[keyspace.output(workflow_id)] = output_id
    return cursors, _had(history_id, output_id), watched.status


def _from(start: str) -> Had:
    """What a reader that starts after ``start`` (a position) had."""
    position = position_of(start)
    return position, position


def _had(history_id: bytes, output_id: bytes) -> Had:
    """What a reader had that read each stream up to these ids."""
    (hist_ms, hist_seq), (out_ms, out_seq) = entry_order(history_id), entry_order(output_id)
    return (out_ms, OUTPUT, out_seq), (hist_ms, HISTORY, hist_seq)
