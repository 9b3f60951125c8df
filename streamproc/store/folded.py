"""Reading a workflow hash whatever its form.  An ended workflow is stowed (``history.lua``):
its hash is gone, and its fields are the first line of its history archive, one JSON object
(its own fields by name, ``left`` left out when 0; its per-task and signal fields by letter,
a value for each of its tasks in ``order`` and then of the names ``"#"`` lists; times, and
the ms of entry ids, its lines' included, as numbers: milliseconds after its ``created``).
A workflow that ended under 0.8 may keep its hash with its task fields folded into the
archive's first line (``folded`` bytes long).  Readers of a workflow read it through
here."""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from typing import Any, cast

import orjson
from redis.asyncio import Redis

from streamproc.store.fields import TaskField, WorkflowField
from streamproc.store.keys import Keyspace

FOLDED = WorkflowField.FOLDED.encode()
CREATED = WorkflowField.CREATED.encode()
Row = list[bytes | None]
READS = 3  # transactions a reader tries while the workflow is folded again under it
NAMES = "#"  # a stowed line's list of the names its per-task and signal values are of
ENTRY_ID = re.compile(rb"(-?\d+)-(\d+)")
LEFT = WorkflowField.LEFT.encode()


def shift_id(entry_id: bytes, by: int) -> bytes:
    """An entry id ``<ms>-<seq>`` with its ``<ms>`` moved by ``by`` (anything else as it is)."""
    if parts := ENTRY_ID.fullmatch(entry_id):
        return b"%d-%s" % (int(parts[1]) + by, parts[2])
    return entry_id


def _stowed_line(past: bytes | None) -> dict[str, Any] | None:
    if not past or not past.startswith(b"{"):
        return None
    line, newline, _ = past.partition(b"\n")
    try:
        kept = loads(line) if newline else None
    except ValueError:
        return None
    return kept if isinstance(kept, dict) and WorkflowField.CREATED in kept else None


def stowed(past: bytes | None) -> dict[bytes, bytes] | None:
    """The hash a stowed archive's first line holds (``history.lua`` says how), or None when
    ``past`` is not one."""
    kept = _stowed_line(past)
    if kept is None:
        return None
    created = int(kept[WorkflowField.CREATED])
    names = str(kept.get(WorkflowField.ORDER, "")).split() + kept.pop(NAMES, [])
    whole: dict[bytes, bytes] = {LEFT: b"0"}
    for field, value in kept.items():
        if field[1:2] != ":":
            whole[_bytes(field)] = _unstowed(field, value, created)
            continue
        for i, name in enumerate(names):
            one = value[i] if isinstance(value, list) else value
            if one is not None:
                whole[_bytes(field + name)] = _unstowed(field, one, created)
    return whole


def _unstowed(letter: str, value: str | int, created: int) -> bytes:
    if isinstance(value, int):
        return str(created + value).encode()
    if letter == TaskField.ENTRY.prefix:
        return shift_id(_bytes(value), created)
    return _bytes(value)


def loads(line: bytes) -> Any:
    """JSON from Lua's cjson, which copies bytes as they are: a text that is not UTF-8 is
    read as surrogates (:func:`_bytes` gives its bytes back)."""
    try:
        return orjson.loads(line)
    except orjson.JSONDecodeError:
        return json.loads(line.decode(errors="surrogateescape"))


def _bytes(text: str) -> bytes:
    return text.encode(errors="surrogateescape")


async def _read_stowed(
    redis: Redis, keyspace: Keyspace, workflow_ids: Sequence[str]
) -> list[dict[bytes, bytes]]:
    """The hashes of workflows whose hash a reader found gone: each read with its archive in
    one transaction (one a shard, whose keys share a slot), from the archive when stowed
    (empty: no such workflow), else as it is (brought back since, by a function that runs it
    again)."""
    by_shard: dict[int, list[str]] = {}
    for workflow_id in workflow_ids:
        by_shard.setdefault(keyspace.shard_of(workflow_id), []).append(workflow_id)
    read: dict[str, dict[bytes, bytes]] = {}
    for ids in by_shard.values():
        async with redis.pipeline(transaction=True) as pipe:
            for workflow_id in ids:
                pipe.hgetall(keyspace.workflow(workflow_id))
                pipe.get(keyspace.past(workflow_id))
            replies = await pipe.execute()
        for workflow_id, raw, past in zip(ids, replies[::2], replies[1::2], strict=True):
            read[workflow_id] = _without_fold(raw) if raw else stowed(past) or {}
    return [read[workflow_id] for workflow_id in workflow_ids]


