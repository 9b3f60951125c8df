"""What a tenant token is not shown: the names of the workers that ran its tasks, and the
tracebacks of its failed attempts.

A worker's consumer name says which host and process ran a task, shared by every tenant's
tasks: a tenant learns the fleet's layout from it, and whose tasks ran beside its own.  A
traceback quotes the servers' file paths and the agents' source lines.  Operators see both
(in task state, attempt history, and the ``by`` of ``task_started`` events and of
``task_done`` events that carry their task's start); a tenant keeps each attempt's one-line
``error``.
"""

from __future__ import annotations

from typing import Any

from streamproc.store.entries import EntryField as EF
from streamproc.store.entries import EventKind

# their ``by`` is a worker (task_adjusted's a task)
WORKER_EVENTS = frozenset({EventKind.TASK_STARTED, EventKind.TASK_DONE})
HIDDEN = frozenset({"by", "traceback"})  # of an attempt's record


def tenant_state(state: dict[str, Any]) -> dict[str, Any]:
    """A workflow's state as ``WorkflowState.to_dict`` gives it, without worker names."""
    return {**state, "tasks": [tenant_task(task) for task in state["tasks"]]}


def tenant_task(task: dict[str, Any]) -> dict[str, Any]:
    history = [{k: v for k, v in r.items() if k not in HIDDEN} for r in task["history"]]
    return {**task, "consumer": "", "history": history}


def tenant_event(fields: dict[str, Any]) -> dict[str, Any]:
    """An event's fields, without the worker that started a task."""
    if fields.get(EF.KIND) not in WORKER_EVENTS:
        return fields
    return {k: v for k, v in fields.items() if k != EF.BY}
