"""Checks of one task of a spec (``model.py``): its id, agent or wait, retries, timeout, map
and input.  A spawn checks the tasks it adds with the same rules (``engine/spawning.py``)."""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import orjson

from streamproc.errors import SpecError
from streamproc.store.ids import ID_PATTERN, check_id
from streamproc.store.payloads import dumps_payload, refuse_non_finite

if TYPE_CHECKING:
    from streamproc.spec.model import Limits, TaskSpec

MAX_TIMEOUT = 7 * 24 * 3600
MAX_NAME = 200  # characters of a workflow's name: a label for lists and filters
CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")  # would break a line of a listing or a log


def is_seconds(value: object, allow_none: bool) -> bool:
    """A duration in (0, MAX_TIMEOUT] seconds; the comparison also refuses NaN."""
    if value is None:
        return allow_none
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    return 0 < value <= MAX_TIMEOUT


def check_name(name: object) -> None:
    """A workflow's name: text of one line, at most ``MAX_NAME`` characters (it may be empty)."""
    if not isinstance(name, str):
        raise SpecError(f"workflow 'name' must be a string, not {type(name).__name__}")
    if len(name) > MAX_NAME:
        raise SpecError(f"workflow 'name' is {len(name)} characters, over the {MAX_NAME} limit")
    if CONTROL.search(name):
        raise SpecError(f"workflow 'name' {name[:40]!r} holds a control character (a newline?)")


def validate_task(
    task: TaskSpec, seen: Collection[str], agents: Collection[str] | None, limits: Limits
) -> int:
    """Check ``task`` against the ids ``seen`` before it; the size of its input as JSON."""
    check_task_shape(task, seen, agents)
    return len(check_task_input(task.id, task.map, task.input, limits))


def check_task_shape(task: TaskSpec, seen: Collection[str], agents: Collection[str] | None) -> None:
    """Check all of ``task`` but its input, against the ids ``seen`` before it.  Its needs
    are checked only as names here (``topological_order`` finds dangling ones)."""
    check_id("task id", task.id)
    if task.id in seen:
        raise SpecError(f"duplicate task id {task.id!r}", task=task.id)
    if task.wait_for is not None:
        _check_wait(task)
    elif task.default is not None:
        raise SpecError(
            f"task {task.id!r}: 'default' is for a wait ('wait_for') only", task=task.id
        )
    else:
        _check_agent(task, agents)
    if isinstance(task.needs, str) or not isinstance(task.needs, Sequence):
        raise SpecError(f"task {task.id!r}: 'needs' must be a list of task ids", task=task.id)
    for dep in task.needs:
        if not isinstance(dep, str):
            raise SpecError(f"task {task.id!r}: 'needs' must be a list of task ids", task=task.id)
    if (
        isinstance(task.retries, bool)
        or not isinstance(task.retries, int)
        or not 0 <= task.retries <= 1000
    ):
        raise SpecError(
            f"task {task.id!r}: 'retries' must be a whole number from 0 to 1000", task=task.id
        )
    if not is_seconds(task.timeout, allow_none=True):
        raise SpecError(
            f"task {task.id!r}: 'timeout' must be seconds in (0, {MAX_TIMEOUT}]", task=task.id
        )
    if task.map is not None and (not isinstance(task.map, str) or task.map not in task.needs):
        raise SpecError(f"task {task.id!r}: 'map' must name one of its needs", task=task.id)


def check_task_input(task_id: str, mapped: str | None, value: Any, limits: Limits) -> bytes:
    """The input ``value`` of task ``task_id`` (which maps over ``mapped``, or not) as JSON,
    or :class:`SpecError`: not JSON, too large, or, mapped, not a mapping with room for the
    item."""
    if mapped is not None and not (
        value is None or (isinstance(value, Mapping) and "item" not in value)
    ):
        raise SpecError(
            f"task {task_id!r}: a mapped task's input must be a mapping without 'item' (or none)",
            task=task_id,
        )
    try:
        encoded = orjson.dumps(value)  # dumps_payload's work, inline: it runs on every submit
        if encoded.find(b"null") >= 0:
            refuse_non_finite(value)
    except TypeError as exc:
        raise SpecError(
            f"task {task_id!r}: input is not JSON-serialisable: {exc}", task=task_id
        ) from None
    if len(encoded) > limits.max_input_bytes:
        raise SpecError(
            f"task {task_id!r}: input is {len(encoded)} bytes, over the "
            f"{limits.max_input_bytes} limit",
            task=task_id,
        )
    return encoded


def _check_agent(task: TaskSpec, agents: Collection[str] | None) -> None:
    if not isinstance(task.agent, str):
        raise SpecError(
            f"task {task.id!r}: 'agent' must be a name (or give 'wait_for' instead)", task=task.id
        )
    check_id("agent name", task.agent)
    if agents is not None and task.agent not in agents:
        raise SpecError(
            f"task {task.id!r}: unknown agent {task.agent!r} (known: {', '.join(sorted(agents))})",
            task=task.id,
        )


def _check_wait(task: TaskSpec) -> None:
    """A declared wait runs no agent: it waits for the signal ``wait_for`` (its timeout is how
    long), then takes the signal's payload, or ``default`` on timeout, as its result."""
    if task.agent:
        raise SpecError(
            f"task {task.id!r}: a task has either 'agent' or 'wait_for', not both", task=task.id
        )
    if not isinstance(task.wait_for, str) or not ID_PATTERN.fullmatch(task.wait_for):
        raise SpecError(
            f"task {task.id!r}: 'wait_for' must be a signal name of 1-128 characters "
            "from A-Z a-z 0-9 _ . -",
            task=task.id,
        )
    if task.map is not None:
        raise SpecError(f"task {task.id!r}: a wait cannot also 'map'", task=task.id)
    if task.default is not None:
        try:
            dumps_payload(task.default)
        except TypeError as exc:
            raise SpecError(
                f"task {task.id!r}: 'default' is not JSON-serialisable: {exc}", task=task.id
            ) from None
