"""Reading a workflow's history: the one place that knows where it is kept.

A workflow's history is its archive (``{ns:s}:past:<id>``, a string): the engine function
that emits an event appends it there as one JSON array ``[id, kind, field, value, ...]``
(``v`` and ``wf`` left out; see ``_fields``), under the id it has in the shard's events
stream (``lua/engine/history.lua``).  While someone follows the workflow, each event also goes
to its history stream (``{ns:s}:hist:<id>``), which a follower keeps alive with :class:`Watch`
and reads as it grows (``follow.py``).  A workflow submitted before 0.8 kept its first events
in that stream only, until its next event moved them to the archive: so the history is the
archive's entries, then the stream's entries after the last archived id, read together in one
transaction; each entry comes back as XRANGE gives it, ``(id, {field: value})``, its ``wf``
field back in the place ``emit`` gives it (after ``v`` and ``kind``).
"""

from __future__ import annotations

import time
from typing import NamedTuple, cast

from redis.asyncio import Redis

from streamproc.store import folded
from streamproc.store.calls import Watched, watch
from streamproc.store.codec import VERSION, entry_order
from streamproc.store.entries import EntryField
from streamproc.store.fields import TaskField, WorkflowField
from streamproc.store.keys import WATCH_MS, Keyspace

Entry = tuple[bytes, dict[bytes, bytes]]
WF, V, KIND = EntryField.WF.key, EntryField.V.key, EntryField.KIND.key
AT, ATT = EntryField.AT.key, EntryField.ATT.key
TASK, BY = EntryField.TASK.key, EntryField.BY.key
CREATED = WorkflowField.CREATED.encode()


class Snapshot(NamedTuple):
    """A workflow as one transaction saw it."""

    status: str | None  # None: no such workflow (never submitted, or expired)
    history: list[Entry]  # every event kept, in order
    output: list[Entry]  # its output stream's entries from the id asked for on


async def snapshot(
    redis: Redis, keyspace: Keyspace, workflow_id: str, output_from: str | None = None
) -> Snapshot:
    """The workflow's status and history, and its output from ``output_from`` on (none when
    None), read in one transaction."""
    async with redis.pipeline(transaction=True) as pipe:
        pipe.hget(keyspace.workflow(workflow_id), WorkflowField.STATUS)
        pipe.get(keyspace.past(workflow_id))
        pipe.xrange(keyspace.history(workflow_id))
        if output_from is not None:
            pipe.xrange(keyspace.output(workflow_id), output_from)
        status, past, stream, *output = await pipe.execute()
    if status is None:  # stowed, or gone
        status = (folded.stowed(past) or {}).get(WorkflowField.STATUS.encode())
    shown = None if status is None else status.decode()
    return Snapshot(shown, merge(workflow_id, past, stream), output[0] if output else [])


def merge(workflow_id: str, past: bytes | None, stream: list[Entry]) -> list[Entry]:
    """The archived entries, then those of the stream after them (a followed workflow's stream
    holds only entries archived too)."""
    archived = parse(workflow_id, past)
    if not archived:
        return stream
    last = entry_order(archived[-1][0])
    return archived + [entry for entry in stream if entry_order(entry[0]) > last]


class Watch:
    """A follower's hold on the workflow's history stream (``sp_watch``): taken before it
    reads what is kept, so no event after that is missed, and renewed every third of
    ``WATCH_MS``."""

    def __init__(self, redis: Redis, keyspace: Keyspace, workflow_id: str) -> None:
        self.redis, self.keyspace, self.workflow_id = redis, keyspace, workflow_id
        self.due = 0.0

    async def __call__(self) -> Watched:
        watched = await watch(self.redis, self.keyspace, self.workflow_id)
        self.due = time.monotonic() + WATCH_MS / 3000
        return watched

    async def lapsed(self) -> bool:
        """Renew the hold when due; whether the stream had to be made again (it expired while
        the follower was away: what came meanwhile is in the archive only)."""
        return time.monotonic() >= self.due and (await self()).made


def parse(workflow_id: str, past: bytes | None) -> list[Entry]:
    """The entries of an archive, each with its ``wf`` field back (its first line may be the
    workflow's stowed or folded fields, a JSON object: not an entry, see
    ``store/folded.py``)."""
    workflow = workflow_id.encode()
    stowed = folded.stowed(past)  # its lines' ids are ms after its creation, `by` may be 1
    consumers = {
        task: name
        for field, name in (stowed or {}).items()
        if (task := TaskField.CONSUMER.task(field)) is not None
    }
    entries = []
    for line in (past or b"").split(b"\n"):
        if not line or line.startswith(b"{"):
            continue
        entry_id, *flat = _loads(line)
        if stowed is not None:
            entry_id = folded.shift_id(cast(bytes, entry_id), int(stowed[CREATED]))
            flat = _by_named(flat, consumers)
        entries.append((cast(bytes, entry_id), _fields(workflow, cast(bytes, entry_id), flat)))
    return entries


def _by_named(flat: list[bytes | int], consumers: dict[bytes, bytes]) -> list[bytes | int]:
    """A stowed line's parts (after its id, in either form ``_fields`` reads) with a ``by`` of
    1 back as its task's consumer."""
    first = 0 if flat[0] == V else 1  # where its field/value pairs start
    names = flat[first::2]
    if TASK not in names or BY not in names:
        return flat
    at = first + 2 * names.index(BY) + 1
    task = flat[first + 2 * names.index(TASK) + 1]
    if flat[at] != 1 or (consumer := consumers.get(cast(bytes, task))) is None:
        return flat
    return [*flat[:at], consumer, *flat[at + 1 :]]


def _fields(workflow: bytes, entry_id: bytes, flat: list[bytes | int]) -> dict[bytes, bytes]:
    """An archived entry's fields in the order ``emit`` gave them: ``v``, ``kind``, ``wf``, then
    the rest.  A line is ``[id, kind, field, value, ...]``, each time (a number) its distance
    in ms from the id's, ``at`` left out when 0 (``archive_line`` in ``history.lua``); 0.7
    wrote ``[id, "v", "1", "kind", kind, field, value, ...]``, every value a string."""
    if flat[0] == V:
        flat = [*flat[:4], WF, workflow, *flat[4:]]
    else:
        flat = [V, VERSION, KIND, flat[0], WF, workflow, *flat[1:]]
        names = flat[::2]
        if AT not in names:  # left out: 0 ms after the id's; it comes after `att`, else `wf`
            after = 2 * names.index(ATT) + 2 if ATT in names else 6
            flat[after:after] = [AT, 0]
    ms = int(entry_id.split(b"-")[0])
    return {
        cast(bytes, name): value if isinstance(value, bytes) else str(ms + value).encode()
        for name, value in zip(flat[::2], flat[1::2], strict=True)
    }


def _loads(line: bytes) -> list[bytes | int]:
    """One archived entry's parts, each text as the bytes the stream held (a value that is not
    UTF-8 is read back byte for byte: ``folded.loads``)."""
    parts = cast(list[str | int], folded.loads(line))
    return [p.encode(errors="surrogateescape") if isinstance(p, str) else p for p in parts]
