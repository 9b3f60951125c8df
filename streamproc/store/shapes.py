"""What a submit writes, from a cache of the spec shapes a client has seen.

A producer sends a new spec on every submit, but most of them differ from one another only in
their tasks' inputs.  A spec's shape is everything else (ids, agents, needs, retries,
timeouts, map, wait_for, default; its name, adjust_rounds and timeout), and what depends on
the shape alone is the costly part of a submit: its checks (ids, cycles, limits), its parsing
and most of its hash.  So a shape is checked, laid out and packed once (``packed.py``), and
each submit of it still checks and encodes its own inputs (``spec.check_inputs``), digests
its own spec (the shape keeps the rest of what the digest hashes, ``spec.DigestFrame``), and
puts the two between the shape's packed runs of arguments.

The key of a shape is its fields pickled (inputs left out; a dict spec's own dicts, copied
without them): two specs share one only when
every field but the inputs is of the same type and value, so whatever the checks would say
of one they say of the other.  A spec that does not pickle is checked in full every time.
"""

from __future__ import annotations

import copy
import pickle
from collections import OrderedDict
from collections.abc import Collection, Mapping
from dataclasses import dataclass, fields
from typing import Any, NamedTuple

import orjson

from streamproc.config import ClientSettings
from streamproc.spec.model import DigestFrame, TaskSpec, WorkflowSpec, check_inputs
from streamproc.store import calls
from streamproc.store.fields import TaskField
from streamproc.store.functions import Arg
from streamproc.store.packed import Packed, Piece

SHAPES = 256  # shapes kept per client, least recently used dropped first
TASK_FIELDS = tuple(f.name for f in fields(TaskSpec) if f.name != "input")
WORKFLOW_FIELDS = tuple(f.name for f in fields(WorkflowSpec) if f.name != "tasks")


@dataclass(frozen=True, slots=True)
class Shape:
    """A checked spec shape: the blueprint of its first spec, and where its inputs go."""

    spec: WorkflowSpec  # a copy of its first submit's: only its fields but inputs are read
    agents: list[str]
    settings: ClientSettings
    values: list[int]  # where each value of a submit's own goes: 0 its digest, i its i-th input
    runs: list[Packed]  # the arguments after each of those values, up to the next one
    digests: DigestFrame  # what its digest hashes, but for the inputs

    @classmethod
    def of(
        cls, spec: WorkflowSpec, blueprint: calls.Blueprint, settings: ClientSettings
    ) -> Shape | None:
        """The shape of ``spec``, validated under ``settings``, whose ``blueprint`` this is;
        None when its hash does not hold each task's input at a place of its own."""
        args = blueprint.args
        at = {args[i]: i + 1 for i in range(3, len(args), 2)}  # hash field -> its value
        try:
            slots = [at[TaskField.INPUT.of(t.id)] for t in spec.tasks]
        except KeyError:
            return None
        value_at = {0: 0} | {slot: i + 1 for i, slot in enumerate(slots)}  # the digest first
        varying = sorted(value_at)
        ends = [*varying[1:], len(args)]
        runs = [Packed.of(args[a + 1 : end]) for a, end in zip(varying, ends, strict=True)]
        values = [value_at[a] for a in varying]
        # A copy, so a caller changing its spec's default later changes no later digest.
        spec = copy.deepcopy(spec)
        return cls(spec, blueprint.agents, settings, values, runs, DigestFrame.of(spec))

    def blueprint(self, inputs: list[Any]) -> calls.Blueprint:
        """The blueprint of the spec of this shape with ``inputs`` (one per task, checked
        here)."""
        encoded = check_inputs(self.spec.tasks, inputs, self.settings.limits)
        own: list[Arg] = [self.digests.digest(inputs), *encoded]
        pieces: list[Piece] = []
        for value, run in zip(self.values, self.runs, strict=True):
            pieces += (own[value], run)
        return calls.Blueprint(self.agents, pieces)


class Resubmitted(NamedTuple):
    """The last submit of one :class:`WorkflowSpec` object: a producer that submits the same
    object again, inputs unchanged, gets its blueprint back as it was."""

    spec: WorkflowSpec
    inputs: bytes
    settings: ClientSettings
    blueprint: calls.Blueprint


