"""The workflow hash ``{ns:s}:wf:<workflow>``: its field names, and reading a hash back (the
hash a new workflow starts with is written by ``initial_hash.py``).

This module is the only one that names a hash field (of the workflow hash, and of a search
cache entry): Python code uses its constants and helpers, and the Lua functions get the same
names from it (``functions.py`` renders them into each library's prelude).

Workflow fields (:class:`WorkflowField`): ``order`` (task ids in spec order), ``left`` (tasks
not done), ``status``, ``reason``, ``created``, ``ended``, ``ttl``, ``name``, ``rounds`` (adjust
rounds allowed per task), ``digest`` (of the spec), ``max_tasks``/``max_edges``/``max_input``/
``max_map`` (the ``Limits`` it was submitted under, which bind the tasks it grows at run time
too), ``edges`` (its dependencies, those added at run time included).

Per-task fields (:class:`TaskField`) are ``<letter>:<task id>``: ``g`` agent, ``i`` input,
``n`` needs, ``d`` dependents, ``c`` unmet needs, ``s`` state, ``a`` attempt, ``f`` failures,
``k`` lost deliveries, ``R`` retries allowed, ``T`` timeout, ``r`` result, ``e`` last error,
``q``/``b``/``z`` queued/began/ended (ms), ``m`` current stream entry, ``w`` consumer,
``h`` history of failed, lost, reset and adjusted attempts (JSON), ``j`` adjust rounds used,
``W`` when the task first waited (``RetryLater``, ms), ``p`` the task that spawned it (a
``Spawn``, or the mapped task of an instance), ``M`` the need a mapped task maps over, ``N``
the number of instances it was expanded into, ``S`` the signal it waits for (``D`` its
default result), ``P`` the payload of the signal that resumed its ``WaitFor``.  Signals
(:class:`SignalField`): ``o:<id>`` each signal applied (its name), ``v:<id>`` the payload of
one kept until a wait takes it; ``pending`` lists those ids in arrival order.

An ended workflow is stowed (history.lua): its hash is deleted and its fields become one JSON
object, the first line of its history archive (0.8 kept the hash of a large one, its per-task
and signal fields folded into that line, ``folded`` holding its length);
:mod:`streamproc.store.folded` reads either form, and every engine function brings the hash
back before reading it.

A field that would hold its default is not written, and its absence reads as that default
(in Python and in Lua alike): a count of 0 (``f``, ``k``, ``c``, ``edges``), an empty text
(``n``, ``d``, ``T``, ``reason``), and the values of :data:`ABSENT` (``a`` of a first
attempt, ``R``, ``rounds``, the ``max_*`` limits).  A hash written with every field present
reads the same.  The release before this one already read absent fields so and still wrote
them all, so the two run side by side; older releases cannot read a hash without them.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from typing import NamedTuple

import orjson

from streamproc.store.state import TaskState, TaskStatus, WorkflowState

Value = str | bytes | int


class WorkflowField(StrEnum):
    ORDER = "order"
    LEFT = "left"
    STATUS = "status"
    REASON = "reason"
    CREATED = "created"
    ENDED = "ended"
    TTL = "ttl"
    NAME = "name"
    ROUNDS = "rounds"
    DIGEST = "digest"
    TIMEOUT = "timeout"  # ms after `created` by which it must end (sp_expire); absent: none
    AGENTS = "agents"  # its agents, each counted in the shard's usage while it runs
    TENANT = "tenant"  # the tenant it is counted for (absent: none)
    BYTES = "bytes"  # its inputs' and results' bytes counted for its tenant
    MAX_TASKS = "max_tasks"
    MAX_EDGES = "max_edges"
    EDGES = "edges"  # dependencies now, declared and added at run time
    MAX_INPUT = "max_input"
    MAX_MAP = "max_map"
    PENDING = "pending"  # ids of signals kept for a wait not begun, space separated
    SIGNALS = "signals"  # signals applied, counted against MAX_SIGNALS
    FOLDED = "folded"  # ended under 0.8: the bytes of its task fields' line in its archive


class SignalField(StrEnum):
    """A signal's fields are ``<letter>:<signal id>``."""

    SEEN = "o"  # its name: the id applied once
    PAYLOAD = "v"  # its payload, JSON, while it waits for a wait to take it

    @property
    def prefix(self) -> str:
        return f"{self.value}:"


