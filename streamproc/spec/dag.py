"""Dependency graph checks: dangling needs, cycles (named), and a topological order.

Everything is iterative, so a 10,000-deep chain costs no recursion.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping, Sequence

from streamproc.errors import SpecError


def topological_order(needs: Mapping[str, Sequence[str]]) -> list[str]:
    """Return task ids so that each comes after everything it needs, or raise :class:`SpecError`.

    ``needs`` maps each task id to the ids it depends on, in spec order.
    """
    dependents: dict[str, list[str]] = {task: [] for task in needs}
    unmet = {task: len(set(deps)) for task, deps in needs.items()}
    for task, deps in needs.items():
        for dep in dict.fromkeys(deps):
            if dep == task:
                raise SpecError(f"task {task!r} needs itself", task=task)
            if dep not in dependents:
                raise SpecError(f"task {task!r} needs unknown task {dep!r}", task=task)
            dependents[dep].append(task)
    ready = deque(task for task, count in unmet.items() if count == 0)
    order: list[str] = []
    while ready:
        task = ready.popleft()
        order.append(task)
        for child in dependents[task]:
            unmet[child] -= 1
            if unmet[child] == 0:
                ready.append(child)
    if len(order) < len(needs):
        cycle = find_cycle(needs, {task for task, count in unmet.items() if count > 0})
        raise SpecError("cycle: " + " -> ".join(cycle), task=cycle[0])
    return order


def find_cycle(needs: Mapping[str, Sequence[str]], stuck: set[str]) -> list[str]:
    """Walk needs among ``stuck`` tasks (each has a stuck need) until a task repeats."""
    task = min(stuck)
    seen: dict[str, int] = {}
    path: list[str] = []
    while task not in seen:
        seen[task] = len(path)
        path.append(task)
        task = next(dep for dep in needs[task] if dep in stuck)
    # path runs along "needs" edges; reverse it so the cycle reads in execution order.
    cycle = path[seen[task] :]
    cycle.reverse()
    return [*cycle, cycle[0]]
