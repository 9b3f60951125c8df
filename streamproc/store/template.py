"""What ``sp_submit`` writes for a spec, from a cache of what depends only on its shape.

Producers send a new spec, with new inputs, on every submit.  Validating and encoding the
shape (ids, agents, needs, retries, timeouts: every field but the inputs) is most of a
submit's client CPU, and it is the same for every spec of one shape.  :class:`Shapes` keeps
it per :meth:`WorkflowSpec.shape_key`; each submit still checks and encodes its own inputs
and digests its own spec.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass

from streamproc.config import ClientSettings
from streamproc.spec import WorkflowSpec
from streamproc.store import calls
from streamproc.store.fields import TaskField, initial_fields
from streamproc.store.functions import Arg

SHAPE_CACHE = 64


@dataclass(frozen=True, slots=True)
class Shape:
    """A validated shape: the agents its workflows name, its root tasks, and the hash
    arguments of its workflows with each input's place (``inputs_at``) to fill in."""

    agents: list[str]
    roots: str
    fields: list[Arg]
    inputs_at: list[int]

    @classmethod
    def of(cls, spec: WorkflowSpec, inputs: list[bytes], ttl_ms: int) -> Shape:
        """The shape of ``spec`` (validated, ``inputs`` encoded) for workflows kept ``ttl_ms``
        after they end."""
        fields = initial_fields(spec, ttl_ms, inputs)
        names = {name: at for at, name in enumerate(fields[0::2])}
        return cls(
            agents=sorted({t.agent for t in spec.tasks}),
            roots=" ".join(t.id for t in spec.tasks if not t.needs),
            # As bytes, which Redis receives anyway: packing a command then copies them.
            fields=[v if isinstance(v, bytes) else str(v).encode() for v in fields],
            inputs_at=[2 * names[TaskField.INPUT.of(t.id)] + 1 for t in spec.tasks],
        )

    def blueprint(self, spec: WorkflowSpec, inputs: list[bytes]) -> calls.Blueprint:
        """What ``sp_submit`` writes for ``spec`` (of this shape), its ``inputs`` encoded."""
        fields = self.fields.copy()
        for at, data in zip(self.inputs_at, inputs, strict=True):
            fields[at] = data
        return calls.Blueprint(self.agents, [spec.digest(), self.roots, len(fields), *fields])


class Shapes:
    """The shapes one client submitted lately, validated against its settings and agents."""

    def __init__(self, settings: ClientSettings, agents: Collection[str] | None) -> None:
        self.settings = settings
        self.agents = agents
        self._shapes: dict[bytes, Shape] = {}
        # The last spec's shape key, inputs and blueprint: a program that submits one spec
        # again and again gets it back (a digest is a function of those two).
        self._last: tuple[bytes, list[bytes], calls.Blueprint] | None = None

    def blueprint(self, spec: WorkflowSpec) -> calls.Blueprint:
        """Validate ``spec`` (its shape only once) and lay out what ``sp_submit`` writes."""
        key = spec.shape_key()
        shape = None if key is None else self._shapes.get(key)
        if shape is None:
            spec.validate_shape(self.agents, self.settings.limits)
        inputs = spec.encode_inputs(self.settings.limits)
        if shape is not None and self._last and self._last[:2] == (key, inputs):
            return self._last[2]
        if shape is None:
            shape = Shape.of(spec, inputs, int(self.settings.workflow_ttl * 1000))
            if key is not None:
                if len(self._shapes) >= SHAPE_CACHE:
                    self._shapes.pop(next(iter(self._shapes)))
                self._shapes[key] = shape
        blueprint = shape.blueprint(spec, inputs)
        if key is not None:
            self._last = (key, inputs, blueprint)
        return blueprint