def _unfolded(raw: dict[bytes, bytes], line: bytes) -> dict[bytes, bytes] | None:
    """``raw`` (its ``created`` at least) with the fields of its fold ``line`` back, or None
    when ``line`` is not a whole fold (the workflow was unfolded, and maybe folded again,
    since ``raw`` was read)."""
    if not line.startswith(b"{") or not line.endswith(b"\n"):
        return None
    try:
        moved = orjson.loads(line)
    except orjson.JSONDecodeError:
        return None
    created = int(raw.get(CREATED) or 0)
    whole = _without_fold(raw)
    for name, value in moved.items():
        time = isinstance(value, int)
        whole[name.encode()] = str(created + value).encode() if time else value.encode()
    return whole


async def exists(redis: Redis, keyspace: Keyspace, workflow_id: str) -> bool:
    """Whether the workflow is there, running or ended (stowed in its archive)."""
    return bool(await redis.exists(keyspace.workflow(workflow_id), keyspace.past(workflow_id)))


async def workflow_hash(redis: Redis, keyspace: Keyspace, workflow_id: str) -> dict[bytes, bytes]:
    """The workflow's hash as HGETALL gives it, stowed or folded fields included (empty: none
    such).  The hash and its fold are read in one transaction, so they always match; a fold
    its archive no longer holds (deleted by hand) reads as no task fields, as the engine reads
    it (``history.lua``)."""
    key, past = keyspace.workflow(workflow_id), keyspace.past(workflow_id)
    raw = cast(dict[bytes, bytes], await redis.hgetall(key))
    for _ in range(READS):
        if not raw:
            [raw] = await _read_stowed(redis, keyspace, [workflow_id])
            return raw
        size = raw.get(FOLDED)
        if size is None:
            return raw
        async with redis.pipeline(transaction=True) as pipe:
            pipe.hgetall(key)
            pipe.getrange(past, 0, int(size) - 1)
            raw, line = await pipe.execute()
        if raw.get(FOLDED) == size:  # else folded again, to another size, since: read again
            return _unfolded(raw, line) or _without_fold(raw)
    return _without_fold(raw)


def _without_fold(raw: dict[bytes, bytes]) -> dict[bytes, bytes]:
    return {name: value for name, value in raw.items() if name != FOLDED}


async def hmget_many(
    redis: Redis, keyspace: Keyspace, asked: Sequence[tuple[str, Sequence[str]]]
) -> list[Row]:
    """HMGET of each (workflow id, fields) asked, stowed and folded fields included: one
    pipeline, and one more for the stowed and one for the folded workflows among them."""
    async with redis.pipeline(transaction=False) as pipe:
        for workflow_id, fields in asked:
            key = keyspace.workflow(workflow_id)
            pipe.hmget(key, [*fields, WorkflowField.CREATED, WorkflowField.FOLDED])
        rows = cast(list[Row], await pipe.execute())
    created = [row.pop(-2) for row in rows]
    folded = [(i, size) for i, row in enumerate(rows) if (size := row.pop()) is not None]
    gone = [i for i, time in enumerate(created) if time is None]  # every hash has one
    if gone:
        wholes = await _read_stowed(redis, keyspace, [asked[i][0] for i in gone])
        for i, whole in zip(gone, wholes, strict=True):
            rows[i] = [whole.get(field.encode()) for field in asked[i][1]]
    if not folded:
        return rows
    async with redis.pipeline(transaction=False) as pipe:
        for i, size in folded:
            pipe.getrange(keyspace.past(asked[i][0]), 0, int(size) - 1)
        lines = cast(list[bytes], await pipe.execute())
    for (i, _), line in zip(folded, lines, strict=True):
        workflow_id, fields = asked[i]
        unfolded = _unfolded({CREATED: created[i] or b"0"}, line)
        if unfolded is None:  # unfolded since: read it again whole
            unfolded = await workflow_hash(redis, keyspace, workflow_id)
        rows[i] = [rows[i][j] or unfolded.get(field.encode()) for j, field in enumerate(fields)]
    return rows
