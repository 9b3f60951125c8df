"""Dead-lettered tasks: list and inspect them, requeue them once fixed, purge them.

A dead entry holds what its task needed to be understood later: workflow, task, attempt,
deliveries, reason, last error, attempt history and input.  Requeueing one resumes its workflow
(``sp_revive``): the workflow failed because of that task, so running the task alone again
would finish nothing.  Entries parked raw by a worker (malformed, or trimmed before ack) name
no workflow and can only be read and purged.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, cast

import orjson
from redis.asyncio import Redis

from streamproc.errors import DeadLetterNotFound, DeadLetterRefused, StreamprocError
from streamproc.store import admin
from streamproc.store.agents import shard_agents
from streamproc.store.codec import Fields, decode_fields, entry_order
from streamproc.store.entries import EntryField as EF
from streamproc.store.ids import ID_PATTERN, TASK_PATTERN
from streamproc.store.keys import Keyspace

PURGE_BATCH = 1000
SUMMARISED = frozenset({EF.WF, EF.ATT, EF.TASK, EF.DELIVERIES, EF.REASON, EF.AT})


@dataclass(frozen=True)
class DeadLetter:
    """One entry of ``dead:<agent>`` of one shard, its fields as text."""

    agent: str
    shard: int
    entry_id: str
    fields: dict[str, str]

    @property
    def workflow(self) -> str:
        return self.fields.get(EF.WF, "")

    @property
    def task(self) -> str:
        return self.fields.get(EF.TASK, "")

    @property
    def malformed(self) -> bool:
        """Parked raw: it names no valid workflow and task, so there is nothing to resume."""
        return not (ID_PATTERN.fullmatch(self.workflow) and TASK_PATTERN.fullmatch(self.task))

    def summary(self) -> dict[str, Any]:
        """What ``dead list`` shows; ``at`` falls back to the entry id's time."""
        at = self.fields.get(EF.AT, "")
        return {
            "id": self.entry_id,
            "agent": self.agent,
            "workflow": self.workflow,
            "task": self.task,
            "attempt": _number(self.fields.get(EF.ATT)),
            "deliveries": _number(self.fields.get(EF.DELIVERIES)),
            "reason": self.fields.get(EF.REASON, ""),
            "at": _number(at) if at else entry_order(self.entry_id)[0],
        }

    def to_dict(self) -> dict[str, Any]:
        """Every field, the history and the task's input decoded when they are JSON (a cut
        input is text); ``entry`` is the task's original stream entry, ``id`` this dead
        letter's."""
        out: dict[str, Any] = {**self.summary(), "shard": self.shard}
        for name, value in self.fields.items():
            if name in SUMMARISED:
                continue
            out[name] = _json_or_text(value) if name in (EF.HISTORY, EF.INPUT) else value
        return out


def _number(value: str | None) -> int | None:
    return int(value) if value and value.isdigit() else None


def _json_or_text(value: str) -> Any:
    try:
        return orjson.loads(value)
    except orjson.JSONDecodeError:
        return value


async def dead_agents(redis: Redis, keyspace: Keyspace) -> list[str]:
    """Agents with a dead-letter stream in any shard.  Found by SCAN rather than the agents
    set: a worker parks malformed entries of any agent it serves, used by a workflow or not."""
    names = set()
    for shard in keyspace.all_shards():
        prefix = keyspace.dead(shard, "")
        async for key in redis.scan_iter(match=prefix + "*", count=1000, _type="stream"):
            names.add(key.decode()[len(prefix) :])
    return sorted(names)


async def list_dead(redis: Redis, keyspace: Keyspace, agent: str) -> list[DeadLetter]:
    """The agent's dead letters over every shard, oldest first."""
    out = []
    for shard in keyspace.all_shards():
        entries = cast(list[tuple[bytes, Fields]], await redis.xrange(keyspace.dead(shard, agent)))
        out += [DeadLetter(agent, shard, i.decode(), decode_fields(f)) for i, f in entries]
    return sorted(out, key=lambda d: entry_order(d.entry_id))


