"""The hash a new workflow starts with, in the field names of ``fields.py``."""

from __future__ import annotations

import orjson

from streamproc.spec import Limits, WorkflowSpec
from streamproc.store.fields import TaskField, Value, WorkflowField
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
        WorkflowField.ROUNDS,
        spec.adjust_rounds,
        WorkflowField.AGENTS,
        " ".join(sorted({t.agent for t in spec.tasks if t.agent})),
        WorkflowField.MAX_TASKS,
        limits.max_tasks,
        WorkflowField.MAX_EDGES,
        limits.max_edges,
        WorkflowField.EDGES,
        sum(len(set(t.needs)) for t in spec.tasks),
        WorkflowField.MAX_INPUT,
        limits.max_input_bytes,
        WorkflowField.MAX_MAP,
        limits.max_map,
    ]
    if spec.timeout is not None:
        out += (WorkflowField.TIMEOUT, round(spec.timeout * 1000))
    for t in spec.tasks:
        needs = list(dict.fromkeys(t.needs))
        if t.wait_for is None:
            out += (TaskField.AGENT.of(t.id), t.agent)
        else:
            out += (TaskField.WAIT_FOR.of(t.id), t.wait_for)
        if t.default is not None:
            out += (TaskField.DEFAULT.of(t.id), orjson.dumps(t.default))
        out += (
            TaskField.INPUT.of(t.id),
            orjson.dumps(t.input),
            TaskField.NEEDS.of(t.id),
            " ".join(needs),
            TaskField.DEPENDENTS.of(t.id),
            " ".join(dependents[t.id]),
            TaskField.UNMET.of(t.id),
            len(needs),
            TaskField.STATE.of(t.id),
            TaskStatus.WAITING,
            TaskField.ATTEMPT.of(t.id),
            1,
            TaskField.FAILURES.of(t.id),
            0,
            TaskField.LOST.of(t.id),
            0,
            TaskField.RETRIES.of(t.id),
            t.retries,
            TaskField.TIMEOUT.of(t.id),
            "" if t.timeout is None else repr(float(t.timeout)),
        )
        if t.map is not None:
            out += (TaskField.MAP.of(t.id), t.map)
    return out
