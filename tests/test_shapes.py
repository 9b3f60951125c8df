"""The cache of spec shapes (store/shapes.py): a submit served from it refuses what a full
validation refuses, with the same message, and lays out the same hash as the uncached path,
packed to the same bytes; specs that differ in anything but their inputs never share a
shape."""

from __future__ import annotations

import copy
from typing import Any

import hiredis
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streamproc import SpecError, TaskSpec, WorkflowSpec
from streamproc.config import ClientSettings
from streamproc.spec.model import Limits
from streamproc.store import calls, packed
from streamproc.store.shapes import Shapes, shape_key

SETTINGS = ClientSettings(limits=Limits(max_input_bytes=64))


def base(inputs: list[Any] | None = None) -> dict[str, Any]:
    """Three tasks: a -> (b mapping over a, a wait w with a default)."""
    a, b, w = inputs if inputs is not None else [{"n": 1}, {"k": 2}, None]
    return {
        "name": "shapes",
        "adjust_rounds": 1,
        "tasks": [
            {"id": "a", "agent": "lister", "input": a, "retries": 1, "timeout": 30},
            {"id": "b", "agent": "worker", "input": b, "needs": ["a"], "map": "a"},
            {"id": "w", "wait_for": "approval", "input": w, "needs": ["a"], "default": [1]},
        ],
    }


def uncached(spec: dict[str, Any] | WorkflowSpec, known: set[str] | None = None) -> Any:
    """The blueprint arguments without any cache, or the refusal's message."""
    try:
        parsed = spec if isinstance(spec, WorkflowSpec) else WorkflowSpec.from_dict(spec)
        parsed.validate(known, SETTINGS.limits)
        ttl_ms = int(SETTINGS.workflow_ttl * 1000)
        return calls.Blueprint.of(parsed, ttl_ms, SETTINGS.limits).args
    except SpecError as exc:
        return f"refused: {exc}"


def cached(shapes: Shapes, spec: Any, known: set[str] | None = None) -> Any:
    """The blueprint arguments from the cache (its packed runs checked against them), or the
    refusal's message."""
    try:
        blueprint = shapes.blueprint(spec, SETTINGS, known)
    except SpecError as exc:
        return f"refused: {exc}"
    assert packed.flat(blueprint.pieces) == blueprint.args
    assert packed.command(blueprint.pieces) == hiredis.pack_command(tuple(blueprint.args))
    return blueprint.args


def warm(known: set[str] | None = None) -> Shapes:
    """A cache holding the base spec's shape, as a dict and as a WorkflowSpec."""
    shapes = Shapes()
    for spec in (base(), WorkflowSpec.from_dict(base())):
        assert not isinstance(cached(shapes, spec, known), str)
    assert len(shapes._shapes) == 2
    return shapes


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner),
    max_leaves=8,
)
inputs = (
    json_values
    | st.builds(set, st.lists(st.integers(), max_size=2))  # not JSON
    | st.text(min_size=60, max_size=80)  # over the 64-byte limit
    | st.fixed_dictionaries({"item": json_values})  # no room for a mapped task's item
    | st.dictionaries(st.integers(), st.integers(), min_size=1, max_size=2)  # non-text keys
)


@settings(max_examples=300, deadline=None)
@given(st.lists(inputs, min_size=3, max_size=3))
def test_a_cached_shape_refuses_and_lays_out_what_the_uncached_path_does(
    values: list[Any],
) -> None:
    shapes = warm()
    spec = base(values)
    assert cached(shapes, spec) == uncached(spec)
    as_object = WorkflowSpec.from_dict(spec)
    assert cached(shapes, as_object) == uncached(as_object)
    assert len(shapes._shapes) == 2  # whatever the inputs: no shape of its own


def test_same_shape_other_inputs_is_a_hit_with_its_own_digest_and_hash() -> None:
    shapes = warm()
    first, second = base([{"n": 2}, None, "x"]), base([[1, 2], {"q": "r"}, {"z": 0.5}])
    one, two = cached(shapes, first), cached(shapes, second)
    assert len(shapes._shapes) == 2
    assert one == uncached(first) and two == uncached(second)
    assert one[0] != two[0]  # the digest is each spec's own
    assert one[0] == WorkflowSpec.from_dict(first).digest()


def test_a_submit_does_not_change_the_caller_spec_or_earlier_blueprints() -> None:
    shapes = warm()
    spec = base([{"n": 5}, {"k": 6}, 7])
    kept = copy.deepcopy(spec)
    first = cached(shapes, spec)
    snapshot = list(first)
    cached(shapes, base([{"n": 8}, {"k": 9}, 10]))
    assert spec == kept and first == snapshot


def test_changing_a_submitted_spec_afterwards_changes_no_later_submit() -> None:
    shapes = Shapes()
    first = base()
    cached(shapes, first)
    first["tasks"][2]["default"].append(2)  # the caller reuses its default list
    later = base([{"n": 3}, None, None])
    assert cached(shapes, later) == uncached(later)


