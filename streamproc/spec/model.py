"""Workflow specs: a DAG of tasks given as YAML, JSON or Python, validated before submit, and
the digest that tells one spec from another."""

from __future__ import annotations

import hashlib
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, NamedTuple

import orjson

from streamproc.errors import SpecError
from streamproc.spec.checks import (
    MAX_TIMEOUT,
    check_name,
    check_task_input,
    check_task_shape,
    is_seconds,
)
from streamproc.spec.dag import topological_order
from streamproc.spec.reading import kind_of, read_file, read_json, read_yaml
from streamproc.store.codec import MAX_ENTRY_BYTES

TASK_KEYS = frozenset(
    {"id", "agent", "input", "needs", "retries", "timeout", "map", "wait_for", "default"}
)
WORKFLOW_KEYS = frozenset({"name", "tasks", "adjust_rounds", "timeout"})
MAX_ADJUST_ROUNDS = 100


@dataclass(frozen=True)
class Limits:
    """Bounds that keep one workflow from hurting the others.

    Submit writes a whole workflow in one Redis call, and Redis serves nobody else meanwhile:
    at 10,000 tasks and 100,000 edges that call took 120-190 ms.  At 2,000 and 20,000 it
    takes about 17 ms (tests/test_submit_cost.py), near the 20 ms a call may block others.
    """

    max_tasks: int = 2_000
    max_edges: int = 20_000
    max_input_bytes: int = 256 * 1024
    max_map: int = 1_000  # instances one mapped task may run (TaskSpec.map)

    def __post_init__(self) -> None:
        for name, value in vars(self).items():
            least = 1 if name == "max_tasks" else 0  # no edges, or no map instances: a choice
            if isinstance(value, bool) or not isinstance(value, int) or value < least:
                raise SpecError(
                    f"Limits.{name} must be a whole number of at least {least}, not {value!r}"
                )


@dataclass(frozen=True)
class TaskSpec:
    """One task: run ``agent`` on ``input`` once every task in ``needs`` is done.  With ``map``
    (one of its needs), it runs once per item of that need's result, a list: instance ``i`` is
    task ``<id>[i]`` with input ``{"item": <item>, **input}``, and the task's result is the
    list of its instances' results, in order.  With ``wait_for`` (a signal name) and no agent,
    it waits, once its needs are done, for that signal (``Client.signal``) for at most
    ``timeout`` seconds, and its result is the signal's payload, or ``default`` (when not None)
    on timeout; without a default, a timeout fails it."""

    id: str
    agent: str = ""
    input: Any = None
    needs: tuple[str, ...] = ()
    retries: int = 2
    timeout: float | None = None
    map: str | None = None
    wait_for: str | None = None
    default: Any = None


@dataclass(frozen=True)
class WorkflowSpec:
    """A DAG of tasks.  Build it in Python, or load it with :meth:`from_yaml`/:meth:`from_json`."""

    tasks: tuple[TaskSpec, ...]
    name: str = ""
    # How many times one task may be re-run at an agent's request (registry.Adjust).
    adjust_rounds: int = 1
    # Seconds after submit by which it must have ended; past them, it fails (see sp_expire).
    timeout: float | None = None

    @classmethod
    def from_dict(cls, data: Any) -> WorkflowSpec:
        if not isinstance(data, Mapping):
            kind = kind_of(data)
            raise SpecError(f"a workflow is a mapping with a 'tasks' list, but the spec is {kind}")
        if "tasks" not in data:
            raise SpecError("a workflow is a mapping with a 'tasks' list, but 'tasks' is missing")
        tasks = data["tasks"]
        if isinstance(tasks, str | bytes) or not isinstance(tasks, Sequence):
            raise SpecError(f"'tasks' must be a list of tasks, but it is {kind_of(tasks)}")
        unknown = set(data) - WORKFLOW_KEYS
        if unknown:
            raise SpecError(
                f"unknown workflow keys {sorted(map(str, unknown))} "
                "(name, tasks, adjust_rounds, timeout)"
            )
        name = data.get("name", "")
        check_name(name)
        return cls(
            tasks=tuple(task_from_dict(i, t) for i, t in enumerate(tasks)),
            name=name,
            adjust_rounds=data.get("adjust_rounds", 1),
            timeout=data.get("timeout"),
        )

    @classmethod
    def from_json(cls, text: str | bytes) -> WorkflowSpec:
        return cls.from_dict(read_json(text))

    @classmethod
    def from_yaml(cls, text: str | bytes) -> WorkflowSpec:
        return cls.from_dict(read_yaml(text))

    @classmethod
    def load(cls, path: str | Path) -> WorkflowSpec:
        """Read a ``.json`` file as JSON and anything else as YAML."""
        return cls.from_dict(read_file(Path(path)))

    def validate(
        self, agents: Collection[str] | None = None, limits: Limits = Limits()
    ) -> list[str]:
        """Return the task ids in a dependency order, or raise :class:`SpecError` naming the task
        at fault.  ``agents`` is the known registry, when there is one."""
        order = self.check_shape(agents, limits)
        check_inputs(self.tasks, [t.input for t in self.tasks], limits)
        return order

    def check_shape(self, agents: Collection[str] | None, limits: Limits) -> list[str]:
        """:meth:`validate` but for the tasks' inputs (``check_inputs``): what holds for every
        spec that differs from this one only in its inputs."""
        if not self.tasks:
            raise SpecError("a workflow needs at least one task")
        check_name(self.name)
        rounds = self.adjust_rounds
        if isinstance(rounds, bool) or not isinstance(rounds, int):
            raise SpecError("'adjust_rounds' must be a whole number")
        if not 0 <= rounds <= MAX_ADJUST_ROUNDS:
            raise SpecError(f"'adjust_rounds' must be from 0 to {MAX_ADJUST_ROUNDS}")
        if not is_seconds(self.timeout, allow_none=True):
            raise SpecError(f"workflow 'timeout' must be seconds in (0, {MAX_TIMEOUT}]")
        if len(self.tasks) > limits.max_tasks:
            raise SpecError(f"{len(self.tasks)} tasks: at most {limits.max_tasks} per workflow")
        seen: set[str] = set()
        for index, task in enumerate(self.tasks):
            if not isinstance(task, TaskSpec):
                raise SpecError(
                    f"task #{index} is {kind_of(task)}, not a TaskSpec (a spec of mappings is "
                    "read by WorkflowSpec.from_dict, or submitted as it is)"
                )
            check_task_shape(task, seen, agents)
            seen.add(task.id)
        if sum(len(t.needs) for t in self.tasks) > limits.max_edges:
            raise SpecError(f"more than {limits.max_edges} dependencies in one workflow")
        return topological_order({t.id: t.needs for t in self.tasks})

    def digest(self) -> str:
        """A stable fingerprint, so resubmitting one id with another spec is detected."""
        return DigestFrame.of(self).digest([t.input for t in self.tasks])


