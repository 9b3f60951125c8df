"""Workflow deadlines: a workflow given a ``timeout`` that is still running past it fails,
with a reason naming what it was waiting for (and whether any worker serves that agent), so
a workflow nobody serves ends instead of hanging invisibly."""

from __future__ import annotations

from typing import cast

from redis.asyncio import Redis

from streamproc import metrics
from streamproc.store import admin, folded
from streamproc.store.fields import WorkflowField, parse_state
from streamproc.store.keys import Keyspace, workflow_of
from streamproc.store.state import TaskStatus
from streamproc.transport.groups import served_agents

DEADLINE_BATCH = 100
NAMED_TASKS = 3  # tasks a reason names; the rest are counted
# Unfinished states, those that hold a run up first: a task waiting for its needs only
# waits for one of these.
UNFINISHED = (
    TaskStatus.RUNNING,
    TaskStatus.QUEUED,
    TaskStatus.DELAYED,
    TaskStatus.AWAITING,
    TaskStatus.WAITING,
)


async def fail_overdue(redis: Redis, keyspace: Keyspace, shard: int, now_ms: int) -> None:
    """Fail the shard's workflows whose deadline is at or before ``now_ms`` (Redis clock).
    The reasons are read first and may be a moment stale; ``sp_expire`` decides atomically
    whether each workflow still runs past its deadline."""
    keys = cast(
        list[bytes],
        await redis.zrangebyscore(keyspace.deadlines(shard), "-inf", now_ms, 0, DEADLINE_BATCH),
    )
    if not keys:
        return
    overdue = [(workflow_of(key), await overdue_reason(redis, keyspace, key)) for key in keys]
    failed = await admin.fail_overdue(redis, keyspace, shard, overdue)
    metrics.workflows_ended("failed", failed)


async def overdue_reason(redis: Redis, keyspace: Keyspace, key: bytes) -> str:
    """``deadline of 30s passed: task t (agent nope) waiting, no consumer serves it``: the
    unfinished tasks, those that hold the run up first (running, queued, delayed, awaiting a
    signal), then those waiting for their needs."""
    raw = await folded.workflow_hash(redis, keyspace, workflow_of(key))
    if not raw:
        return "deadline passed"
    state = parse_state(workflow_of(key), raw)
    timeout_ms = int(raw.get(WorkflowField.TIMEOUT.encode(), b"0"))
    left = sorted(
        (t for t in state.tasks if t.state in UNFINISHED), key=lambda t: UNFINISHED.index(t.state)
    )
    queued = {t.agent for t in left if t.state == TaskStatus.QUEUED}
    served = await served_agents(redis, keyspace, sorted(queued))
    parts = []
    for task in left[:NAMED_TASKS]:
        where = f"task {task.id} (agent {task.agent})" if task.agent else f"task {task.id}"
        if task.state == TaskStatus.AWAITING:
            parts.append(f"task {task.id} awaiting signal '{task.wait_for}'")
        elif task.state == TaskStatus.WAITING:
            parts.append(f"{where} waiting for its needs")
        elif task.state != TaskStatus.QUEUED:
            parts.append(f"{where} {task.state}")
        elif task.agent in served:
            parts.append(f"{where} waiting")
        else:
            parts.append(f"{where} waiting, no consumer serves it")
    if len(left) > NAMED_TASKS:
        parts.append(f"{len(left) - NAMED_TASKS} more tasks unfinished")
    return f"deadline of {timeout_ms / 1000:g}s passed: " + ("; ".join(parts) or "tasks running")