async def find_dead(redis: Redis, keyspace: Keyspace, agent: str, entry_id: str) -> DeadLetter:
    """The entry ``entry_id`` of the agent's dead letters, whichever shard holds it."""
    for shard in keyspace.all_shards():
        entries = cast(
            list[tuple[bytes, Fields]],
            await redis.xrange(keyspace.dead(shard, agent), entry_id, entry_id),
        )
        if entries:
            return DeadLetter(agent, shard, entry_id, decode_fields(entries[0][1]))
    raise DeadLetterNotFound(agent, entry_id)


async def requeue(redis: Redis, keyspace: Keyspace, agent: str, entry_id: str) -> DeadLetter:
    """Resume the workflow the entry's task failed, running that task again; the entry is
    deleted.  Raises :class:`DeadLetterNotFound`, or :class:`DeadLetterRefused` (changing
    nothing) when the entry is malformed or its workflow is no longer failed because of it."""
    dead = await find_dead(redis, keyspace, agent, entry_id)
    if dead.malformed:
        raise DeadLetterRefused(
            entry_id, "it names no workflow and task (a raw malformed entry); purge it instead"
        )
    if keyspace.shard_of(dead.workflow) != dead.shard:
        raise DeadLetterRefused(entry_id, f"workflow {dead.workflow} is not in this shard")
    agents = set(await shard_agents(redis, keyspace, dead.shard)) | {agent}
    ref = admin.DeadRef(entry_id, agent, dead.workflow, dead.task)
    for _ in range(2):
        outcome, detail = await admin.revive(redis, keyspace, dead.shard, sorted(agents), ref)
        if outcome is admin.Revived.REVIVED:
            return dead
        if outcome is admin.Revived.REFUSED:
            raise DeadLetterRefused(entry_id, detail)
        agents.add(detail)  # the agents set lacks one the workflow uses
    raise DeadLetterRefused(entry_id, f"agent {detail!r} of the workflow is unknown")


async def requeue_all(
    redis: Redis, keyspace: Keyspace, agent: str
) -> list[tuple[DeadLetter, StreamprocError | None]]:
    """Requeue every dead letter of the agent, oldest first; each with its refusal, if any."""
    outcomes: list[tuple[DeadLetter, StreamprocError | None]] = []
    for dead in await list_dead(redis, keyspace, agent):
        try:
            await requeue(redis, keyspace, agent, dead.entry_id)
        except (DeadLetterNotFound, DeadLetterRefused) as refused:
            outcomes.append((dead, refused))
        else:
            outcomes.append((dead, None))
    return outcomes


async def purge_one(redis: Redis, keyspace: Keyspace, agent: str, entry_id: str) -> DeadLetter:
    """Delete one dead letter of the agent, whichever shard holds it; raises
    :class:`DeadLetterNotFound` when there is none (or another caller deleted it first)."""
    dead = await find_dead(redis, keyspace, agent, entry_id)
    if not await redis.xdel(keyspace.dead(dead.shard, agent), entry_id):
        raise DeadLetterNotFound(agent, entry_id)
    return dead


async def purge(redis: Redis, keyspace: Keyspace, agent: str, before: str | None = None) -> int:
    """Delete the agent's dead letters (those with an id below ``before``, ms or ms-seq, when
    given; else those there when it starts) in every shard; the number deleted.  By XRANGE
    and XDEL, a batch at a time, which the HTTP API's Redis user holds (it may not XTRIM)."""
    deleted = 0
    for shard in keyspace.all_shards():
        stream = keyspace.dead(shard, agent)
        end = _below(before) if before else await _newest(redis, stream)
        while end and (batch := await _entries(redis, stream, end)):
            deleted += await redis.xdel(stream, *(entry_id for entry_id, _ in batch))
    return deleted


def _below(before: str) -> str:
    """XRANGE's exclusive end for ids below ``before`` (an ms alone meaning ms-0)."""
    return f"({before}" if "-" in before else f"({before}-0"


async def _newest(redis: Redis, stream: str) -> str | None:
    newest = cast(list[tuple[bytes, Fields]], await redis.xrevrange(stream, count=1))
    return newest[0][0].decode() if newest else None


async def _entries(redis: Redis, stream: str, end: str) -> list[tuple[bytes, Fields]]:
    return cast(list[tuple[bytes, Fields]], await redis.xrange(stream, "-", end, count=PURGE_BATCH))
