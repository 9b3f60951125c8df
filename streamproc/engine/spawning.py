"""A :class:`~streamproc.registry.Spawn` as the worker checks and encodes it for the resolver.

What can be judged without Redis is judged here: ids, duplicates and cycles inside the spawn,
agent names (and agents, where the registry is known), retries, timeouts, maps and inputs
that JSON can hold.  What needs the workflow (ids it already has, needs that must be done,
its limits on tasks and input sizes) is judged where the spawn is applied, in the resolver's
step that records the completion (``lua/engine/grow.lua``).

The encoding is a JSON array with one entry per task, each after the tasks of the spawn it
needs: ``[id, agent, input as JSON text, needs, retries, timeout ("" none), map ("" none)]``.
A declared wait (``wait_for``, no agent) has agent ``""`` and two more elements, ``wait_for``
and its default as JSON text (``""`` none); an agent's task keeps the seven, so a resolver of
0.3, which knows only those, still applies it (and refuses a wait's as malformed).
The input travels as text so the Lua never decodes it (its JSON decoder rounds large numbers).
"""

from __future__ import annotations

import sys
from collections.abc import Collection, Mapping

import orjson

from streamproc.errors import SpecError
from streamproc.registry import Spawn
from streamproc.spec.checks import validate_task
from streamproc.spec.dag import topological_order
from streamproc.spec.model import Limits, TaskSpec, task_from_dict

# Input sizes are judged against the workflow's own limit when the spawn is applied.
_ANY_INPUT = Limits(max_input_bytes=sys.maxsize)


class SpawnRefused(ValueError):
    """A spawn that breaks a rule; the message is the one-line reason."""


def encode_spawn(spawn: Spawn, spawner: str, agents: Collection[str] | None, cap: int) -> bytes:
    """The tasks of ``spawn`` (returned by task ``spawner``) as the resolver applies them, or
    :class:`SpawnRefused` saying why they cannot join any workflow."""
    if isinstance(spawn.tasks, str | bytes | Mapping):  # would be read item by item
        raise SpawnRefused(f"spawn from {spawner} refused: tasks must be a list")
    try:
        tasks = [
            task if isinstance(task, TaskSpec) else task_from_dict(i, task)
            for i, task in enumerate(spawn.tasks)
        ]
        seen: dict[str, int] = {}
        for task in tasks:
            seen[task.id] = validate_task(task, seen, agents, _ANY_INPUT)
        ordered = topological_order({t.id: [n for n in t.needs if n in seen] for t in tasks})
    except SpecError as exc:
        raise SpawnRefused(f"spawn from {spawner} refused: {exc}") from None
    except TypeError:
        raise SpawnRefused(f"spawn from {spawner} refused: tasks must be a list") from None
    by_id = {task.id: task for task in tasks}
    encoded = orjson.dumps([_entry(by_id[task_id]) for task_id in ordered])
    if len(encoded) > cap:
        raise SpawnRefused(
            f"spawn from {spawner} refused: its tasks are {len(encoded)} bytes, "
            f"over the {cap}-byte cap"
        )
    return encoded


def _entry(task: TaskSpec) -> list[object]:
    timeout = "" if task.timeout is None else repr(float(task.timeout))
    needs = list(dict.fromkeys(task.needs))
    input_text = orjson.dumps(task.input).decode()
    if task.wait_for is None:
        return [task.id, task.agent, input_text, needs, task.retries, timeout, task.map or ""]
    default = "" if task.default is None else orjson.dumps(task.default).decode()
    return [task.id, "", input_text, needs, task.retries, timeout, "", task.wait_for, default]
