"""Workflow specs: a DAG of tasks given as YAML, JSON or Python, validated before submit."""

from __future__ import annotations

import hashlib
import pickle
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, fields
from operator import attrgetter
from pathlib import Path
from typing import Any

import orjson
import yaml

from streamproc.dag import topological_order
from streamproc.errors import SpecError
from streamproc.store.codec import MAX_ENTRY_BYTES
from streamproc.store.keys import check_id

MAX_SPEC_BYTES = 1 << 20
MAX_TIMEOUT = 7 * 24 * 3600
TASK_KEYS = frozenset({"id", "agent", "input", "needs", "retries", "timeout"})
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


@dataclass(frozen=True)
class TaskSpec:
    """One task: run ``agent`` on ``input`` once every task in ``needs`` is done."""

    id: str
    agent: str
    input: Any = None
    needs: tuple[str, ...] = ()
    retries: int = 2
    timeout: float | None = None


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
        if not isinstance(data, Mapping) or not isinstance(data.get("tasks"), Sequence):
            raise SpecError("a workflow is a mapping with a 'tasks' list")
        unknown = set(data) - WORKFLOW_KEYS
        if unknown:
            raise SpecError(
                f"unknown workflow keys {sorted(map(str, unknown))} "
                "(name, tasks, adjust_rounds, timeout)"
            )
        name = data.get("name", "")
        if not isinstance(name, str):
            raise SpecError("workflow 'name' must be a string")
        return cls(
            tasks=tuple(_task_from_dict(i, t) for i, t in enumerate(data["tasks"])),
            name=name,
            adjust_rounds=data.get("adjust_rounds", 1),
            timeout=data.get("timeout"),
        )

    @classmethod
    def from_json(cls, text: str | bytes) -> WorkflowSpec:
        _check_size(text)
        try:
            return cls.from_dict(orjson.loads(text))
        except orjson.JSONDecodeError as exc:
            raise SpecError(f"invalid JSON: {exc}") from None

    @classmethod
    def from_yaml(cls, text: str | bytes) -> WorkflowSpec:
        _check_size(text)
        try:
            return cls.from_dict(yaml.load(text, Loader=_NoAliasLoader))  # noqa: S506 (safe loader subclass)
        except yaml.YAMLError as exc:
            raise SpecError(f"invalid YAML: {exc}") from None
        except RecursionError:  # PyYAML's composer recurses once per nesting level
            raise SpecError("invalid YAML: nested too deeply") from None

    @classmethod
    def load(cls, path: str | Path) -> WorkflowSpec:
        """Read a ``.json`` file as JSON and anything else as YAML."""
        path = Path(path)
        if path.stat().st_size > MAX_SPEC_BYTES:
            raise SpecError(f"{path}: larger than {MAX_SPEC_BYTES} bytes")
        data = path.read_bytes()
        return cls.from_json(data) if path.suffix == ".json" else cls.from_yaml(data)

    def validate(
        self, agents: Collection[str] | None = None, limits: Limits = Limits()
    ) -> list[str]:
        """Return the task ids in a dependency order, or raise :class:`SpecError` naming the task
        at fault.  ``agents`` is the known registry, when there is one."""
        order = self.validate_shape(agents, limits)
        self.encode_inputs(limits)
        return order

    def validate_shape(
        self, agents: Collection[str] | None = None, limits: Limits = Limits()
    ) -> list[str]:
        """:meth:`validate` but for the inputs: what only :meth:`shape_key` decides."""
        if not self.tasks:
            raise SpecError("a workflow needs at least one task")
        rounds = self.adjust_rounds
        if isinstance(rounds, bool) or not isinstance(rounds, int):
            raise SpecError("'adjust_rounds' must be a whole number")
        if not 0 <= rounds <= MAX_ADJUST_ROUNDS:
            raise SpecError(f"'adjust_rounds' must be from 0 to {MAX_ADJUST_ROUNDS}")
        if not _is_seconds(self.timeout, allow_none=True):
            raise SpecError(f"workflow 'timeout' must be seconds in (0, {MAX_TIMEOUT}]")
        if len(self.tasks) > limits.max_tasks:
            raise SpecError(f"{len(self.tasks)} tasks: at most {limits.max_tasks} per workflow")
        if sum(len(t.needs) for t in self.tasks) > limits.max_edges:
            raise SpecError(f"more than {limits.max_edges} dependencies in one workflow")
        seen: set[str] = set()
        for task in self.tasks:
            _validate_task(task, seen, agents)
            seen.add(task.id)
        return topological_order({t.id: t.needs for t in self.tasks})

    def encode_inputs(self, limits: Limits = Limits()) -> list[bytes]:
        """Each task's input as JSON, or raise :class:`SpecError` naming a task whose input is
        no JSON, too large, or makes what it receives too large (its shape valid)."""
        encoded = [_encoded_input(task, limits) for task in self.tasks]
        if sum(map(len, encoded)) > MAX_ENTRY_BYTES:  # else no task can receive too much
            sizes = {task.id: len(data) for task, data in zip(self.tasks, encoded, strict=True)}
            for task in self.tasks:
                _check_received(task, sizes)
        return encoded

    def shape_key(self) -> bytes | None:
        """Every field but the tasks' inputs, pickled (so 1, 1.0, True, NaN and None differ, as
        they would not as dict keys or JSON): specs with one key are valid alike but for their
        inputs, and write one hash but for their inputs and digest.  Nothing is unpickled.
        None when a field cannot be pickled (no valid spec has such a field)."""
        shape = (_workflow_shape(self), [_task_shape(t) for t in self.tasks])
        try:
            return pickle.dumps(shape, pickle.HIGHEST_PROTOCOL)
        except Exception:  # pickling fails in many ways (a lambda, a local class, recursion)
            return None

    def digest(self) -> str:
        """A stable fingerprint, so resubmitting one id with another spec is detected."""
        canonical = [
            [t.id, t.agent, t.input, list(t.needs), t.retries, t.timeout] for t in self.tasks
        ]
        whole: list[Any] = [self.name, self.adjust_rounds, canonical]
        if self.timeout is not None:  # absent, the digest stays what it was before timeouts
            whole.append(self.timeout)
        return hashlib.sha256(orjson.dumps(whole, option=orjson.OPT_SORT_KEYS)).hexdigest()[:32]


