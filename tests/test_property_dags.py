"""Property tests on random DAGs: validate() against a reference (graphlib), and the real
engine running random DAGs of echo tasks in dependency order."""

from __future__ import annotations

import graphlib
import itertools
from dataclasses import dataclass
from typing import Any

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from streamproc import Client, SpecError, TaskSpec, WorkflowSpec
from tests.conftest import Engine

ID_ALPHABET = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-"
task_ids = st.text(ID_ALPHABET, min_size=1, max_size=6)


@dataclass(frozen=True)
class Drawn:
    spec: WorkflowSpec
    needs: dict[str, list[str]]
    back_edges: int
    unknown_refs: int


def ancestors(needs: dict[str, list[str]], task: str) -> set[str]:
    seen: set[str] = set()
    todo = [d for d in needs[task] if d in needs]
    while todo:
        dep = todo.pop()
        if dep not in seen:
            seen.add(dep)
            todo += [d for d in needs[dep] if d in needs]
    return seen


@st.composite
def dags(draw: st.DrawFn, max_tasks: int = 12, faults: bool = True) -> Drawn:
    """A DAG over tasks 0..n-1 where task i needs only tasks before it (duplicates allowed),
    listed in a random order.  With ``faults``, maybe some injected edges: a self-dependency,
    a task needing a later one (a cycle when the later one reaches it), a task needing one of
    its descendants (always a cycle); and maybe needs of ids that no task has."""
    ids = draw(st.lists(task_ids, min_size=1, max_size=max_tasks, unique=True))
    n = len(ids)
    needs: dict[str, list[str]] = {
        task: [ids[j] for j in draw(st.lists(st.integers(0, i - 1), max_size=4))] if i else []
        for i, task in enumerate(ids)
    }
    back_edges = draw(st.sampled_from([0, 0, 1, 1, 2])) if faults else 0
    for _ in range(back_edges):
        kind = draw(st.sampled_from(["self", "later", "descendant"]))
        if kind == "self":
            task = draw(st.sampled_from(ids))
            needs[task].append(task)
        elif kind == "later" and n > 1:
            i = draw(st.integers(0, n - 2))
            needs[ids[i]].append(ids[draw(st.integers(i + 1, n - 1))])
        else:
            below = [t for t in ids if needs[t]]
            if below:
                task = draw(st.sampled_from(below))
                needs[draw(st.sampled_from(sorted(ancestors(needs, task))))].append(task)
    unknown_refs = draw(st.sampled_from([0, 0, 0, 1])) if faults else 0
    for _ in range(unknown_refs):
        task = draw(st.sampled_from(ids))
        needs[task].append(draw(task_ids.filter(lambda v: v not in needs)))
    needs = {task: draw(st.permutations(deps)) for task, deps in needs.items()}
    order = draw(st.permutations(ids))
    tasks = tuple(TaskSpec(id=t, agent="echo", input=t, needs=tuple(needs[t])) for t in order)
    return Drawn(WorkflowSpec(tasks=tasks), needs, back_edges, unknown_refs)


def reference_is_acyclic(needs: dict[str, list[str]]) -> bool:
    known = {t: [d for d in deps if d in needs] for t, deps in needs.items()}
    try:
        list(graphlib.TopologicalSorter(known).static_order())
    except graphlib.CycleError:
        return False
    return True


@settings(max_examples=400, deadline=None)
@given(dags())
def test_validate_accepts_exactly_the_acyclic_specs_with_known_needs(drawn: Drawn) -> None:
    needs = drawn.needs
    refs_known = all(d in needs for deps in needs.values() for d in deps)
    acyclic = reference_is_acyclic(needs)
    event(f"accepted={refs_known and acyclic}")
    if not drawn.back_edges and not drawn.unknown_refs:
        assert refs_known and acyclic  # the generator's own DAGs are valid
    if refs_known and acyclic:
        order = drawn.spec.validate()
        assert sorted(order) == sorted(needs)
        position = {task: i for i, task in enumerate(order)}
        for task, deps in needs.items():
            for dep in deps:
                assert position[dep] < position[task], (dep, task, order)
        return
    with pytest.raises(SpecError) as caught:
        drawn.spec.validate()
    message, named = str(caught.value), caught.value.task
    event(message.split(" ", 1)[0] if message.startswith("cycle") else message.split("'")[2])
    assert named in needs, message
    if message.startswith("cycle: "):
        assert not acyclic
        path = message.removeprefix("cycle: ").split(" -> ")
        assert len(path) >= 3 and path[0] == path[-1], message
        assert len(set(path[:-1])) == len(path) - 1, message
        for before, after in itertools.pairwise(path):
            assert before in needs[after], f"{after} does not need {before}: {message}"
        assert named in path
    elif "needs itself" in message:
        assert named in needs[named], message
    else:
        assert "needs unknown task" in message, message
        unknown = message.rsplit("'", 2)[-2]
        assert unknown not in needs and unknown in needs[named], message


