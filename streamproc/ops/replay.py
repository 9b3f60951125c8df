"""Running a past workflow again, for debugging, and comparing two runs task by task.

A recorded run is rebuilt from its workflow hash (spec, inputs, outcomes, and the tasks each
spawner added).  Replaying it ``from recorded`` routes every task to the ``replay`` agent,
which returns what the record holds for it (a spawner spawns again what it spawned, and a
mapped task maps its recorded items again): no agent or API is called, so the final state
must equal the original and any difference is an engine bug.  ``from_task`` replays the
recorded results outside that task's downstream and runs the task, everything downstream of
it and every task the record holds no result for live; ``live`` runs every task live (its
spawners spawn anew).  The new workflow is an ordinary one, so ``show`` and
``diff`` work on it.

A failed or cancelled run ended at a moment: some tasks were done, a failure or a cancel came,
tasks not yet published were skipped, and tasks in flight finished after it.  From the record
the replay is staged to that moment before it ends the same way (:func:`end_like`): a task
recorded ``done`` returns its result at once; one recorded ``failed`` waits for the end and
then fails with its recorded error; one recorded otherwise (skipped, or never finished) whose
needs were all done waits as a delayed retry, which the end turns into ``skipped``; the rest
are never published, since one of their needs never finishes before the end.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

import orjson

from streamproc.client import Client
from streamproc.errors import (
    Conflict,
    DeadLetterNotFound,
    RecordedFailure,
    RetryLater,
    SpecError,
    StreamprocError,
)
from streamproc.ops import deadletters
from streamproc.registry import REPLAY_AGENT, Spawn, Task
from streamproc.spec.model import TaskSpec, WorkflowSpec
from streamproc.store import fields, folded
from streamproc.store.state import TaskState, TaskStatus, WorkflowState, WorkflowStatus

HOLD = 30 * 24 * 3600.0  # a held task's wait: far longer than any replay takes to end
STAGE_TIMEOUT = 300.0
POLL = 0.05


@dataclass(frozen=True)
class Recording:
    """A finished run: its state, the spec it was submitted with, and the tasks each of its
    spawners added (as the spawner asked for them), so a replay can grow the same graph."""

    state: WorkflowState
    spec: WorkflowSpec
    spawned: dict[str, tuple[TaskSpec, ...]]


class RecordedAgent:
    """The ``replay`` agent: what ``recording`` holds for each task, by task id (a spawner
    spawns again what it spawned, each task replayed unless in ``live``).  ``ended`` is set
    once the replay has reached the moment the recorded run ended."""

    def __init__(self, recording: Recording, live: set[str] | None = None) -> None:
        self.ended = asyncio.Event()
        self.tasks = {t.id: t for t in recording.state.tasks}
        self.spawned = recording.spawned
        self.live = live or set()

    async def run(self, task: Task) -> Any:
        recorded = self.tasks[task.id]
        if recorded.state == "done":
            if task.id in self.spawned:
                again = [replayed(t, self.live) for t in self.spawned[task.id]]
                return Spawn(again, recorded.result)
            return recorded.result
        if recorded.state == "failed":
            await self.ended.wait()
            raise RecordedFailure(recorded.error)
        raise RetryLater(HOLD, recorded.error, give_up_after=2 * HOLD)


def replayed(task: TaskSpec, live: set[str]) -> TaskSpec:
    """``task`` as a replay runs it: as it was when live, else by the ``replay`` agent with no
    retries (the record already holds the last attempt)."""
    if task.id in live:
        return task
    return TaskSpec(task.id, REPLAY_AGENT, None, task.needs, 0, None, task.map)


async def load_recorded(client: Client, workflow_id: str) -> Recording:
    """A finished run's state, the spec it was submitted with and what it spawned (from its
    workflow hash)."""
    state = await client.get(workflow_id)
    if state.status == WorkflowStatus.RUNNING:
        raise Conflict(f"workflow {workflow_id} is still running")
    raw = await folded.workflow_hash(client.redis, client.keyspace, workflow_id)
    spawner_of = {t.id: t.spawner for t in state.tasks}
    maps = {t.id for t in state.tasks if t.map}
    declared: list[TaskSpec] = []
    spawned: dict[str, list[TaskSpec]] = {}
    for t in state.tasks:
        if t.spawner in maps or t.state == TaskStatus.SUPERSEDED:
            continue  # an instance: its map makes it again; or taken back by an adjustment
        given = fields.given(raw, t.id)
        task = TaskSpec(
            id=t.id,
            agent=t.agent,
            input=orjson.loads(given.input),
            needs=_asked_needs(t, spawner_of),
            retries=given.retries,
            timeout=given.timeout,
            map=t.map or None,
            wait_for=None if t.agent else t.wait_for,  # a declared wait runs no agent
            default=None if given.default is None else orjson.loads(given.default),
        )
        if t.spawner:
            spawned.setdefault(t.spawner, []).append(task)
        else:
            declared.append(task)
    rounds = fields.adjust_rounds(raw)
    spec = WorkflowSpec(tasks=tuple(declared), name=state.name, adjust_rounds=rounds)
    return Recording(state, spec, {by: tuple(tasks) for by, tasks in spawned.items()})


def _asked_needs(task: TaskState, spawner_of: dict[str, str]) -> tuple[str, ...]:
    """The needs ``task`` was declared or spawned with, without those the engine added: its
    spawner, its map's instances, and the tasks spawned by a need (fan-in), but for those of
    its own spawn."""
    needs = set(task.needs)

    def asked(need: str) -> bool:
        by = spawner_of.get(need, "")
        added = by == task.id or (by in needs and by != task.spawner)
        return need != task.spawner and not added

    return tuple(need for need in task.needs if asked(need))


def downstream(recorded: WorkflowState, root: str) -> set[str]:
    """``root`` and every task that depended on it in the recorded run, directly or not
    (spawned tasks and map instances included)."""
    children: dict[str, list[str]] = {t.id: [] for t in recorded.tasks}
    for t in recorded.tasks:
        for need in t.needs:
            children[need].append(t.id)
    if root not in children:
        raise SpecError(f"no task {root!r} in the recorded workflow", task=root)
    seen, todo = {root}, [root]
    while todo:
        for child in children[todo.pop()]:
            if child not in seen:
                seen.add(child)
                todo.append(child)
    return seen


def live_tasks(recorded: WorkflowState, from_task: str) -> set[str]:
    """What ``from_task`` runs live: the task, its downstream, and every task without a
    recorded result (failed, skipped or unfinished), as there is nothing of it to reuse."""
    unrecorded = {t.id for t in recorded.tasks if t.state != "done"}
    return downstream(recorded, from_task) | unrecorded


def replay_spec(recorded: WorkflowState, spec: WorkflowSpec, live: set[str]) -> WorkflowSpec:
    """``spec`` with every task outside ``live`` served by the ``replay`` agent."""
    tasks = tuple(replayed(t, live) for t in spec.tasks)
    return WorkflowSpec(tasks=tasks, name=f"replay of {recorded.id}")


def held_slots(recorded: WorkflowState) -> int:
    """How many worker slots a replay from the record keeps busy until it ends: its failed
    tasks wait for the end inside the agent."""
    return sum(t.state == "failed" for t in recorded.tasks)


async def end_like(
    client: Client, replay_id: str, recorded: WorkflowState, agent: RecordedAgent
) -> None:
    """End a replay from the record as the recorded run ended: once every recorded-done task
    is done and every held one delayed, cancel it with the recorded reason (a cancelled run,
    or a failed one with no failed task to fail it), and let the failed tasks fail."""
    if recorded.status != "completed":
        await _until_staged(client, replay_id, recorded)
        if recorded.status == "cancelled" or not held_slots(recorded):
            await client.cancel(replay_id, recorded.reason)
    agent.ended.set()


async def drop_dead_letters(client: Client, replay_id: str) -> int:
    """Delete the dead letters a replay from the record left under the ``replay`` agent, once
    it has ended; how many.  They repeat the recorded failures, and requeuing one would
    resume the replay with nobody left to serve ``replay``."""
    dropped = 0
    for dead in await deadletters.list_dead(client.redis, client.keyspace, REPLAY_AGENT):
        if dead.workflow == replay_id:
            try:
                await deadletters.purge_one(
                    client.redis, client.keyspace, REPLAY_AGENT, dead.entry_id
                )
            except DeadLetterNotFound:  # someone purged it first
                continue
            dropped += 1
    return dropped


async def _until_staged(client: Client, replay_id: str, recorded: WorkflowState) -> None:
    """Poll the replay's state: following its events could start after the last of them,
    and a staged replay records no more until it is ended."""
    try:
        async with asyncio.timeout(STAGE_TIMEOUT):
            while True:
                if staged(recorded, await client.get(replay_id)):
                    return
                await asyncio.sleep(POLL)
    except TimeoutError:
        raise StreamprocError(
            f"replay {replay_id} did not reach the end of {recorded.id} in {STAGE_TIMEOUT:g}s"
        ) from None


def staged(recorded: WorkflowState, replay: WorkflowState) -> bool:
    """Whether ``replay`` stands where ``recorded`` stood when it ended (or ended itself)."""
    if replay.status != "running":
        return True
    done = {t.id for t in recorded.tasks if t.state == "done"}
    now = {t.id: t.state for t in replay.tasks}
    for t in recorded.tasks:
        if t.state == "done":
            wanted = "done"
        elif t.state != "failed" and done.issuperset(t.needs):
            wanted = "delayed"
        else:
            continue
        if now.get(t.id) != wanted:  # a spawned task may not be there yet
            return False
    return True


@dataclass(frozen=True)
class TaskDiff:
    task: str
    field: str
    before: Any
    after: Any


def diff(before: WorkflowState, after: WorkflowState) -> list[TaskDiff]:
    """What differs between two runs: status, then per task its state and result (a task
    superseded in one run and absent from the other is no difference)."""
    out = []
    if before.status != after.status:
        out.append(TaskDiff("", "status", before.status, after.status))
    theirs = {t.id: t for t in after.tasks}
    for mine in before.tasks:
        other = theirs.pop(mine.id, None)
        if other is None:
            if mine.state != TaskStatus.SUPERSEDED:
                out.append(TaskDiff(mine.id, "present", True, False))
            continue
        out += _task_diff(mine, other)
    gone = TaskStatus.SUPERSEDED
    out += [TaskDiff(task, "present", False, True) for task, t in theirs.items() if t.state != gone]
    return out


def _task_diff(mine: TaskState, other: TaskState) -> list[TaskDiff]:
    return [
        TaskDiff(mine.id, name, getattr(mine, name), getattr(other, name))
        for name in ("state", "result", "error")
        if getattr(mine, name) != getattr(other, name)
    ]