class UsageField(StrEnum):
    """Counter prefixes of a shard's usage hash (keys.py), each followed by a name."""

    AGENT = "agent:"
    WORKFLOWS = "workflows:"
    BYTES = "bytes:"
    AWAITING = "awaiting:"  # tasks of the agent awaiting a signal ('' names declared waits)


class TaskField(StrEnum):
    """One task's field is ``<letter>:<task id>``: :meth:`of` names it."""

    AGENT = "g"
    INPUT = "i"
    NEEDS = "n"
    DEPENDENTS = "d"
    UNMET = "c"
    STATE = "s"
    ATTEMPT = "a"
    FAILURES = "f"
    LOST = "k"
    RETRIES = "R"
    TIMEOUT = "T"
    RESULT = "r"
    ERROR = "e"
    QUEUED = "q"
    BEGAN = "b"
    ENDED = "z"
    ENTRY = "m"
    CONSUMER = "w"
    HISTORY = "h"
    ADJUSTED = "j"
    WAITING_SINCE = "W"
    SPAWNER = "p"
    MAP = "M"
    MAPPED = "N"
    WAIT_FOR = "S"
    DEFAULT = "D"
    SIGNAL = "P"

    @property
    def prefix(self) -> str:
        return f"{self.value}:"

    def of(self, task: str) -> str:
        """The field of ``task``."""
        return f"{self.value}:{task}"

    def task(self, name: bytes) -> bytes | None:
        """The task whose field of this kind ``name`` is, or None for any other field."""
        prefix = self.prefix.encode()
        return name[len(prefix) :] if name.startswith(prefix) else None


class _Reader:
    """Typed access to a hash as HGETALL returns it."""

    def __init__(self, raw: Mapping[bytes, bytes]) -> None:
        self.raw = raw

    def get(self, name: str) -> bytes | None:
        return self.raw.get(name.encode())

    def text(self, name: str) -> str:
        return self.raw.get(name.encode(), b"").decode(errors="replace")

    def number(self, name: str) -> int | None:
        value = self.raw.get(name.encode())
        return int(value) if value else None


def parse_state(workflow_id: str, raw: Mapping[bytes, bytes]) -> WorkflowState:
    """A workflow hash (HGETALL) as a :class:`WorkflowState`."""
    f = _Reader(raw)
    tasks = []
    for task_id in f.text(WorkflowField.ORDER).split():
        result = f.get(TaskField.RESULT.of(task_id))
        tasks.append(
            TaskState(
                id=task_id,
                agent=f.text(TaskField.AGENT.of(task_id)),
                state=f.text(TaskField.STATE.of(task_id)),
                attempt=_present(f.get(TaskField.ATTEMPT.of(task_id)), TaskField.ATTEMPT),
                failures=f.number(TaskField.FAILURES.of(task_id)) or 0,
                lost=f.number(TaskField.LOST.of(task_id)) or 0,
                needs=f.text(TaskField.NEEDS.of(task_id)).split(),
                result=orjson.loads(result) if result is not None else None,
                error=f.text(TaskField.ERROR.of(task_id)),
                queued_ms=f.number(TaskField.QUEUED.of(task_id)),
                began_ms=f.number(TaskField.BEGAN.of(task_id)),
                ended_ms=f.number(TaskField.ENDED.of(task_id)),
                consumer=f.text(TaskField.CONSUMER.of(task_id)),
                history=orjson.loads(f.get(TaskField.HISTORY.of(task_id)) or b"[]"),
                entry=f.text(TaskField.ENTRY.of(task_id)),
                spawner=f.text(TaskField.SPAWNER.of(task_id)),
                map=f.text(TaskField.MAP.of(task_id)),
                wait_for=f.text(TaskField.WAIT_FOR.of(task_id)),
            )
        )
    return WorkflowState(
        id=workflow_id,
        name=f.text(WorkflowField.NAME),
        status=f.text(WorkflowField.STATUS),
        reason=f.text(WorkflowField.REASON),
        created_ms=f.number(WorkflowField.CREATED) or 0,
        ended_ms=f.number(WorkflowField.ENDED),
        tasks=tasks,
        signals=[
            {"name": f.text(f"{SignalField.SEEN.prefix}{i}"), "id": i, "size": len(payload)}
            for i in f.text(WorkflowField.PENDING).split()
            if (payload := f.get(f"{SignalField.PAYLOAD.prefix}{i}")) is not None
        ],
    )


