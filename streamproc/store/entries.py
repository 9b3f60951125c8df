"""The names stream entries share between Python and the engine's Lua: their fields and the
kinds of lifecycle event.  ``functions.py`` hands both to the Lua (``EF``, ``EV``), so neither
side spells them and the on-Redis layout is written down once, here.
"""

from __future__ import annotations

from enum import StrEnum
from functools import cached_property

from streamproc.store.state import WorkflowStatus


class EntryField(StrEnum):
    """A field of an entry of a task stream, ``done``, the events and history streams or a
    dead-letter stream.  A member's lower-case name is its name in Lua (``EF.wf``)."""

    # every entry
    V = "v"  # the entry format version
    # task entries, completions and lifecycle events
    KIND = "kind"  # a completion's CompletionKind, an event's EventKind
    WF = "wf"
    TASK = "task"
    AGENT = "agent"
    ATT = "att"
    AT = "at"  # when, in ms
    # task entries
    PAYLOAD = "in"  # the task's input, JSON
    DEPS = "deps"  # its dependencies' results, a JSON object
    TIMEOUT = "to"  # seconds, or empty
    # completions
    OUT = "out"  # the orjson result, or the error text
    T0 = "t0"
    T1 = "t1"
    BY = "by"  # the worker (completions, task_started, a task_done with `began`) or the
    # adjusting task (task_adjusted)
    SRC = "src"  # the task entry that ran
    ADJ = "adj"  # an adjust request's target task, reason and new input
    WHY = "why"
    ADJIN = "adjin"
    RETRY_MS = "retry_ms"  # also of task_failed and task_waiting events
    GIVE_UP_MS = "give_up_ms"
    TB = "tb"  # a failed attempt's traceback
    SPAWN = "spawn"  # the tasks a spawn adds, JSON (engine/spawning.py)
    WAIT_MS = "wait_ms"  # an await's timeout in ms (0: none)
    # signals (a task entry's ``signal`` is the payload its wait was resumed with, JSON)
    SIGNAL = "signal"  # a signal's name (signalled, task_awaiting, wait_timed_out events)
    SIGNAL_ID = "signal_id"
    SIZE = "size"  # a signal's payload bytes
    SIGNAL_PAYLOAD = "signal_payload"  # of a resumed task entry, JSON
    # lifecycle events
    ERROR = "error"  # also of dead letters
    FINAL = "final"
    REASON = "reason"  # also of dead letters and dead completions
    TARGET = "target"
    ROUND = "round"
    ADJUSTING = "adjusting"
    BEGAN = "began"  # of a task_done whose start no task_started recorded: when it began
    # output chunks (``Task.emit``; an entry's kind is always ``output``)
    SEQ = "seq"  # the chunk's place in its attempt's output, from 0
    FORMAT = "format"  # text (the agent emitted a str) or json (any other value)
    CHUNK = "chunk"  # the chunk, JSON
    TASKS = "tasks"  # of tasks_spawned: the new task ids, space separated
    # dead letters and dead completions
    ENTRY = "entry"  # the stream entry that was parked
    OUTPUT = "output"
    INPUT = "input"
    DELIVERIES = "deliveries"
    LOST = "lost"
    HISTORY = "history"

    @cached_property
    def key(self) -> bytes:
        """The name as a field of an entry as read (bytes); cached, as codecs look it up for
        every field of every entry."""
        return self.value.encode()


class EventKind(StrEnum):
    """The ``kind`` of a lifecycle event (events and history streams).  A workflow's end is
    named by its status."""

    SUBMITTED = "submitted"
    TASK_STARTED = "task_started"
    TASK_DONE = "task_done"
    TASK_FAILED = "task_failed"
    TASK_WAITING = "task_waiting"
    TASK_RETRIED = "task_retried"
    TASK_REQUEUED = "task_requeued"
    TASK_ADJUSTED = "task_adjusted"
    ADJUST_REFUSED = "adjust_refused"
    TASKS_SPAWNED = "tasks_spawned"  # by a Spawn (task: the spawner) or a map (the mapped task)
    TASKS_SUPERSEDED = "tasks_superseded"  # taken back as the task that added them re-ran
    RESUMED = "resumed"
    TASK_AWAITING = "task_awaiting"  # a wait for a signal began
    SIGNALLED = "signalled"  # a signal arrived (task: the wait it resumed, if any)
    TASK_RESUMED = "task_resumed"  # a WaitFor's signal came: its agent runs again
    WAIT_TIMED_OUT = "wait_timed_out"
    OUTPUT = "output"  # a chunk an agent emitted (output stream, not history)
    COMPLETED = WorkflowStatus.COMPLETED.value
    FAILED = WorkflowStatus.FAILED.value
    CANCELLED = WorkflowStatus.CANCELLED.value
