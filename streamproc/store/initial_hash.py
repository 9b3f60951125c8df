"""The hash a new workflow starts with, in the field names of ``fields.py``.

A field that would hold its default is left out (``fields.py`` says what each absence reads
as): a task's failures, lost deliveries and unmet needs of 0, its empty needs, dependents and
timeout, its first attempt, its retries, the adjust rounds and the limits when they are
``fields.ABSENT``'s, and no dependencies.  A hash is smaller, and each submit sends fewer
arguments for Redis to write."""

from __future__ import annotations

import orjson

from streamproc.spec.model import Limits, WorkflowSpec
from streamproc.store.fields import ABSENT, TaskField, Value, WorkflowField
from streamproc.store.state import TaskStatus


def initial_fields(spec: WorkflowSpec, ttl_ms: int, limits: Limits) -> list[Value]:
    """The hash a new workflow starts with, as HSET arguments (``sp_submit`` adds its digest,
    status and creation time)."""
    dependents: dict[str, list[str]] = {t.id: [] for t in spec.tasks}
    for task in spec.tasks:
        for dep in dict.fromkeys(task.needs):
            dependents[dep].append(task.id)
    out: list[Value] = [
        WorkflowField.ORDER,
        " ".join(t.id for t in spec.tasks),
        WorkflowField.LEFT,
        len(spec.tasks),
        WorkflowField.TTL,
        ttl_ms,
        WorkflowField.NAME,
        spec.name,
        WorkflowField.AGENTS,
        " ".join(sorted({t.agent for t in spec.tasks if t.agent})),
    ]
    given: list[tuple[WorkflowField, int]] = [
        (WorkflowField.ROUNDS, spec.adjust_rounds),
        (WorkflowField.MAX_TASKS, limits.max_tasks),
        (WorkflowField.MAX_EDGES, limits.max_edges),
        (WorkflowField.MAX_INPUT, limits.max_input_bytes),
        (WorkflowField.MAX_MAP, limits.max_map),
    ]
    for field, value in given:
        if value != ABSENT[field]:
            out += (field, value)
    edges = sum(len(set(t.needs)) for t in spec.tasks)
    if edges:
        out += (WorkflowField.EDGES, edges)
    if spec.timeout is not None:
        out += (WorkflowField.TIMEOUT, round(spec.timeout * 1000))
    for t in spec.tasks:
        if t.wait_for is None:
            out += (TaskField.AGENT.of(t.id), t.agent)
        else:
            out += (TaskField.WAIT_FOR.of(t.id), t.wait_for)
        if t.default is not None:
            out += (TaskField.DEFAULT.of(t.id), orjson.dumps(t.default))
        out += (TaskField.INPUT.of(t.id), orjson.dumps(t.input))
        out += (TaskField.STATE.of(t.id), TaskStatus.WAITING)
        needs = list(dict.fromkeys(t.needs))
        if needs:
            out += (TaskField.NEEDS.of(t.id), " ".join(needs), TaskField.UNMET.of(t.id), len(needs))
        if dependents[t.id]:
            out += (TaskField.DEPENDENTS.of(t.id), " ".join(dependents[t.id]))
        if t.retries != ABSENT[TaskField.RETRIES]:
            out += (TaskField.RETRIES.of(t.id), t.retries)
        if t.timeout is not None:
            out += (TaskField.TIMEOUT.of(t.id), repr(float(t.timeout)))
        if t.map is not None:
            out += (TaskField.MAP.of(t.id), t.map)
    return out
