"""A task's start is recorded when it happens: the workflow hash shows it running, with its
start time and consumer, and ``task_started`` is in the events and the workflow's history
while the agent still runs, once, in the order things happened.  A task that ends before its
worker's next flush has its start recorded with its completion, by ``sp_resolve`` (run by the
worker itself, or by the resolver for a worker that reports to it)."""

from __future__ import annotations

import asyncio

import pytest
from redis.asyncio import Redis

from streamproc import Client, ClientSettings, Keyspace
from streamproc.engine.completions import Completions
from streamproc.engine.outbox import Outbox
from streamproc.ops.progress import print_events
from streamproc.store import calls, codec
from streamproc.store.fields import parse_state
from streamproc.store.folded import workflow_hash
from streamproc.store.state import TaskState
from tests.conftest import Engine, eventually


async def raw_task(redis: Redis, keyspace: Keyspace, workflow_id: str, task: str) -> TaskState:
    """The task as the workflow hash holds it (no lookup of pending entries)."""
    raw = await workflow_hash(redis, keyspace, workflow_id)
    return next(t for t in parse_state(workflow_id, raw).tasks if t.id == task)


async def kinds(redis: Redis, stream: str, workflow_id: str) -> list[str]:
    return [
        f[b"kind"].decode()
        for _, f in await redis.xrange(stream)
        if f[b"wf"] == workflow_id.encode()
    ]


async def record(redis: Redis, keyspace: Keyspace, starts: list[calls.Start]) -> int:
    """What a worker's flush does with the starts it holds: one ``sp_started`` call."""
    return int(await calls.STARTED(redis, calls.started_arguments(keyspace, 0, starts)))


async def test_a_running_task_is_shown_running_with_its_start_event_while_it_still_runs(
    engine: Engine, client: Client, redis: Redis, keyspace: Keyspace
) -> None:
    workflow_id = await client.submit({"tasks": [{"id": "slow", "agent": "gate"}]})

    async def started() -> TaskState | None:
        task = await raw_task(redis, keyspace, workflow_id, "slow")
        return task if task.state == "running" else None

    running = await eventually(started)
    assert running.began_ms is not None and running.consumer and running.ended_ms is None
    events = await eventually(lambda: kinds(redis, keyspace.events(0), workflow_id))
    assert events == ["submitted", "task_started"]
    history = await client.history(workflow_id)
    assert [e["kind"] for e in history] == ["submitted", "task_started"]
    assert history[1]["by"] == running.consumer and history[1]["at"] == str(running.began_ms)

    await redis.rpush(f"open:{workflow_id}:slow", 1)
    final = await client.wait(workflow_id, timeout=20)
    assert final.status == "completed"
    assert (final.tasks[0].began_ms, final.tasks[0].consumer) == (
        running.began_ms,
        running.consumer,
    )
    assert [e["kind"] for e in await client.history(workflow_id)] == [
        "submitted",
        "task_started",
        "task_done",
        "completed",
    ]


async def test_a_duplicate_superseded_or_late_start_changes_nothing(
    resolver_only: Engine, redis_url: str, redis: Redis, keyspace: Keyspace
) -> None:
    """The test plays the worker of agent ``manual``, which no worker serves."""
    async with Client(redis_url, ClientSettings(keyspace=keyspace)) as client:
        workflow_id = await client.submit({"tasks": [{"id": "a", "agent": "manual"}]})
        entry = (await raw_task(redis, keyspace, workflow_id, "a")).entry

        def start(attempt: int, at: int, by: str, source: str = entry) -> calls.Start:
            return calls.Start(workflow_id, "a", attempt, source, at, by)

        stale = [start(2, 5, "zombie"), start(1, 6, "lost", "1-1")]  # no such attempt, entry
        assert await record(redis, keyspace, stale) == 0
        assert (await raw_task(redis, keyspace, workflow_id, "a")).state == "queued"
        assert await record(redis, keyspace, [start(1, 10, "w1")]) == 1
        assert await record(redis, keyspace, [start(1, 20, "w2")]) == 0  # duplicate
        task = await raw_task(redis, keyspace, workflow_id, "a")
        assert (task.state, task.began_ms, task.consumer) == ("running", 10, "w1")

        await redis.xadd(
            keyspace.done(0),
            {"v": "1", "kind": "ok", "wf": workflow_id, "task": "a", "agent": "manual",
             "att": 1, "out": b'"A"', "t0": 10, "t1": 30, "by": "w1", "src": entry},
        )  # fmt: skip
        final = await client.wait(workflow_id, timeout=20)
        assert await record(redis, keyspace, [start(1, 40, "w1")]) == 0  # late
        task = await raw_task(redis, keyspace, workflow_id, "a")
        assert (final.status, task.state, task.began_ms, task.ended_ms) == (
            "completed",
            "done",
            10,
            30,
        )
        assert [e["kind"] for e in await client.history(workflow_id)] == [
            "submitted",
            "task_started",
            "task_done",
            "completed",
        ]


