"""A validated workflow spec with what every workflow of it writes, so a client submitting
one spec object many times validates and encodes it once."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass

import orjson

from streamproc.config import ClientSettings
from streamproc.spec import WorkflowSpec
from streamproc.store import calls


@dataclass(frozen=True, slots=True)
class Template:
    """A validated spec, with what every workflow of it writes (its blueprint)."""

    spec: WorkflowSpec
    inputs: bytes | None
    blueprint: calls.Blueprint

    @classmethod
    def build(
        cls, spec: WorkflowSpec, settings: ClientSettings, known: Collection[str] | None
    ) -> Template:
        spec.validate(known, settings.limits)
        ttl_ms = int(settings.workflow_ttl * 1000)
        blueprint = calls.Blueprint.of(spec, ttl_ms, settings.limits)
        return cls(spec, encoded_inputs(spec), blueprint)


def encoded_inputs(spec: WorkflowSpec) -> bytes | None:
    try:
        return orjson.dumps([t.input for t in spec.tasks])
    except TypeError:
        return None  # validate() names the task
