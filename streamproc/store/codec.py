"""Flat stream entries and their version: the only place that reads or writes entry fields
(named in ``entries.py``).

Payloads (inputs, results, dependency results) are orjson; everything else is a plain field,
so Lua can route an entry without decoding JSON.  Decoders raise only :class:`CodecError`.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from operator import itemgetter
from typing import Any, NamedTuple

import orjson

from streamproc.errors import CodecError
from streamproc.store.entries import EntryField as EF
from streamproc.store.ids import ID_PATTERN, TASK_PATTERN

VERSION = b"1"  # of every entry, written by Python and (given it by functions.py) Lua
MAX_ENTRY_BYTES = 8 << 20
Fields = dict[bytes, bytes]
Entry = tuple[bytes, Fields]
GroupEntry = tuple[bytes, Fields | None]  # as XREADGROUP gives it (None: trimmed since)
StreamReply = list[tuple[bytes, list[Entry]]]  # what XREAD and XREADGROUP answer


class CompletionKind(StrEnum):
    """A completion's ``kind``: ``ok``, ``adjust`` (ok, plus a request), ``spawn`` (ok, plus
    tasks joining the workflow), ``wait``, ``await`` (a signal: ``WaitFor``), ``error``
    (retryable) or ``fatal``."""

    OK = "ok"
    ADJUST = "adjust"
    SPAWN = "spawn"
    WAIT = "wait"
    AWAIT = "await"
    ERROR = "error"
    FATAL = "fatal"


class Acks(StrEnum):
    """What an ``sp_resolve`` call acknowledges: the ``done`` entries the completions were
    read from (the resolver), or the task entries they answer (a worker applying its own)."""

    DONE = "done"
    TASKS = "tasks"


_KINDS = frozenset(kind.encode() for kind in CompletionKind)
_ADJUST, _WAIT = CompletionKind.ADJUST.encode(), CompletionKind.WAIT.encode()
_SPAWN, _AWAIT = CompletionKind.SPAWN.encode(), CompletionKind.AWAIT.encode()


class TaskEvent(NamedTuple):
    """A task-ready entry of ``tasks:<agent>``: one attempt of one task (a named tuple, as
    ``Completion``: the worker makes one per task)."""

    entry_id: bytes
    workflow: str
    task: str
    agent: str
    attempt: int
    input: Any
    deps: dict[str, Any]
    timeout: float | None
    signal: Any = None  # the payload of the signal its wait was resumed with (WaitFor)
    resumed: bool = False  # whether such a signal came (its payload may be null)


@dataclass(frozen=True, slots=True)
class AdjustRequest:
    """An agent's request to re-run ``task`` with ``input`` (JSON) because of ``reason``."""

    task: str
    reason: str
    input: bytes


class Completion(NamedTuple):
    """The outcome of one attempt, as the worker reports it: applied by the worker itself, or
    a ``done`` entry the resolver reads (a named tuple, not a frozen dataclass: one is made
    per task, and a tuple is built in a fifth of the time)."""

    entry_id: bytes  # its done entry (b"": none, the worker applies it)
    kind: bytes  # a CompletionKind
    workflow: bytes
    task: bytes
    attempt: bytes
    output: bytes  # the orjson result, or the error text
    began: bytes
    ended: bytes
    consumer: bytes
    adjust: tuple[bytes, bytes, bytes] | None = None  # target task, reason, new input
    wait: tuple[bytes, bytes] | None = None  # retry in ms, give up after ms (kind b"wait")
    source: bytes = b""  # the task entry that ran (b"": unknown, from an older worker)
    traceback: bytes = b""  # of an error or fatal attempt (b"": none)
    spawn: bytes | None = None  # the tasks a spawn adds (engine/spawning.py), kind b"spawn"
    awaits: bytes | None = None  # the timeout in ms (0: none) of kind b"await", whose output
    # is the signal's name
    agent: bytes = b""  # the agent whose stream held the task entry (b"": not said)


