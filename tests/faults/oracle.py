"""The fault matrix's oracle: after a run, replay what Redis kept and check the invariants.

It reads each workflow's state hash and history stream (``Client.get``/``Client.history``),
the dead-letter streams and the test effect ledger (``ledger:<wf>``, one ``task attempt pid``
per execution, written by the test agents outside the engine's keys), never the logs:

- I1 no loss: every submitted workflow ended (completed, failed or cancelled) by the deadline.
- I2 exactly-once effect: at most one accepted completion (``task_done``) per (wf, task).
  Duplicate *executions* (ledger entries past the first) are allowed and only counted, as
  are zombie writes accepted: a ``task_done`` whose attempt is not the task's last attempt.
- I3 dead letters complete: a task's dead letter names wf, task, att, deliveries, reason and
  error or entry; a parked raw entry (no workflow readable) names at least reason and entry.
- I5 order: in a workflow's history no task starts or ends before every one of its needs'
  ``task_done``; with ``same_clock``, its start time is also not before their end times.
- I6 history archived whole: an ended workflow's history has each entry once, in id order, and
  its archive (``past``, written by the call that ended it) holds all of it up to its final
  event at least: never a part of what one call wrote.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import cast

from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError

from streamproc import Client, Keyspace
from streamproc.ops.history import parse
from streamproc.store.codec import Entry, entry_order
from streamproc.store.fields import WorkflowField
from streamproc.store.folded import hmget_many
from streamproc.store.state import TERMINAL, WorkflowState

TASK_DEAD_FIELDS = (b"wf", b"task", b"att", b"deliveries", b"reason")


@dataclass
class Verdict:
    """What the oracle found; ``assert_invariants`` fails on any violation."""

    n: int
    lost: list[str] = field(default_factory=list)
    statuses: Counter[str] = field(default_factory=Counter)
    dup_effects: list[tuple[str, str]] = field(default_factory=list)
    dup_exec: int = 0
    zombie_accepted: list[tuple[str, str, str]] = field(default_factory=list)
    dlq_total: int = 0
    dlq_incomplete: list[dict[bytes, bytes]] = field(default_factory=list)
    order_violations: list[str] = field(default_factory=list)
    archive_violations: list[str] = field(default_factory=list)
    states: dict[str, WorkflowState] = field(default_factory=dict)

    @property
    def dlq_complete(self) -> int:
        return self.dlq_total - len(self.dlq_incomplete)

    def assert_invariants(self) -> None:
        assert not self.lost, f"I1: {len(self.lost)}/{self.n} workflows never ended: {self.lost}"
        assert not self.dup_effects, f"I2: completions accepted twice: {self.dup_effects}"
        assert not self.zombie_accepted, f"I2: stale attempts accepted: {self.zombie_accepted}"
        assert not self.dlq_incomplete, f"I3: incomplete dead letters: {self.dlq_incomplete}"
        assert not self.order_violations, f"I5: {self.order_violations}"
        assert not self.archive_violations, f"I6: {self.archive_violations}"


async def wait_ended(client: Client, ids: Iterable[str], timeout: float) -> dict[str, str]:
    """Poll until every workflow ended or ``timeout`` passed; each id's last status."""
    deadline = time.monotonic() + timeout
    status: dict[str, str] = {}
    pending = list(ids)
    while True:
        asked = [(workflow_id, [WorkflowField.STATUS]) for workflow_id in pending]
        try:
            rows = await hmget_many(client.redis, client.keyspace, asked) if asked else []
            replies = [status for [status] in rows]
        except RedisConnectionError:  # Redis restarting (B1, C5): ask again
            replies = [b"unknown"] * len(pending)
        for workflow_id, reply in zip(pending, replies, strict=True):
            status[workflow_id] = reply.decode() if reply else "missing"
        pending = [w for w in pending if status[w] not in TERMINAL]
        if not pending or time.monotonic() > deadline:
            return status
        await asyncio.sleep(0.1)


