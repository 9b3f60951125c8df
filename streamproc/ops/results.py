"""Bounded reads of a workflow (``GET /workflows/{id}``, ``streamproc show``): a fan-in's
results can add up to megabytes, and a reader polling the state should not copy them all each
time.  A result past a size is shown as ``{"elided": true, "bytes": N}`` (N: its JSON size),
and is read whole on its own (``GET /workflows/{id}/tasks/{task}/result``, ``show --result``).
A state leaves task inputs out for the same reason: one is read on its own
(``GET /workflows/{id}/tasks/{task}/input``).
"""

from __future__ import annotations

from typing import Any

import orjson
from redis.asyncio import Redis

from streamproc.errors import TaskNotFound, WorkflowNotFound
from streamproc.store import folded
from streamproc.store.fields import TaskField, WorkflowField
from streamproc.store.ids import check_id
from streamproc.store.keys import Keyspace
from streamproc.store.state import WorkflowState

SHOWN_RESULT_BYTES = 64 * 1024


def elided(state: dict[str, Any], limit: int = SHOWN_RESULT_BYTES) -> dict[str, Any]:
    """``state`` (``WorkflowState.to_dict()``) with each result over ``limit`` bytes elided."""
    tasks = []
    for task in state["tasks"]:
        size = len(orjson.dumps(task["result"]))
        tasks.append({**task, "result": {"elided": True, "bytes": size}} if size > limit else task)
    return {**state, "tasks": tasks}


def task_result(state: WorkflowState, task_id: str, shown_as: str) -> Any:
    """The result of ``task_id`` (None until it is done); the workflow is ``shown_as`` in the
    error, as its caller named it."""
    for task in state.tasks:
        if task.id == task_id:
            return task.result
    raise TaskNotFound(task_id, shown_as)


async def task_input(
    redis: Redis, keyspace: Keyspace, workflow_id: str, task_id: str, shown_as: str
) -> Any:
    """The input ``task_id`` of the workflow stored as ``workflow_id`` runs with (after any
    adjustment, the new one); the workflow is ``shown_as`` in errors."""
    fields = [WorkflowField.STATUS, TaskField.STATE.of(task_id), TaskField.INPUT.of(task_id)]
    asked = [(check_id("workflow id", workflow_id), fields)]
    [[status, state, given]] = await folded.hmget_many(redis, keyspace, asked)
    if status is None:
        raise WorkflowNotFound(shown_as)
    if state is None:  # every task has a state; a declared wait has no agent
        raise TaskNotFound(task_id, shown_as)
    return orjson.loads(given or b"null")