def task_ref(fields: Fields) -> tuple[str, str, int] | None:
    """(workflow, task, attempt) of a task entry, if those fields are readable at all."""
    try:
        workflow, task = fields[EF.WF.key].decode(), fields[EF.TASK.key].decode()
        attempt = int(fields[EF.ATT.key])
    except (KeyError, ValueError):
        return None
    if ID_PATTERN.fullmatch(workflow) and TASK_PATTERN.fullmatch(task) and attempt > 0:
        return workflow, task, attempt
    return None


def decode_task(entry_id: bytes, fields: Fields, agent: str) -> TaskEvent:
    """Decode an entry read from ``agent``'s stream."""
    _check_envelope(fields)
    ref = task_ref(fields)
    if ref is None:
        raise CodecError("missing or invalid wf, task or att field", fields)
    if fields.get(EF.AGENT.key) != agent.encode():
        raise CodecError(
            f"entry for agent {fields.get(EF.AGENT.key)!r} in the stream of {agent!r}", fields
        )
    try:
        payload = orjson.loads(fields[EF.PAYLOAD.key])
        deps = orjson.loads(fields[EF.DEPS.key])
        seconds = fields.get(EF.TIMEOUT.key)
        timeout = float(seconds) if seconds else None
        signal = orjson.loads(fields.get(EF.SIGNAL_PAYLOAD.key, b"null"))
    except KeyError as exc:
        raise CodecError(f"missing field {exc.args[0]!r}", fields) from None
    except (orjson.JSONDecodeError, ValueError) as exc:
        raise CodecError(f"undecodable payload: {exc}", fields) from None
    if not isinstance(deps, dict):
        raise CodecError("deps is not a JSON object", fields)
    resumed = EF.SIGNAL_PAYLOAD.key in fields
    return TaskEvent(
        entry_id, ref[0], ref[1], agent, ref[2], payload, deps, timeout, signal, resumed
    )


def completion_of(
    event: TaskEvent,
    kind: bytes,
    output: bytes,
    began: int,
    ended: int,
    consumer: str,
    adjust: AdjustRequest | None = None,
    wait: tuple[int, int] | None = None,
    traceback: str = "",
    spawn: bytes | None = None,
    awaits: int | None = None,
) -> Completion:
    """The completion of ``event``'s attempt, as its worker reports it."""
    return Completion(
        b"",
        kind,
        event.workflow.encode(),
        event.task.encode(),
        str(event.attempt).encode(),
        output,
        str(began).encode(),
        str(ended).encode(),
        consumer.encode(),
        None if adjust is None else (adjust.task.encode(), adjust.reason.encode(), adjust.input),
        None if wait is None else (str(wait[0]).encode(), str(wait[1]).encode()),
        event.entry_id,
        traceback.encode(errors="replace"),
        spawn,
        None if awaits is None else str(awaits).encode(),
        event.agent.encode(),
    )


def completion_fields(c: Completion) -> dict[bytes, bytes | str | int]:
    """``c`` as the fields of its ``done`` entry."""
    fields: dict[bytes, bytes | str | int] = {
        EF.V.key: VERSION,
        EF.KIND.key: c.kind,
        EF.WF.key: c.workflow,
        EF.TASK.key: c.task,
        EF.AGENT.key: c.agent,
        EF.ATT.key: c.attempt,
        EF.OUT.key: c.output,
        EF.T0.key: c.began,
        EF.T1.key: c.ended,
        EF.BY.key: c.consumer,
        EF.SRC.key: c.source,
    }
    if c.adjust is not None:
        fields.update({EF.ADJ.key: c.adjust[0], EF.WHY.key: c.adjust[1], EF.ADJIN.key: c.adjust[2]})
    if c.wait is not None:
        fields.update({EF.RETRY_MS.key: c.wait[0], EF.GIVE_UP_MS.key: c.wait[1]})
    if c.traceback:
        fields[EF.TB.key] = c.traceback
    if c.spawn is not None:
        fields[EF.SPAWN.key] = c.spawn
    if c.awaits is not None:
        fields[EF.WAIT_MS.key] = c.awaits
    return fields


