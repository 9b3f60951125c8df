"""A client validates and lays out a spec's shape (every field but the inputs) once, and reuses
it for every later spec of that shape: each spec's inputs and digest are still its own, and
every validation still refuses a bad spec."""

from __future__ import annotations

import math
from typing import Any

import pytest

from streamproc import Client, ClientSettings, Keyspace, Limits, SpecError, WorkflowSpec
from streamproc.store.fields import TaskField
from streamproc.store.template import Shapes

SETTINGS = ClientSettings(limits=Limits(max_tasks=3, max_input_bytes=100))


def spec(*tasks: dict[str, Any], **workflow: Any) -> WorkflowSpec:
    return WorkflowSpec.from_dict({"name": "w", **workflow, "tasks": list(tasks)})


def chain(first: object, second: object, **fields: Any) -> WorkflowSpec:
    return spec(
        {"id": "a", "agent": "echo", "input": first, **fields},
        {"id": "b", "agent": "echo", "input": second, "needs": ["a"]},
    )


def test_specs_of_one_shape_share_it_and_keep_their_own_inputs_and_digest() -> None:
    shapes = Shapes(SETTINGS, None)
    first, second = chain({"n": 1}, "x"), chain({"n": 2}, "y")
    one, two = shapes.blueprint(first), shapes.blueprint(second)
    assert len(shapes._shapes) == 1
    assert first.shape_key() == second.shape_key()
    assert one.args[0] == first.digest() and two.args[0] == second.digest() != one.args[0]
    assert b'{"n":2}' in two.args and b'"y"' in two.args and b'{"n":1}' not in two.args
    # Laid out from the cached shape, the second is what a fresh cache lays out for it.
    assert two == Shapes(SETTINGS, None).blueprint(second)


def test_one_spec_submitted_again_gets_its_blueprint_back_until_its_inputs_change() -> None:
    shapes = Shapes(SETTINGS, None)
    inputs: dict[str, Any] = {"n": 1}
    same = chain(inputs, 2)
    first = shapes.blueprint(same)
    assert shapes.blueprint(same) is first
    inputs["n"] = 2  # a mutable input changed in place: a new digest and input
    again = shapes.blueprint(same)
    assert again is not first and again == Shapes(SETTINGS, None).blueprint(same)
    assert again.args[0] != first.args[0] and b'{"n":2}' in again.args


@pytest.mark.parametrize(
    "other",
    [
        chain(1, 2, retries=3),
        chain(1, 2, timeout=5),
        spec({"id": "a", "agent": "other", "input": 1}),
        spec({"id": "a", "agent": "echo", "input": 1}, name="v"),
    ],
)
def test_a_spec_of_another_shape_gets_its_own(other: WorkflowSpec) -> None:
    shapes = Shapes(SETTINGS, None)
    shapes.blueprint(chain(1, 2))
    assert shapes.blueprint(other) == Shapes(SETTINGS, None).blueprint(other)
    assert len(shapes._shapes) == 2


@pytest.mark.parametrize(
    ("bad", "error"),
    [
        (
            spec(
                {"id": "a", "agent": "echo", "needs": ["b"]},
                {"id": "b", "agent": "echo", "needs": ["a"]},
            ),
            "cycle: ",
        ),
        (spec({"id": "a", "agent": "echo"}, {"id": "a", "agent": "echo"}), "duplicate task id"),
        (spec(*({"id": f"t{i}", "agent": "echo"} for i in range(4))), "4 tasks: at most 3"),
        (chain(1, 2, retries=True), "'retries' must be a whole number"),
        (chain(1, 2, retries=1.0), "'retries' must be a whole number"),
        (chain(1, 2, timeout=math.nan), "'timeout' must be seconds"),
        (chain("x" * 200, 2), "input is 202 bytes, over the 100 limit"),
        (chain({1, 2}, 2), "input is not JSON-serialisable"),
        (spec({"id": "a", "agent": "nope"}), "unknown agent 'nope'"),
        (chain(1, 2, retries=lambda: 1), "'retries' must be a whole number"),  # no pickle
    ],
)
def test_validation_still_refuses_a_bad_spec_once_shapes_are_cached(
    bad: WorkflowSpec, error: str
) -> None:
    shapes = Shapes(SETTINGS, {"echo", "other"})
    # Valid specs of the bad ones' neighbouring shapes, and of their own where only the
    # inputs are at fault, are cached first.
    for good in (chain(1, 2), chain(1, 2, retries=1), chain(1, 2, timeout=None)):
        shapes.blueprint(good)
    with pytest.raises(SpecError, match=error):
        shapes.blueprint(bad)


async def test_each_workflow_of_a_cached_shape_stores_its_own_inputs(
    redis_url: str, keyspace: Keyspace
) -> None:
    async with Client(redis_url, ClientSettings(keyspace=keyspace)) as client:
        ids = [await client.submit(_fresh(n)) for n in range(3)]
        for n, workflow_id in enumerate(ids):
            stored = await client.redis.hget(
                keyspace.workflow(workflow_id), TaskField.INPUT.of("a")
            )
            assert stored == f'{{"n":{n}}}'.encode()


def _fresh(n: int) -> dict[str, Any]:
    """A new dict per submit, as producers send them."""
    return {"tasks": [{"id": "a", "agent": "echo", "input": {"n": n}}]}
