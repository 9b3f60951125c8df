"""A spec's digest (``WorkflowSpec.digest``, and a shape's ``DigestFrame``, made once and
filled with each submit's inputs) is the sha256 of one canonical JSON, and stays the digest
earlier releases stored: resubmitting an id with the same spec must find it the same."""

from __future__ import annotations

import hashlib
from dataclasses import replace
from pathlib import Path
from typing import Any

import orjson
from hypothesis import given
from hypothesis import strategies as st

from streamproc import TaskSpec, WorkflowSpec
from streamproc.spec.model import DigestFrame
from tests.test_shapes import json_values

SEED = Path(__file__).parents[1] / "streamproc" / "examples" / "agentic.yaml"


def canonical_digest(spec: WorkflowSpec) -> str:
    """The digest as the format says: sha256 of the JSON below, keys sorted, 32 hex digits."""
    tasks = [
        [t.id, t.agent, t.input, list(t.needs), t.retries, t.timeout]
        + ([] if t.map is None else [t.map])
        + ([] if t.wait_for is None else [t.wait_for, t.default])
        for t in spec.tasks
    ]
    whole: list[Any] = [spec.name, spec.adjust_rounds, tasks]
    if spec.timeout is not None:
        whole.append(spec.timeout)
    return hashlib.sha256(orjson.dumps(whole, option=orjson.OPT_SORT_KEYS)).hexdigest()[:32]


names = st.text("abcé_", min_size=1, max_size=4)
tasks = st.builds(
    TaskSpec,
    id=names,
    agent=names | st.just(""),
    input=json_values,
    needs=st.lists(names, max_size=2).map(tuple),
    retries=st.integers(0, 3),
    timeout=st.none() | st.floats(0.5, 99, allow_nan=False),
    map=st.none() | names,
    wait_for=st.none() | names,
    default=json_values,
)
specs = st.builds(
    WorkflowSpec,
    tasks=st.lists(tasks, max_size=4),
    name=names | st.just(""),
    adjust_rounds=st.integers(0, 3),
    timeout=st.none() | st.integers(1, 500),
)


@given(specs, st.lists(json_values, min_size=4, max_size=4))
def test_a_frame_filled_with_inputs_digests_as_the_canonical_json(
    spec: WorkflowSpec, inputs: list[Any]
) -> None:
    assert spec.digest() == canonical_digest(spec)
    frame = DigestFrame.of(spec)
    others = inputs[: len(spec.tasks)]
    tasks = [replace(t, input=v) for t, v in zip(spec.tasks, others, strict=True)]
    assert frame.digest(others) == canonical_digest(replace(spec, tasks=tasks))


def test_the_digests_0_9_9_stored_are_computed_the_same() -> None:
    seed = WorkflowSpec.from_yaml(SEED.read_text())
    mapped_and_waiting = WorkflowSpec.from_dict(
        {
            "name": "shapes",
            "adjust_rounds": 1,
            "timeout": 12.5,
            "tasks": [
                {"id": "a", "agent": "l", "input": {"z": 1, "a": [1.5, None, "é"]}, "retries": 1},
                {"id": "b", "agent": "w", "input": {"k": {"y": 2}}, "needs": ["a"], "map": "a"},
                {"id": "w", "wait_for": "ok", "needs": ["a", "b"], "default": {"q": 1, "c": [2]}},
            ],
        }
    )
    bare = WorkflowSpec([TaskSpec(id="x", agent="a")])
    digests = [s.digest() for s in (seed, mapped_and_waiting, bare, WorkflowSpec([]))]
    assert digests == [  # as 0.9.9 computed them
        "c0a8d918367411badd61270ea9a0782c",
        "c1552cddabbfe1cf3cfa6f7db151d8c8",
        "2a3bf476a302edf9025ad3ccf57c0deb",
        "9a751ef488938c65902b26417b23a1b5",
    ]