# The fields every completion carries, in Completion's order, read in one call (the resolver
# reads them for every completion, and on Python 3.11 naming an enum member costs more than
# the dict access it names).
_COMPLETION_FIELDS = itemgetter(
    *(f.key for f in (EF.KIND, EF.WF, EF.TASK, EF.ATT, EF.OUT, EF.T0, EF.T1, EF.BY))
)


def decode_completion(entry_id: bytes, fields: Fields) -> Completion:
    _check_envelope(fields)
    try:
        kind, workflow, task, attempt, output, began, ended, by = _COMPLETION_FIELDS(fields)
        completion = Completion(
            entry_id,
            kind,
            workflow,
            task,
            attempt,
            output,
            began,
            ended,
            by,
            (fields[EF.ADJ.key], fields[EF.WHY.key], fields[EF.ADJIN.key])
            if kind == _ADJUST
            else None,
            (fields[EF.RETRY_MS.key], fields[EF.GIVE_UP_MS.key]) if kind == _WAIT else None,
            fields.get(EF.SRC.key, b""),
            fields.get(EF.TB.key, b""),
            fields[EF.SPAWN.key] if kind == _SPAWN else None,
            fields[EF.WAIT_MS.key] if kind == _AWAIT else None,
            fields.get(EF.AGENT.key, b""),
        )
    except KeyError as exc:
        raise CodecError(f"missing field {exc.args[0]!r}", fields) from None
    if kind not in _KINDS:
        raise CodecError(f"unknown completion kind {kind!r}", fields)
    try:
        if not (
            ID_PATTERN.fullmatch(workflow.decode())
            and TASK_PATTERN.fullmatch(task.decode())
            and (completion.adjust is None or TASK_PATTERN.fullmatch(completion.adjust[0].decode()))
        ):
            raise CodecError("invalid workflow or task id", fields)
        int(attempt), int(began), int(ended)
        if completion.wait is not None:
            int(completion.wait[0]), int(completion.wait[1])
        if completion.awaits is not None:
            int(completion.awaits)
    except (UnicodeDecodeError, ValueError):
        raise CodecError("invalid id, attempt or timestamp", fields) from None
    return completion


def trimmed_dead_letter(agent: str, entry_id: bytes) -> dict[bytes, bytes | str]:
    """The dead letter of a pending task entry whose payload was trimmed before its ack."""
    return {
        EF.V.key: VERSION,
        EF.AGENT.key: agent,
        EF.ENTRY.key: entry_id,
        EF.REASON.key: "payload trimmed before ack",
    }


def entry_order(entry_id: bytes | str) -> tuple[int, int]:
    """A stream entry id (``<ms>-<seq>``, or ``<ms>`` alone) as a sortable pair."""
    text = entry_id.decode() if isinstance(entry_id, bytes) else entry_id
    ms, _, seq = text.partition("-")
    return int(ms), int(seq or 0)


PARKED_VALUE_BYTES = 64 * 1024


def parked(fields: Fields) -> dict[bytes, bytes]:
    """A malformed entry's fields as kept in a dead-letter stream: values over 64 KiB are cut
    (with their full size noted), so a hostile 20 MB entry is not copied whole."""
    kept = {}
    for name, value in fields.items():
        if len(value) > PARKED_VALUE_BYTES:
            value = value[:PARKED_VALUE_BYTES] + f"... ({len(value)} bytes in all)".encode()
        kept[name] = value
    return kept


def decode_fields(fields: Fields) -> dict[str, str]:
    """A lifecycle or dead-letter entry as text, for display."""
    return {k.decode(errors="replace"): v.decode(errors="replace") for k, v in fields.items()}


def _check_envelope(fields: Fields) -> None:
    if fields.get(EF.V.key) != VERSION:
        raise CodecError(f"unsupported format version {fields.get(EF.V.key)!r}", fields)
    if sum(map(len, fields)) + sum(map(len, fields.values())) > MAX_ENTRY_BYTES:
        raise CodecError("payload too large", fields)
