"""The typed call of ``sp_signal`` (``lua/engine/wait.lua``): one signal to one workflow, and
the bounds it is sent under."""

from __future__ import annotations

from enum import StrEnum
from typing import Any, NamedTuple

from redis.asyncio import Redis

from streamproc.store import folded
from streamproc.store.fields import WorkflowField
from streamproc.store.functions import ENGINE, Arg, Function, text
from streamproc.store.keys import Keyspace
from streamproc.store.layout import layout

MAX_SIGNAL_BYTES = 64 * 1024  # of one payload, as JSON
MAX_KEPT = 100  # signals kept at once for waits not begun, per workflow
MAX_SIGNALS = 1000  # signals one workflow takes in all (each id is kept to apply it once)


class Outcome(StrEnum):
    APPLIED = "applied"  # it resumed a waiting task
    KEPT = "kept"  # no task waits for it yet: the first wait for its name takes it
    DUPLICATE = "duplicate"  # its id was applied before: nothing changed
    UNKNOWN = "unknown"  # no such workflow
    FINISHED = "finished"  # the workflow ended (detail: its status)
    FULL = "full"  # the workflow takes no more signals (detail: why)
    MISSING = "missing"  # an agent the call had no keys for (detail: its name)


class Signalled(NamedTuple):
    outcome: Outcome
    detail: str  # the task it resumed, or what the outcome names


def _signalled(reply: list[Any]) -> Signalled:
    return Signalled(Outcome(text(reply[0])), text(reply[1]))


SIGNAL = Function("sp_signal", ENGINE, _signalled)


async def signal(
    redis: Redis, keyspace: Keyspace, workflow_id: str, name: str, signal_id: str, payload: bytes
) -> Signalled:
    """Send the signal ``name`` (``payload`` as JSON) to ``workflow_id``, applied once per
    ``signal_id``.  The call names the workflow's agents, since the signal may publish."""
    shard = keyspace.shard_of(workflow_id)
    [[named]] = await folded.hmget_many(redis, keyspace, [(workflow_id, [WorkflowField.AGENTS])])
    agents = sorted(text(named or b"").split())
    args: list[Arg] = [workflow_id, name, signal_id, payload, MAX_KEPT, MAX_SIGNALS]
    while True:
        reply = await SIGNAL(redis, layout(keyspace, shard, agents, [workflow_id], args))
        if reply.outcome is not Outcome.MISSING or reply.detail in agents:
            return reply
        agents.append(reply.detail)  # the workflow grew an agent since it was read