class QueuedTask(NamedTuple):
    """A queued or running task (its attempt published, not yet completed) as its workflow
    hash records it."""

    task: str
    attempt: int
    agent: str
    entry: bytes  # its current entry in the agent's stream (0-0: none recorded)


def queued_tasks(raw: Mapping[bytes, bytes]) -> list[QueuedTask]:
    """The queued and running tasks of a workflow hash (HGETALL), without decoding anything
    else."""
    f = _Reader(raw)
    found = []
    published = {TaskStatus.QUEUED.encode(), TaskStatus.RUNNING.encode()}
    for name, state in raw.items():
        task = TaskField.STATE.task(name)
        if task is not None and state in published:
            t = task.decode()
            found.append(
                QueuedTask(
                    t,
                    _present(f.get(TaskField.ATTEMPT.of(t)), TaskField.ATTEMPT),
                    f.text(TaskField.AGENT.of(t)),
                    f.get(TaskField.ENTRY.of(t)) or b"0-0",
                )
            )
    return found


class Given(NamedTuple):
    """What a task was given, as its workflow hash records it."""

    input: bytes  # JSON
    retries: int
    timeout: float | None
    default: bytes | None  # a declared wait's default result, JSON


def given(raw: Mapping[bytes, bytes], task: str) -> Given:
    """What ``task`` of a workflow hash (HGETALL) was given, for a replay."""
    f = _Reader(raw)
    timeout = f.text(TaskField.TIMEOUT.of(task))
    return Given(
        f.get(TaskField.INPUT.of(task)) or b"null",
        _present(f.get(TaskField.RETRIES.of(task)), TaskField.RETRIES),
        float(timeout) if timeout else None,
        f.get(TaskField.DEFAULT.of(task)),
    )


def adjust_rounds(raw: Mapping[bytes, bytes]) -> int:
    """The adjust rounds a workflow hash (HGETALL) allows per task."""
    return _present(_Reader(raw).get(WorkflowField.ROUNDS), WorkflowField.ROUNDS)


# What the fields below read as when absent: a field holding this value is not written.  They
# are the hash format's own, fixed, equal today to the spec's and the client's defaults (so
# most workflows leave them all out): a change to those defaults must not change what a
# stored workflow means, so it must not change these.
ABSENT: Mapping[TaskField | WorkflowField, int] = {
    TaskField.ATTEMPT: 1,
    TaskField.RETRIES: 2,
    WorkflowField.ROUNDS: 1,
    WorkflowField.MAX_TASKS: 2_000,
    WorkflowField.MAX_EDGES: 20_000,
    WorkflowField.MAX_INPUT: 256 * 1024,
    WorkflowField.MAX_MAP: 1_000,
}


def _present(value: bytes | None, field: TaskField | WorkflowField) -> int:
    return ABSENT[field] if value is None else int(value)


class CacheField(StrEnum):
    """The fields of a search cache entry ``ns:cache:<provider>:<sha>`` (store/cache.py)."""

    RESULT = "result"  # the reply, as JSON
    CREATED = "created"  # ms
    HITS = "hits"
    EMPTY = "empty"  # 1: a reply with no results, kept only briefly
