"""Cancelling a workflow: tasks not yet started are skipped, running ones finish but nothing
after them runs, and whoever waits on the workflow learns it ended."""

from __future__ import annotations

import asyncio
from pathlib import Path

from redis.asyncio import Redis

from streamproc import Client, Keyspace
from streamproc.store.fields import TaskField
from tests.cli_runner import assert_one_line_error, at, run
from tests.conftest import Engine, eventually

GATED_SPEC = {
    "tasks": [
        {"id": "slow", "agent": "gate"},
        {"id": "next", "agent": "echo", "needs": ["slow"]},
        {"id": "last", "agent": "echo", "needs": ["next"]},
    ]
}


async def started(redis: Redis, keyspace: Keyspace, workflow_id: str) -> bool:
    """The gate task has begun, and its start is recorded (its worker writes it with its next
    flush, after the agent records itself in the ledger)."""
    state = await redis.hget(keyspace.workflow(workflow_id), TaskField.STATE.of("slow"))
    return state == b"running"


async def test_cancel_skips_waiting_tasks_and_a_late_completion_publishes_nothing_downstream(
    engine: Engine, client: Client, redis: Redis, keyspace: Keyspace
) -> None:
    workflow_id = await client.submit(GATED_SPEC)
    await eventually(lambda: started(redis, keyspace, workflow_id))
    assert await client.cancel(workflow_id, reason="operator said so") is True
    state = await client.get(workflow_id)
    assert (state.status, state.reason) == ("cancelled", "operator said so")
    assert state.ended_ms is not None and await redis.pttl(keyspace.past(workflow_id)) > 0
    assert [t.state for t in state.tasks] == ["running", "skipped", "skipped"]

    await redis.rpush(f"open:{workflow_id}:slow", 1)

    async def slow_recorded() -> bool:
        return (await client.get(workflow_id)).tasks[0].state == "done"

    await eventually(slow_recorded)
    state = await client.get(workflow_id)
    assert state.status == "cancelled"
    assert [t.state for t in state.tasks] == ["done", "skipped", "skipped"]
    assert await redis.xlen(keyspace.tasks(0, "echo")) == 0  # nothing after it was published
    kinds = [
        f[b"kind"]
        for _, f in await redis.xrange(keyspace.events(0))
        if f[b"wf"] == workflow_id.encode()
    ]
    in_order = ["submitted", "task_started", "cancelled", "task_done"]  # as things happened
    assert kinds == [kind.encode() for kind in in_order]
    assert [e["kind"] for e in await client.history(workflow_id)] == in_order
    assert await client.cancel(workflow_id) is False


async def test_wait_returns_the_cancelled_state(resolver_only: Engine, client: Client) -> None:
    workflow_id = await client.submit({"tasks": [{"id": "a", "agent": "echo"}]})
    waiter = asyncio.create_task(client.wait(workflow_id, timeout=20))
    assert await client.cancel(workflow_id)
    state = await waiter
    assert (state.status, state.reason) == ("cancelled", "cancelled")
    assert state.tasks[0].state == "queued"  # published before the cancel: left to finish


async def test_submit_wait_exits_non_zero_when_the_workflow_is_cancelled(
    engine: Engine, redis: Redis, keyspace: Keyspace, redis_url: str, tmp_path: Path
) -> None:
    spec = tmp_path / "gated.yaml"
    spec.write_text(
        "tasks:\n  - {id: slow, agent: gate}\n  - {id: next, agent: echo, needs: [slow]}\n"
    )
    submitting = asyncio.create_task(
        run("submit", str(spec), "--id", "to-cancel", "--wait", *at(redis_url, keyspace))
    )
    await eventually(lambda: started(redis, keyspace, "to-cancel"))
    cancelled = await run("cancel", "to-cancel", *at(redis_url, keyspace))
    assert cancelled.code == 0 and cancelled.out == "workflow to-cancel: cancelled\n", cancelled
    submitted = await submitting
    assert submitted.code == 1, submitted
    assert submitted.err.splitlines()[-1] == "workflow to-cancel: cancelled"  # said once
    await redis.rpush("open:to-cancel:slow", 1)

    again = await run("cancel", "to-cancel", *at(redis_url, keyspace))
    assert_one_line_error(again, "error: workflow 'to-cancel' already cancelled")
    unknown = await run("cancel", "no-such", *at(redis_url, keyspace))
    assert_one_line_error(unknown, "error: workflow 'no-such' not found")