@settings(max_examples=200, deadline=None)
@given(dags(faults=False))
def test_any_valid_dag_validates_whatever_order_its_tasks_are_listed_in(drawn: Drawn) -> None:
    order = drawn.spec.validate()
    position = {task: i for i, task in enumerate(order)}
    assert len(position) == len(drawn.needs)
    assert all(position[d] < position[t] for t, deps in drawn.needs.items() for d in deps)


@settings(max_examples=200, deadline=None)
@given(dags(faults=False), st.data())
def test_a_back_edge_onto_an_ancestor_is_always_named_as_a_cycle(
    drawn: Drawn, data: st.DataObject
) -> None:
    # Pick a task with a need, walk needs down to an ancestor, then make that ancestor need it.
    with_needs = [t for t, deps in drawn.needs.items() if deps]
    if not with_needs:
        return
    task = data.draw(st.sampled_from(sorted(with_needs)))
    ancestor = data.draw(st.sampled_from(sorted(set(drawn.needs[task]))))
    while drawn.needs[ancestor] and data.draw(st.booleans()):
        ancestor = data.draw(st.sampled_from(sorted(set(drawn.needs[ancestor]))))
    tasks = tuple(
        TaskSpec(id=t.id, agent=t.agent, needs=(*t.needs, task) if t.id == ancestor else t.needs)
        for t in drawn.spec.tasks
    )
    with pytest.raises(SpecError, match=r"^cycle: ") as caught:
        WorkflowSpec(tasks=tasks).validate()
    assert caught.value.task in str(caught.value)


# -- against the real engine ---------------------------------------------------------------------

json_leaves = st.none() | st.booleans() | st.integers(-(2**53), 2**53) | st.text(max_size=8)
inputs = st.recursive(
    json_leaves,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3)
    ),
    max_leaves=6,
)


@st.composite
def echo_workflows(draw: st.DrawFn) -> tuple[WorkflowSpec, dict[str, Any]]:
    drawn = draw(dags(max_tasks=12, faults=False))
    values = {task: draw(inputs) for task in drawn.needs}
    tasks = tuple(
        TaskSpec(id=t.id, agent="echo", input=values[t.id], needs=t.needs) for t in drawn.spec.tasks
    )
    return WorkflowSpec(tasks=tasks), values


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(workflow=echo_workflows())
async def test_random_dags_of_echo_tasks_run_in_dependency_order(
    engine: Engine, client: Client, workflow: tuple[WorkflowSpec, dict[str, Any]]
) -> None:
    spec, values = workflow
    event(f"{len(spec.tasks)} tasks")
    state = await client.wait(await client.submit(spec), timeout=30)
    assert state.status == "completed", state
    by_id = {t.id: t for t in state.tasks}
    assert sorted(by_id) == sorted(values)
    results = state.results
    for task in spec.tasks:
        ran = by_id[task.id]
        assert ran.state == "done" and ran.attempt == 1
        assert ran.began_ms is not None and ran.ended_ms is not None
        assert ran.began_ms <= ran.ended_ms
        needs = set(task.needs)
        assert set(ran.needs) == needs
        for dep in needs:
            ended = by_id[dep].ended_ms
            assert ended is not None and ran.began_ms >= ended, (task.id, dep)
        if needs:
            expected = {"input": values[task.id], "deps": {dep: results[dep] for dep in needs}}
        else:
            expected = values[task.id]
        assert results[task.id] == expected, task.id