def check_inputs(tasks: Sequence[TaskSpec], inputs: Sequence[Any], limits: Limits) -> list[bytes]:
    """The inputs of ``tasks`` (of a spec whose shape is checked), one each, as JSON, or
    :class:`SpecError` naming the first task whose input or received entry is refused."""
    encoded: list[bytes] = []
    size = 0
    for task, value in zip(tasks, inputs, strict=True):  # a loop: it runs on every submit
        encoded.append(check_task_input(task.id, task.map, value, limits))
        size += len(encoded[-1])
    if size > MAX_ENTRY_BYTES:  # else no task can receive more than that
        sizes = {t.id: len(value) for t, value in zip(tasks, encoded, strict=True)}
        for task in tasks:
            _check_received(task, sizes)
    return encoded


_dumps_sorted = partial(orjson.dumps, option=orjson.OPT_SORT_KEYS)


class DigestFrame(NamedTuple):
    """What a spec's digest hashes, but for its tasks' inputs: the JSON of ``[name,
    adjust_rounds, [[id, agent, input, needs, retries, timeout, (map), (wait_for, default)],
    ...], (timeout)]``, keys sorted, cut around each task's input.  Made once per shape
    (``store/shapes.py``): a submit of the shape dumps only its own inputs."""

    around: tuple[bytes, ...]  # before the first input, then after each one

    @classmethod
    def of(cls, spec: WorkflowSpec) -> DigestFrame:
        around = [_dumps_sorted([spec.name, spec.adjust_rounds])[:-1] + b",["]
        for index, task in enumerate(spec.tasks):
            rest = [list(task.needs), task.retries, task.timeout]
            if task.map is not None:  # absent, the digest stays what it was
                rest.append(task.map)
            if task.wait_for is not None:
                rest += (task.wait_for, task.default)
            around[-1] += (b"," if index else b"") + _dumps_sorted([task.id, task.agent])[:-1]
            around[-1] += b","  # then the input
            around.append(b"," + _dumps_sorted(rest)[1:])
        timeout = b"" if spec.timeout is None else b"," + _dumps_sorted(spec.timeout)
        around[-1] += b"]" + timeout + b"]"  # absent, the digest stays what it was
        return cls(tuple(around))

    def digest(self, inputs: Sequence[Any]) -> str:
        """The digest of the spec this frame was made of, with ``inputs`` (one per task)."""
        parts = [self.around[0]]
        for value, after in zip(inputs, self.around[1:], strict=True):
            parts += (orjson.dumps(value, option=orjson.OPT_SORT_KEYS), after)  # no partial:
            # it runs on every submit, and through one a call costs a third more
        return hashlib.sha256(b"".join(parts)).hexdigest()[:32]


def task_from_dict(index: int, data: Any) -> TaskSpec:
    """Task #``index`` of a spec as read from YAML or JSON (checked later, by ``validate``)."""
    if not isinstance(data, Mapping):
        raise SpecError(f"task #{index} must be a mapping")
    task_id = data.get("id")
    label = task_id if isinstance(task_id, str) else f"#{index}"
    unknown = set(data) - TASK_KEYS
    if unknown:
        raise SpecError(f"task {label!r}: unknown keys {sorted(map(str, unknown))}", task=label)
    needs = data.get("needs", ())
    if isinstance(needs, str) or not isinstance(needs, Sequence):
        raise SpecError(f"task {label!r}: 'needs' must be a list of task ids", task=label)
    return TaskSpec(
        id=task_id,  # type: ignore[arg-type]  # checked in validate()
        agent=data.get("agent", "" if "wait_for" in data else None),
        input=data.get("input"),
        needs=tuple(needs),
        retries=data.get("retries", 2),
        timeout=data.get("timeout"),
        map=data.get("map"),
        wait_for=data.get("wait_for"),
        default=data.get("default"),
    )


def _check_received(task: TaskSpec, sizes: Mapping[str, int]) -> None:
    """Refuse a task whose entry is sure to pass the bound ``publish`` enforces: its input and
    its needs' inputs, as if each need passed its input on (as ``echo`` does).  Results are
    unknown here; ``publish`` measures the real entry, and fails the task past the bound."""
    size = sizes[task.id] + sum(sizes[need] for need in set(task.needs))
    if size > MAX_ENTRY_BYTES:
        raise SpecError(
            f"task {task.id!r}: its input and its needs' inputs are {size / (1 << 20):.1f} MiB, "
            f"over the {MAX_ENTRY_BYTES >> 20} MiB bound of what one task receives",
            task=task.id,
        )
