"""Reading a workflow hash whatever its form: an ended workflow's per-task and signal fields
may be folded into the first line of its history archive (``history.lua``), one JSON object
``folded`` bytes long, where a task's times are numbers: milliseconds after the workflow's
``created``.  Readers of a workflow's task fields read them through here."""

from __future__ import annotations

from collections.abc import Sequence
from typing import cast

import orjson
from redis.asyncio import Redis

from streamproc.store.fields import WorkflowField
from streamproc.store.keys import Keyspace

FOLDED = WorkflowField.FOLDED.encode()
CREATED = WorkflowField.CREATED.encode()
Row = list[bytes | None]
READS = 3  # transactions a reader tries while the workflow is folded again under it


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


async def workflow_hash(redis: Redis, keyspace: Keyspace, workflow_id: str) -> dict[bytes, bytes]:
    """The workflow's hash as HGETALL gives it, folded fields included (empty: none such).
    The hash and its fold are read in one transaction, so they always match; a fold its
    archive no longer holds (deleted by hand) reads as no task fields, as the engine reads it
    (``history.lua``)."""
    key, past = keyspace.workflow(workflow_id), keyspace.past(workflow_id)
    raw = cast(dict[bytes, bytes], await redis.hgetall(key))
    for _ in range(READS):
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
    """HMGET of each (workflow id, fields) asked, folded fields included: one pipeline, and
    one more for the folded workflows among them."""
    async with redis.pipeline(transaction=False) as pipe:
        for workflow_id, fields in asked:
            key = keyspace.workflow(workflow_id)
            pipe.hmget(key, [*fields, WorkflowField.CREATED, WorkflowField.FOLDED])
        rows = cast(list[Row], await pipe.execute())
    created = [row.pop(-2) for row in rows]
    folded = [(i, size) for i, row in enumerate(rows) if (size := row.pop()) is not None]
    if not folded:
        return rows
    async with redis.pipeline(transaction=False) as pipe:
        for i, size in folded:
            pipe.getrange(keyspace.past(asked[i][0]), 0, int(size) - 1)
        lines = cast(list[bytes], await pipe.execute())
    for (i, _), line in zip(folded, lines, strict=True):
        workflow_id, fields = asked[i]
        whole = _unfolded({CREATED: created[i] or b"0"}, line)
        if whole is None:  # unfolded since: read it again whole
            whole = await workflow_hash(redis, keyspace, workflow_id)
        rows[i] = [rows[i][j] or whole.get(field.encode()) for j, field in enumerate(fields)]
    return rows