async def test_a_start_flushed_with_its_own_report_is_recorded_by_the_resolver(
    redis_url: str, redis: Redis, keyspace: Keyspace, capsys: pytest.CaptureFixture[str]
) -> None:
    """A task quicker than a round trip: its start and its report reach the outbox before one
    flush, which sends the report alone (no ``sp_started``); the resolver records the start
    from the completion.  A start flushed without its report is still sent at once."""
    async with Client(redis_url, ClientSettings(keyspace=keyspace)) as client:
        quick, slow = [
            await client.submit({"tasks": [{"id": "a", "agent": "manual"}]}) for _ in range(2)
        ]
        stream = keyspace.tasks(0, "manual")
        await redis.xgroup_create(stream, "manual", id="0")
        read = await redis.xreadgroup("manual", "w1", {stream: ">"}, count=2)
        events = {
            event.workflow: event
            for event in (codec.decode_task(i, f, "manual") for i, f in read[0][1])
        }

        def start(workflow_id: str, at: int) -> calls.Start:
            event = events[workflow_id]
            return calls.Start(workflow_id, "a", 1, event.entry_id, at, "w1")

        def report(workflow_id: str, began: int, ended: int) -> None:
            completion = codec.completion_of(events[workflow_id], b"ok", b'"A"', began, ended, "w1")
            outbox.finished(0, stream, completion)

        completions = Completions(redis, keyspace, 1.0, 60.0)
        outbox = Outbox(redis, keyspace, completions, applying=False)  # the resolver applies
        flushing = asyncio.create_task(outbox.flush_loop())
        outbox.started(0, stream, start(slow, 5))
        await outbox.flushed()
        assert (await raw_task(redis, keyspace, slow, "a")).state == "running"

        outbox.started(0, stream, start(quick, 10))
        report(quick, 10, 12)
        report(slow, 5, 14)
        outbox.close()
        await flushing
        assert [(await raw_task(redis, keyspace, wf, "a")).state for wf in (quick, slow)] == [
            "queued",  # no start was sent for it
            "running",
        ]
        assert await redis.xlen(keyspace.done(0)) == 2
        resolver = Engine(redis_url, keyspace)
        resolver.start_resolver()
        try:
            final = await client.wait(quick, timeout=20)
        finally:
            await resolver.stop()
        task = final.tasks[0]
        assert (final.status, task.began_ms, task.ended_ms, task.consumer) == (
            "completed", 10, 12, "w1",
        )  # fmt: skip
        history = await client.history(quick)
        assert [e["kind"] for e in history] == ["submitted", "task_done", "completed"]
        assert (history[1]["began"], history[1]["at"], history[1]["by"]) == ("10", "12", "w1")
        capsys.readouterr()
        await print_events(client, quick)  # the progress view shows the start all the same
        printed = [line.split()[1] for line in capsys.readouterr().err.splitlines()]
        assert printed == ["submitted", "task_started", "task_done", "completed"]
        assert [e["kind"] for e in await client.history(slow)].count("task_started") == 1
