"""Typed calls of the engine library's Redis Functions (``lua/engine/*.lua``): each one's
ARGV, laid out after the KEYS and ARGV every engine function shares (``layout.py``), and
how its reply reads.
"""

from __future__ import annotations

from collections.abc import Sequence
from enum import IntEnum, StrEnum
from typing import Any, NamedTuple

from redis.asyncio import Redis

from streamproc.spec.model import Limits, WorkflowSpec
from streamproc.store import packed
from streamproc.store.codec import Acks, Completion, CompletionKind
from streamproc.store.functions import ENGINE, Arg, Function, text
from streamproc.store.initial_hash import initial_fields
from streamproc.store.keys import Keyspace, delayed_task
from streamproc.store.layout import layout, layout_pieces
from streamproc.store.packed import Packed, Piece

# -- sp_submit (submit.lua) -----------------------------------------------------------------


class Submitted(IntEnum):
    """What ``sp_submit`` did with one workflow."""

    CREATED = 1
    EXISTS = 0  # with this spec: nothing changed
    CONFLICT = -1  # with another spec: nothing changed
    IN_FLIGHT_LIMIT = -2  # its tenant has its limit of workflows in flight: not created
    STORED_LIMIT = -3  # its bytes would take its tenant past its limit stored: not created


class Blueprint(NamedTuple):  # a NamedTuple: made on every submit, at half a dataclass's cost
    """What ``sp_submit`` writes for every workflow of one spec, encoded once: its agents,
    and the arguments after the workflow id (digest, root tasks, the count of hash arguments,
    those arguments)."""

    agents: list[str]
    pieces: list[Piece]  # the arguments, runs of them packed (packed.py)

    @classmethod
    def of(cls, spec: WorkflowSpec, ttl_ms: int, limits: Limits) -> Blueprint:
        """``spec``, validated by the caller under ``limits``, for workflows kept ``ttl_ms``
        after they end."""
        roots = " ".join(t.id for t in spec.tasks if not t.needs)
        hash_args = initial_fields(spec, ttl_ms, limits)
        agents = sorted({t.agent for t in spec.tasks if t.agent})
        args: list[Arg] = [spec.digest(), roots, len(hash_args), *hash_args]
        return cls(agents, [Packed.of(args)])

    @property
    def args(self) -> list[Arg]:
        """The arguments one by one (for a tenant's bytes, and redis-py's packing)."""
        return packed.flat(self.pieces)

    def hash_bytes(self) -> int:
        """The bytes of the hash arguments, as ``sp_submit`` counts them for a tenant."""
        return sum(
            len(arg if isinstance(arg, bytes) else str(arg).encode()) for arg in self.args[3:]
        )


class NewWorkflow(NamedTuple):
    workflow_id: str
    blueprint: Blueprint


_OUTCOMES = {int(outcome): outcome for outcome in Submitted}  # a lookup costs less than a call


def _submitted(reply: list[Any]) -> list[Submitted]:
    return [_OUTCOMES[int(outcome)] for outcome in reply]


SUBMIT = Function("sp_submit", ENGINE, _submitted)
"""``Client`` sends ``SUBMIT.command(submit_arguments(...))`` and reads its reply with
``SUBMIT.reply``."""


NO_TENANT: list[Arg] = ["", 0, 0, 0, 0]  # the quota arguments of a submit for no tenant
NO_TENANT_RUN = Packed.of(NO_TENANT)  # packed once


def submit_arguments(
    keyspace: Keyspace, workflows: Sequence[NewWorkflow], quota: Sequence[Arg] = NO_TENANT
) -> list[Piece]:
    """One ``sp_submit`` call's arguments, as pieces (``packed.py``): ``workflows``, all of
    one shard, counted for the tenant ``quota`` names (``tenants.quota_arguments``), or for
    none."""
    args: list[Piece] = [NO_TENANT_RUN] if quota is NO_TENANT else list(quota)
    for workflow in workflows:
        args += (workflow.workflow_id, *workflow.blueprint.pieces)
    if len(workflows) == 1:  # already sorted, once each
        agents = workflows[0].blueprint.agents
    else:
        agents = sorted({a for workflow in workflows for a in workflow.blueprint.agents})
    shard = keyspace.shard_of(workflows[0].workflow_id)
    return layout_pieces(keyspace, shard, agents, [w.workflow_id for w in workflows], args)


def submit_command(arguments: Sequence[Piece]) -> bytes:
    """The FCALL of ``sp_submit`` with ``arguments`` (:func:`submit_arguments`), packed."""
    return packed.command([FCALL_SUBMIT, *arguments])


FCALL_SUBMIT = Packed.of(SUBMIT.command([]))  # FCALL sp_submit, packed once


# -- sp_resolve and sp_release (resolve.lua) ------------------------------------------------


class Retry(NamedTuple):
    """A failed task's next attempt waits min(cap, base * 2^(failures - 1)) * jitter."""

    base_ms: int
    cap_ms: int
    jitter: float


class Resolved(NamedTuple):
    consumed: int  # completions applied (or refused) and acknowledged, from the first
    stale: int  # of those, duplicates and superseded attempts, which changed nothing
    missing: str  # the agent the call lacked keys for, where it stopped ("": none)
    completed: int  # workflows these completions completed
    failed: int  # workflows they failed
    ended: list[str]  # the ids of the workflows they ended, left for the caller to stow


