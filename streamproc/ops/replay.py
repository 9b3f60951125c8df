"""Running a past workflow again, for debugging, and comparing two runs task by task.

A recorded run is rebuilt from its workflow hash (spec, inputs, results).  Replaying it
``from recorded`` routes every task to the ``replay`` agent, which returns the recorded
result: no agent or API is called, so the final state must equal the original and any
difference is an engine bug.  ``from_task`` replays the tasks outside that task's downstream
from the record and runs the task and everything downstream of it live; ``live`` runs every
task live.  The new workflow is an ordinary one, so ``show`` and ``diff`` work on it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, cast

import orjson

from streamproc.client import Client
from streamproc.errors import SpecError, StreamprocError
from streamproc.registry import Task
from streamproc.spec import TaskSpec, WorkflowSpec
from streamproc.store import fields
from streamproc.store.state import TaskState, TaskStatus, WorkflowState, WorkflowStatus

REPLAY_AGENT = "replay"


async def replay_recorded(task: Task) -> Any:
    """The ``replay`` agent: the recorded result, as the original agent returned it."""
    return task.input["result"]


async def load_recorded(client: Client, workflow_id: str) -> tuple[WorkflowState, WorkflowSpec]:
    """A finished run's state and the spec it was submitted with (from its workflow hash)."""
    state = await client.get(workflow_id)
    if state.status == WorkflowStatus.RUNNING:
        raise StreamprocError(f"workflow {workflow_id} is still running")
    raw = cast(
        dict[bytes, bytes], await client.redis.hgetall(client.keyspace.workflow(workflow_id))
    )
    tasks = []
    for t in state.tasks:
        given = fields.given(raw, t.id)
        tasks.append(
            TaskSpec(
                id=t.id,
                agent=t.agent,
                input=orjson.loads(given.input),
                needs=tuple(t.needs),
                retries=given.retries,
                timeout=given.timeout,
            )
        )
    rounds = fields.adjust_rounds(raw)
    return state, WorkflowSpec(tasks=tuple(tasks), name=state.name, adjust_rounds=rounds)


def downstream(spec: WorkflowSpec, root: str) -> set[str]:
    """``root`` and every task that depends on it, directly or not."""
    children: dict[str, list[str]] = {t.id: [] for t in spec.tasks}
    for t in spec.tasks:
        for need in t.needs:
            children[need].append(t.id)
    if root not in children:
        raise SpecError(f"no task {root!r} in the recorded workflow", task=root)
    seen, todo = {root}, [root]
    while todo:
        for child in children[todo.pop()]:
            if child not in seen:
                seen.add(child)
                todo.append(child)
    return seen


def replay_spec(
    recorded: WorkflowState, spec: WorkflowSpec, live: set[str] | None = None
) -> WorkflowSpec:
    """``spec`` with every task outside ``live`` served by the ``replay`` agent."""
    live = live or set()
    results = {t.id: t for t in recorded.tasks}
    tasks = []
    for t in spec.tasks:
        if t.id in live:
            tasks.append(t)
            continue
        done = results[t.id]
        if done.state != TaskStatus.DONE:
            raise SpecError(f"task {t.id!r} has no recorded result ({done.state})", task=t.id)
        recorded_input = {"agent": t.agent, "result": done.result}
        tasks.append(TaskSpec(t.id, REPLAY_AGENT, recorded_input, t.needs, 0, None))
    return WorkflowSpec(tasks=tuple(tasks), name=f"replay of {recorded.id}")


@dataclass(frozen=True)
class TaskDiff:
    task: str
    field: str
    before: Any
    after: Any


def diff(before: WorkflowState, after: WorkflowState) -> list[TaskDiff]:
    """What differs between two runs: status, then per task its state and result."""
    out = []
    if before.status != after.status:
        out.append(TaskDiff("", "status", before.status, after.status))
    theirs = {t.id: t for t in after.tasks}
    for mine in before.tasks:
        other = theirs.pop(mine.id, None)
        if other is None:
            out.append(TaskDiff(mine.id, "present", True, False))
            continue
        out += _task_diff(mine, other)
    out += [TaskDiff(task, "present", False, True) for task in theirs]
    return out


def _task_diff(mine: TaskState, other: TaskState) -> list[TaskDiff]:
    return [
        TaskDiff(mine.id, name, getattr(mine, name), getattr(other, name))
        for name in ("state", "result", "error")
        if getattr(mine, name) != getattr(other, name)
    ]