class Shapes:
    """A client's cache of shapes, bounded (least recently used dropped first)."""

    def __init__(self, size: int = SHAPES) -> None:
        self.size = size
        self._shapes: OrderedDict[bytes, Shape] = OrderedDict()
        self._last: Resubmitted | None = None

    def blueprint(
        self,
        spec: WorkflowSpec | Mapping[str, Any],
        settings: ClientSettings,
        known: Collection[str] | None,
    ) -> calls.Blueprint:
        """Validate ``spec`` under ``settings`` and the ``known`` agents (as
        ``WorkflowSpec.validate``), and lay out what its submit writes."""
        last = self._last
        if isinstance(spec, WorkflowSpec) and last is not None and _same(last, spec, settings):
            known_now = _known(last.blueprint.agents, known)
            return last.blueprint if known_now else self._blueprint(spec, settings, known)
        blueprint = self._blueprint(spec, settings, known)
        if isinstance(spec, WorkflowSpec) and (inputs := _encoded_inputs(spec)) is not None:
            self._last = Resubmitted(spec, inputs, settings, blueprint)
        return blueprint

    def _blueprint(
        self,
        spec: WorkflowSpec | Mapping[str, Any],
        settings: ClientSettings,
        known: Collection[str] | None,
    ) -> calls.Blueprint:
        key, inputs = shape_key(spec)
        shape = self._shapes.get(key) if key is not None else None
        if shape is None or shape.settings is not settings or not _known(shape.agents, known):
            return self._add(key, spec, settings, known)
        self._shapes.move_to_end(key)  # type: ignore[arg-type]  # a shape was found by it
        return shape.blueprint(inputs)

    def _add(
        self,
        key: bytes | None,
        spec: WorkflowSpec | Mapping[str, Any],
        settings: ClientSettings,
        known: Collection[str] | None,
    ) -> calls.Blueprint:
        parsed = spec if isinstance(spec, WorkflowSpec) else WorkflowSpec.from_dict(spec)
        parsed.validate(known, settings.limits)
        ttl_ms = int(settings.workflow_ttl * 1000)
        blueprint = calls.Blueprint.of(parsed, ttl_ms, settings.limits)
        shape = Shape.of(parsed, blueprint, settings) if key is not None else None
        if shape is not None:
            self._shapes[key] = shape  # type: ignore[index]  # not None with a shape
            if len(self._shapes) > self.size:
                self._shapes.popitem(last=False)
        return blueprint


def _known(agents: list[str], known: Collection[str] | None) -> bool:
    """Whether every one of ``agents`` is still known (the set may have changed since)."""
    return known is None or all(agent in known for agent in agents)


def _same(last: Resubmitted, spec: WorkflowSpec, settings: ClientSettings) -> bool:
    """Whether ``spec`` is the object ``last`` was made of, with the same inputs (a caller may
    have changed them in place) and under the same settings."""
    return last.spec is spec and last.settings is settings and last.inputs == _encoded_inputs(spec)


def _encoded_inputs(spec: WorkflowSpec) -> bytes | None:
    """The spec's inputs as JSON, or None when they are not JSON (checked in full then)."""
    try:
        return orjson.dumps([t.input for t in spec.tasks])
    except TypeError:
        return None


def shape_key(spec: WorkflowSpec | Mapping[str, Any]) -> tuple[bytes | None, list[Any]]:
    """The key of ``spec``'s shape (None when it has none: checked in full every time), and
    its tasks' inputs.  A mapping keys on its own items, before parsing, which a hit skips."""
    head: Any
    body: list[Any]
    try:
        if isinstance(spec, WorkflowSpec):
            tasks: Any = spec.tasks
            inputs = [t.input for t in tasks]
            head = [type(spec), *(getattr(spec, name) for name in WORKFLOW_FIELDS)]
            body = [[type(t), *(getattr(t, name) for name in TASK_FIELDS)] for t in tasks]
        elif type(spec) is dict and type(tasks := spec.get("tasks")) is list:
            head = spec.copy()
            del head["tasks"]
            body, inputs = [], []
            for task in tasks:  # a loop, not two comprehensions: it runs on every submit
                if type(task) is not dict:  # parsed every time
                    return None, []
                copied = task.copy()
                inputs.append(copied.pop("input", None))
                body.append(copied)
        else:
            return None, []
        return pickle.dumps((head, body), protocol=pickle.HIGHEST_PROTOCOL), inputs
    except Exception:  # a value that does not pickle, or a task of another type
        return None, []