def _resolved(reply: list[Any]) -> Resolved:
    consumed, stale, missing, completed, failed, ended = reply
    ids = [text(workflow_id) for workflow_id in ended]
    return Resolved(int(consumed), int(stale), text(missing), int(completed), int(failed), ids)


RESOLVE = Function("sp_resolve", ENGINE, _resolved)
FAILED = frozenset({CompletionKind.ERROR.encode(), CompletionKind.FATAL.encode()})


def resolve_arguments(
    keyspace: Keyspace,
    shard: int,
    agents: Sequence[str],
    retry: Retry,
    completions: Sequence[Completion],
    acks: Acks,
) -> list[Arg]:
    """One ``sp_resolve`` call's arguments: ``completions``, all of ``shard``; acknowledging
    their task entries needs each one's agent among ``agents``."""
    args: list[Arg] = [retry.base_ms, retry.cap_ms, retry.jitter, acks]
    tasks = acks is Acks.TASKS
    for c in completions:
        args += (c.kind, c.workflow, c.task, c.attempt, c.output, c.began, c.ended)
        args += (c.consumer, c.agent if tasks else c.entry_id, c.source)
        if c.adjust is not None:
            args += c.adjust
        if c.wait is not None:
            args += c.wait
        if c.kind in FAILED:
            args.append(c.traceback)
        if c.spawn is not None:
            args.append(c.spawn)
        if c.awaits is not None:
            args.append(c.awaits)
    workflow_ids = [c.workflow.decode() for c in completions]
    return layout(keyspace, shard, agents, workflow_ids, args)


class Released(NamedTuple):
    released: int
    missing: str  # the agent the call lacked keys for, where it stopped ("": none)


def _released(reply: list[Any]) -> Released:
    released, missing = reply
    return Released(int(released), text(missing))


RELEASE = Function("sp_release", ENGINE, _released)


async def release(
    redis: Redis, keyspace: Keyspace, shard: int, agents: Sequence[str], members: Sequence[bytes]
) -> Released:
    """Publish the retries of the shard's delayed set ``members`` that are due."""
    due = [delayed_task(member) for member in members]
    args = [part for item in due for part in item]
    return await RELEASE(redis, layout(keyspace, shard, agents, [wf for wf, _ in due], args))


# -- sp_watch (history.lua) ------------------------------------------------------------------


class Watched(NamedTuple):
    status: str | None  # None: no such workflow
    made: bool  # its history stream was made: no event before this call is in it
    last: str | None  # the id of its last event (None: none)


def _watched(reply: list[Any]) -> Watched:
    status, made, last = reply
    return Watched(text(status) if status else None, made == 1, text(last) if last else None)


WATCH = Function("sp_watch", ENGINE, _watched)


async def watch(redis: Redis, keyspace: Keyspace, workflow_id: str) -> Watched:
    """Keep the workflow's history stream, where its events come as they happen, for a
    follower (made if it runs and has none; it lives ``WATCH_MS`` after this call)."""
    shard = keyspace.shard_of(workflow_id)
    return await WATCH(redis, layout(keyspace, shard, [], [workflow_id], []))


# -- sp_started (started.lua) ----------------------------------------------------------------


class Start(NamedTuple):
    """A worker began running a task entry."""

    workflow: str
    task: str
    attempt: int
    entry: bytes | str  # the task entry it runs
    began_ms: int
    consumer: str


STARTED = Function("sp_started", ENGINE, int)
"""Call it (or queue it on a pipeline) with ``started_arguments``; it replies how many starts
it recorded, each only while its task was queued as that attempt and entry."""


def started_arguments(keyspace: Keyspace, shard: int, starts: Sequence[Start]) -> list[Arg]:
    """One ``sp_started`` call's arguments: ``starts``, all of ``shard``."""
    args = [part for start in starts for part in start]
    return layout(keyspace, shard, [], [start.workflow for start in starts], args)


# -- sp_requeue (recovery.lua) --------------------------------------------------------------


class RequeueReason(StrEnum):
    RECLAIMED = "reclaimed"  # its consumer died or stalled: a lost delivery
    HANDED_BACK = "handed back"  # by a worker shutting down
    RECONCILED = "reconciled"  # queued, but no stream would ever deliver it (reconcile.py)


class Requeue(NamedTuple):
    """A task entry taken back from its consumer."""

    entry: bytes | str
    workflow: str
    task: str
    attempt: int
    agent: str


class Requeued(NamedTuple):
    moved: int  # tasks published again or dead-lettered
    failed: int  # workflows a dead letter failed


def _requeued(reply: list[Any]) -> Requeued:
    moved, failed = reply
    return Requeued(int(moved), int(failed))


REQUEUE = Function("sp_requeue", ENGINE, _requeued)


async def requeue(
    redis: Redis,
    keyspace: Keyspace,
    shard: int,
    reason: str,
    max_lost: int,
    items: Sequence[Requeue],
) -> Requeued:
    """Publish ``items`` again as new attempts (each only if it is still that queued
    attempt) and acknowledge their entries.  Reclaimed
    entries count as lost deliveries: a task lost ``max_lost`` times is dead-lettered."""
    lost = int(reason == RequeueReason.RECLAIMED)
    args: list[Arg] = [reason, lost, max_lost]
    for item in items:
        args += item
    agents = sorted({item.agent for item in items})
    workflow_ids = [item.workflow for item in items]
    return await REQUEUE(redis, layout(keyspace, shard, agents, workflow_ids, args))