def variants() -> list[tuple[str, dict[str, Any]]]:
    """The base spec with one field other than an input changed, each still valid."""
    out: list[tuple[str, dict[str, Any]]] = []
    for where, key, value in [
        (None, "name", "other"),
        (None, "adjust_rounds", 2),
        (None, "timeout", 600),
        (0, "id", "a2"),
        (0, "agent", "lister2"),
        (0, "retries", 3),
        (0, "timeout", 30.0),
        (0, "timeout", None),
        (1, "needs", ["a", "a"]),
        (1, "needs", ("a",)),
        (1, "map", None),
        (2, "wait_for", "other"),
        (2, "default", [2]),
        (2, "default", {"a": 1}),
        (2, "default", None),
    ]:
        spec = base()
        target = spec if where is None else spec["tasks"][where]
        target[key] = value
        if key == "id":
            for task in spec["tasks"][1:]:
                task["needs"] = ["a2"]
            spec["tasks"][1]["map"] = "a2"
        out.append((f"{where}.{key}={value!r}", spec))
    return out


@pytest.mark.parametrize(("label", "spec"), variants(), ids=[v[0] for v in variants()])
def test_a_change_to_anything_but_inputs_misses_the_cache(label: str, spec: Any) -> None:
    shapes = warm()
    assert shape_key(spec)[0] != shape_key(base())[0]
    assert cached(shapes, spec) == uncached(spec)
    assert len(shapes._shapes) == 3
    as_object = WorkflowSpec.from_dict(spec)  # a tuple of needs, as a list in the base
    assert cached(shapes, as_object) == uncached(as_object)


@pytest.mark.parametrize(
    ("where", "key", "value"),
    [
        (None, "adjust_rounds", True),
        (None, "timeout", 0),
        (None, "name", 5),
        (None, "extra", 1),
        (0, "retries", True),
        (0, "retries", 1.0),
        (0, "timeout", float("nan")),
        (0, "agent", "no such"),
        (0, "extra", 1),
        (1, "map", "w"),
        (1, "needs", ["a", "zz"]),
        (1, "needs", "a"),
        (2, "default", {1, 2}),
        (2, "agent", "worker"),
        (0, "needs", ["w"]),  # a cycle
    ],
)
def test_an_invalid_shape_is_refused_as_uncached_after_a_valid_one(
    where: int | None, key: str, value: Any
) -> None:
    shapes = warm()
    spec = base()
    (spec if where is None else spec["tasks"][where])[key] = value
    refusal = uncached(spec)
    assert isinstance(refusal, str) and refusal.startswith("refused: ")
    assert cached(shapes, spec) == refusal
    assert cached(shapes, spec) == refusal  # and again, nothing was cached for it


def test_an_agent_no_longer_known_is_refused_from_a_cached_shape() -> None:
    known = {"lister", "worker"}
    shapes = warm(known)
    known.discard("worker")
    spec = base([{"n": 3}, None, None])
    assert cached(shapes, spec, known) == uncached(spec, known)
    assert "unknown agent 'worker'" in cached(shapes, spec, known)


def test_an_unpicklable_or_unusual_spec_is_checked_in_full_every_time() -> None:
    shapes = Shapes()
    spec = base()
    spec["tasks"][2]["default"] = lambda: None  # does not pickle (and is not JSON)
    assert shape_key(spec)[0] is None
    assert cached(shapes, spec) == uncached(spec)
    task = TaskSpec(id="a", agent="lister", input={"n": 1})
    assert shape_key({"tasks": (task,)})[0] is None  # only plain dicts and lists key
    assert cached(shapes, WorkflowSpec(tasks=(task,))) == uncached(WorkflowSpec(tasks=(task,)))
    assert len(shapes._shapes) == 1  # the WorkflowSpec object


def test_the_cache_keeps_at_most_its_size_least_recently_used_out_first() -> None:
    shapes = Shapes(size=3)
    specs = [{"tasks": [{"id": f"t{i}", "agent": "x", "input": i}]} for i in range(4)]
    for spec in specs[:3]:
        cached(shapes, spec)
    cached(shapes, specs[0])  # t0 is used again: t1 is now the least recent
    cached(shapes, specs[3])
    assert [shape_key(s)[0] in shapes._shapes for s in specs] == [True, False, True, True]


def test_the_same_spec_object_again_is_laid_out_once_unless_its_inputs_changed() -> None:
    shapes = Shapes()
    spec = WorkflowSpec.from_dict(base([{"n": 1}, None, None]))
    first = shapes.blueprint(spec, SETTINGS, None)
    assert shapes.blueprint(spec, SETTINGS, None) is first  # nothing to check again
    spec.tasks[0].input["n"] = 2  # the caller changed an input in place
    again = shapes.blueprint(spec, SETTINGS, None)
    assert again is not first and again.args == uncached(spec)
    assert cached(shapes, spec, {"nobody"}) == uncached(spec, {"nobody"})  # agents re-checked