async def check(
    client: Client,
    ledger: Redis,
    ids: list[str],
    timeout: float = 30.0,
    agents: Iterable[str] = ("ledger",),
    same_clock: bool = True,
) -> Verdict:
    """Wait up to ``timeout`` for every workflow in ``ids`` to end, then check I1-I3 and I5.
    ``ledger`` reads the effect ledger (the test agents' STREAMPROC_TEST_LEDGER_URL)."""
    status = await wait_ended(client, ids, timeout)
    verdict = Verdict(n=len(ids))
    verdict.lost = [w for w in ids if status[w] not in TERMINAL]
    verdict.statuses = Counter(status.values())
    for workflow_id in ids:
        if status[workflow_id] == "missing":
            continue
        state = await client.get(workflow_id)
        verdict.states[workflow_id] = state
        history = await client.history(workflow_id)
        _check_effects(verdict, state, history)
        _check_order(verdict, state, history, same_clock)
        await _check_archive(verdict, client, state, history)
        runs = await ledger.lrange(f"ledger:{workflow_id}", 0, -1)
        executions = Counter(entry.split()[0] for entry in runs)
        verdict.dup_exec += sum(count - 1 for count in executions.values())
    await _check_dead_letters(verdict, client.redis, client.keyspace, agents)
    return verdict


def _check_effects(verdict: Verdict, state: WorkflowState, history: list[dict[str, str]]) -> None:
    attempts = {t.id: str(t.attempt) for t in state.tasks}
    done = Counter(e["task"] for e in history if e["kind"] == "task_done")
    verdict.dup_effects += [(state.id, task) for task, count in done.items() if count > 1]
    verdict.zombie_accepted += [
        (state.id, e["task"], e["att"])
        for e in history
        if e["kind"] == "task_done" and e["att"] != attempts[e["task"]]
    ]


def _began(event: dict[str, str]) -> str | None:
    """When the task began, as its task_started, or a task_done carrying its start, says."""
    if event["kind"] == "task_started":
        return event["at"]
    return event.get("began")


def _check_order(
    verdict: Verdict, state: WorkflowState, history: list[dict[str, str]], same_clock: bool
) -> None:
    needs = {t.id: t.needs for t in state.tasks}
    ended: dict[str, int] = {}
    for event in history:
        task, kind = event.get("task"), event["kind"]
        if kind not in ("task_started", "task_done") or task is None:
            continue
        for need in needs[task]:
            if need not in ended:
                verdict.order_violations.append(f"{state.id}: {kind} {task} before {need} done")
            elif same_clock and int(_began(event) or ended[need]) < ended[need]:
                verdict.order_violations.append(f"{state.id}: {task} began before {need} ended")
        if kind == "task_done":
            ended[task] = int(event["at"])


async def _check_archive(
    verdict: Verdict, client: Client, state: WorkflowState, history: list[dict[str, str]]
) -> None:
    ids = [entry_order(e["id"]) for e in history]
    if ids != sorted(set(ids)):
        verdict.archive_violations.append(f"{state.id}: history out of order or repeated")
    if state.status not in TERMINAL:
        return
    kept = await client.redis.get(client.keyspace.past(state.id))
    archived = [i.decode() for i, _ in parse(state.id, kept)]
    final = max((i for i, e in enumerate(history) if e["kind"] in TERMINAL), default=len(history))
    if archived != [e["id"] for e in history[: len(archived)]] or len(archived) <= final:
        verdict.archive_violations.append(f"{state.id}: archive {archived} of {history}")


async def _check_dead_letters(
    verdict: Verdict, redis: Redis, keyspace: Keyspace, agents: Iterable[str]
) -> None:
    for agent in agents:
        for shard in keyspace.all_shards():
            entries = cast(list[Entry], await redis.xrange(keyspace.dead(shard, agent)))
            for _, fields in entries:
                verdict.dlq_total += 1
                if not dead_letter_complete(fields):
                    verdict.dlq_incomplete.append(fields)


def dead_letter_complete(fields: dict[bytes, bytes]) -> bool:
    if b"wf" in fields:
        has_all = all(fields.get(name) for name in TASK_DEAD_FIELDS)
        return has_all and bool(fields.get(b"error") or fields.get(b"entry"))
    return bool(fields.get(b"reason")) and bool(fields.get(b"entry"))
