"""Typed calls of the engine's administrative Redis Functions (``lua/engine/admin.lua``):
cancelling a workflow, failing those past their deadline, reviving one from a dead letter,
and dropping expired workflows from the index (``sp_unindex``, in ``submit.lua``).
They share the engine functions' KEYS and ARGV layout (:func:`streamproc.store.layout.layout`).
"""

from __future__ import annotations

from collections.abc import Sequence
from enum import IntEnum
from typing import Any, NamedTuple

from redis.asyncio import Redis

from streamproc.store.functions import ENGINE, Function, text
from streamproc.store.keys import Keyspace
from streamproc.store.layout import layout


class Cancelled(IntEnum):
    CANCELLED = 1
    ENDED = 0  # it had already completed, failed or been cancelled
    NOT_FOUND = -1


CANCEL = Function("sp_cancel", ENGINE, lambda reply: Cancelled(int(reply)))


async def cancel(redis: Redis, keyspace: Keyspace, workflow_id: str, reason: str) -> Cancelled:
    shard = keyspace.shard_of(workflow_id)
    return await CANCEL(redis, layout(keyspace, shard, [], [workflow_id], [workflow_id, reason]))


EXPIRE = Function("sp_expire", ENGINE, int)


async def fail_overdue(
    redis: Redis, keyspace: Keyspace, shard: int, overdue: Sequence[tuple[str, str]]
) -> int:
    """Fail the workflows of ``overdue`` (id, reason), all of ``shard``, that still run past
    their deadline; return how many it failed."""
    ids, args = [wf for wf, _ in overdue], [part for pair in overdue for part in pair]
    return await EXPIRE(redis, layout(keyspace, shard, [], ids, args))


class Revived(IntEnum):
    REVIVED = 1
    REFUSED = 0
    MISSING_AGENT = -1  # an agent of the workflow had no keys in the call


class Revival(NamedTuple):
    outcome: Revived
    detail: str  # why it was refused, or the missing agent


def _revival(reply: list[Any]) -> Revival:
    outcome, detail = reply
    return Revival(Revived(int(outcome)), text(detail))


REVIVE = Function("sp_revive", ENGINE, _revival)


class DeadRef(NamedTuple):
    """A dead letter, and the task it is of."""

    entry_id: str
    agent: str
    workflow: str
    task: str


async def revive(
    redis: Redis, keyspace: Keyspace, shard: int, agents: Sequence[str], dead: DeadRef
) -> Revival:
    """Resume the workflow ``dead``'s task failed; ``agents`` must name every agent of it."""
    args = [dead.entry_id, dead.agent, dead.workflow, dead.task]
    return await REVIVE(redis, layout(keyspace, shard, agents, [dead.workflow], args))


UNINDEX = Function("sp_unindex", ENGINE, int)


async def unindex(redis: Redis, keyspace: Keyspace, shard: int, workflow_ids: Sequence[str]) -> int:
    """Drop from ``shard``'s index those of ``workflow_ids`` whose hash has expired (checked
    atomically: one submitted again meanwhile stays); return how many it dropped."""
    if not workflow_ids:
        return 0
    return await UNINDEX(redis, layout(keyspace, shard, [], workflow_ids, workflow_ids))