# What a spec's shape is made of: every field but the tasks (workflow) and the input (task),
# so a field added to either class is part of the shape without a change here.
_workflow_shape = attrgetter(*(f.name for f in fields(WorkflowSpec) if f.name != "tasks"))
_task_shape = attrgetter(*(f.name for f in fields(TaskSpec) if f.name != "input"))


class _NoAliasLoader(yaml.SafeLoader):
    """Safe loading without aliases, which let a tiny file expand exponentially, and without
    duplicate keys, which PyYAML would silently resolve to the last one."""

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.events.AliasEvent):
            raise SpecError("YAML aliases are not allowed in workflow specs")
        return super().compose_node(parent, index)

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if isinstance(key, str) and key in seen:
                raise SpecError(f"duplicate key {key!r} at line {key_node.start_mark.line + 1}")
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def _check_size(text: str | bytes) -> None:
    if len(text) > MAX_SPEC_BYTES:  # a character is at least a byte: refuse before encoding
        raise SpecError(f"spec is larger than {MAX_SPEC_BYTES} bytes")
    if isinstance(text, str):
        try:
            text = text.encode()
        except UnicodeEncodeError as exc:  # a lone surrogate: not text any file could hold
            raise SpecError(f"spec is not valid Unicode text: {exc.reason}") from None
    if len(text) > MAX_SPEC_BYTES:
        raise SpecError(f"spec is larger than {MAX_SPEC_BYTES} bytes")


def _task_from_dict(index: int, data: Any) -> TaskSpec:
    # isinstance(x, dict|list|tuple) first: the abstract classes' checks cost several times more.
    if not isinstance(data, dict) and not isinstance(data, Mapping):
        raise SpecError(f"task #{index} must be a mapping")
    task_id = data.get("id")
    label = task_id if isinstance(task_id, str) else f"#{index}"
    if not TASK_KEYS.issuperset(data):
        unknown = sorted(map(str, set(data) - TASK_KEYS))
        raise SpecError(f"task {label!r}: unknown keys {unknown}", task=label)
    needs = data.get("needs", ())
    if not isinstance(needs, list | tuple) and (
        isinstance(needs, str) or not isinstance(needs, Sequence)
    ):
        raise SpecError(f"task {label!r}: 'needs' must be a list of task ids", task=label)
    return TaskSpec(
        id=task_id,  # type: ignore[arg-type]  # checked in validate()
        agent=data.get("agent"),  # type: ignore[arg-type]
        input=data.get("input"),
        needs=tuple(needs),
        retries=data.get("retries", 2),
        timeout=data.get("timeout"),
    )


def _is_seconds(value: object, allow_none: bool) -> bool:
    """A duration in (0, MAX_TIMEOUT] seconds; the comparison also refuses NaN."""
    if value is None:
        return allow_none
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    return 0 < value <= MAX_TIMEOUT


def _validate_task(task: TaskSpec, seen: Collection[str], agents: Collection[str] | None) -> None:
    """Check ``task``, but for its input, against the ids ``seen`` before it."""
    check_id("task id", task.id)
    if task.id in seen:
        raise SpecError(f"duplicate task id {task.id!r}", task=task.id)
    if not isinstance(task.agent, str):
        raise SpecError(f"task {task.id!r}: 'agent' must be a name", task=task.id)
    check_id("agent name", task.agent)
    if agents is not None and task.agent not in agents:
        raise SpecError(
            f"task {task.id!r}: unknown agent {task.agent!r} (known: {', '.join(sorted(agents))})",
            task=task.id,
        )
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
    if not _is_seconds(task.timeout, allow_none=True):
        raise SpecError(
            f"task {task.id!r}: 'timeout' must be seconds in (0, {MAX_TIMEOUT}]", task=task.id
        )


def _encoded_input(task: TaskSpec, limits: Limits) -> bytes:
    try:
        data = orjson.dumps(task.input)
    except TypeError as exc:
        raise SpecError(
            f"task {task.id!r}: input is not JSON-serialisable: {exc}", task=task.id
        ) from None
    if len(data) > limits.max_input_bytes:
        raise SpecError(
            f"task {task.id!r}: input is {len(data)} bytes, over the {limits.max_input_bytes} "
            "limit",
            task=task.id,
        )
    return data


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
