"""Failing tasks retry with backoff, then land in dead letters with their reason and history;
malformed entries are parked with a reason and never stop a consumer."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from redis.asyncio import Redis

from streamproc import Client, Keyspace
from tests.conftest import Engine, eventually, publish_by_hand, unserved_workflow


async def test_flaky_task_succeeds_on_a_later_attempt(engine: Engine, client: Client) -> None:
    spec = {"tasks": [{"id": "f", "agent": "flaky", "input": {"fail": 2}, "retries": 2}]}
    state = await client.wait(await client.submit(spec), timeout=20)
    assert state.status == "completed"
    task = state.tasks[0]
    assert task.result == {"attempt": 3} and task.failures == 2
    assert [h["attempt"] for h in task.history] == [1, 2]
    assert "flaky failure on attempt 2" in task.history[1]["error"]


async def test_task_failing_past_its_retries_fails_the_workflow_and_skips_its_dependents(
    engine: Engine, client: Client, redis: Redis, keyspace: Keyspace
) -> None:
    spec = {
        "tasks": [
            {"id": "root", "agent": "echo", "input": 1},
            {"id": "bad", "agent": "poison", "needs": ["root"], "retries": 1},
            {"id": "after_bad", "agent": "echo", "needs": ["bad"]},
            {"id": "side", "agent": "echo", "needs": ["root"]},
        ]
    }
    healthy = await client.submit({"tasks": [{"id": "x", "agent": "echo", "input": 2}]})
    state = await client.wait(await client.submit(spec), timeout=20)
    assert state.status == "failed"
    assert (
        state.reason == "task bad dead-lettered: failed 2 times, last: ValueError: poisoned input"
    )
    states = {t.id: t.state for t in state.tasks}
    assert states == {"root": "done", "bad": "failed", "after_bad": "skipped", "side": "done"}
    assert (await client.wait(healthy, timeout=20)).status == "completed"
    [(_, dead)] = await redis.xrange(keyspace.dead(0, "poison"))
    assert dead[b"wf"] == state.id.encode() and dead[b"task"] == b"bad"
    assert dead[b"att"] == b"2" and dead[b"deliveries"] == b"2"
    assert dead[b"error"] == b"ValueError: poisoned input"
    assert dead[b"entry"].count(b"-") == 1
    assert len(orjson.loads(dead[b"history"])) == 2


async def test_permanent_error_dead_letters_without_retrying(
    engine: Engine, client: Client
) -> None:
    spec = {"tasks": [{"id": "p", "agent": "fatal", "retries": 5}]}
    state = await client.wait(await client.submit(spec), timeout=20)
    assert state.status == "failed" and state.tasks[0].attempt == 1
    assert state.reason == "task p dead-lettered: PermanentError: cannot ever work"


async def test_a_setting_an_agent_finds_wrong_fails_its_task_at_once_in_one_log_line(
    engine: Engine, client: Client, caplog: pytest.LogCaptureFixture
) -> None:
    """A ConfigError from an agent (an API key unset, a URL refused) is no retry's to fix:
    dead-lettered on the first attempt, logged as its message alone, no traceback."""
    spec = {"tasks": [{"id": "c", "agent": "misconfigured", "retries": 5}]}
    state = await client.wait(await client.submit(spec), timeout=20)
    assert state.status == "failed" and state.tasks[0].attempt == 1
    expected = "ConfigError: set EXAMPLE_API_KEY to use this agent"
    assert state.reason == f"task c dead-lettered: {expected}"
    [logged] = [r for r in caplog.records if "set EXAMPLE_API_KEY" in r.getMessage()]
    assert logged.getMessage() == "task failed for good: set EXAMPLE_API_KEY to use this agent"
    assert logged.exc_info is None


async def test_malformed_task_entries_are_parked_and_the_worker_keeps_serving(
    engine: Engine, client: Client, redis: Redis, keyspace: Keyspace
) -> None:
    stream = keyspace.tasks(0, "echo")
    await redis.xadd(stream, {"garbage": b"\xff\xfe"})
    await redis.xadd(stream, {"v": "9", "wf": "w", "task": "t", "att": "1"})
    [reason] = await eventually(lambda: _dead_reasons(redis, keyspace.dead(0, "echo"), 1))
    assert reason == b"malformed entry: unsupported format version None"
    # The second names a task, so its failure goes through the resolver, which knows no such
    # workflow and parks it with both reasons.
    [(_, parked)] = await eventually(lambda: redis.xrange(keyspace.dead_done(0)))
    assert parked[b"reason"] == b"unknown workflow"
    assert parked[b"output"] == b"malformed task entry: unsupported format version b'9'"
    state = await client.wait(
        await client.submit({"tasks": [{"id": "a", "agent": "echo"}]}), timeout=20
    )
    assert state.status == "completed"


async def test_task_entry_with_a_bad_payload_fails_its_workflow_with_the_reason(
    engine: Engine, client: Client, redis: Redis, keyspace: Keyspace
) -> None:
    workflow_id = await unserved_workflow(client, redis, "echo")
    entry = {
        "v": "1",
        "wf": workflow_id,
        "task": "a",
        "agent": "echo",
        "att": "1",
        "in": "{not json",
        "deps": "{}",
    }
    await publish_by_hand(redis, keyspace, workflow_id, entry)
    state = await client.wait(workflow_id, timeout=20)
    assert state.status == "failed"
    assert "malformed task entry: undecodable payload" in state.reason


async def test_malformed_completion_goes_to_dead_done_and_the_resolver_keeps_going(
    engine: Engine, client: Client, redis: Redis, keyspace: Keyspace
) -> None:
    await redis.xadd(keyspace.done(0), {"v": "1", "kind": "ok"})
    await redis.xadd(
        keyspace.done(0),
        {
            "v": "1",
            "kind": "ok",
            "wf": "nope",
            "task": "t",
            "att": "1",
            "out": "1",
            "t0": "1",
            "t1": "2",
            "by": "x",
        },
    )
    reasons = await eventually(lambda: _dead_reasons(redis, keyspace.dead_done(0), 2))
    assert reasons[0].startswith(b"malformed completion: missing field")
    assert reasons[1] == b"unknown workflow"
    state = await client.wait(
        await client.submit({"tasks": [{"id": "a", "agent": "echo"}]}), timeout=20
    )
    assert state.status == "completed"


async def _dead_reasons(redis: Redis, stream: str, count: int) -> list[bytes] | None:
    entries = await redis.xrange(stream)
    return [fields[b"reason"] for _, fields in entries] if len(entries) >= count else None


async def test_a_task_told_to_retry_later_waits_without_using_up_its_retries(
    engine: Engine, client: Client, redis: Redis, keyspace: Keyspace
) -> None:
    spec = {
        "tasks": [
            {"id": "w", "agent": "patient", "input": {"ok_at": 4, "give_up": 30}, "retries": 0}
        ]
    }
    workflow_id = await client.submit(spec)
    state = await client.wait(workflow_id, timeout=20)
    assert state.status == "completed"
    (task,) = state.tasks
    assert (task.attempt, task.failures) == (4, 0)
    assert state.results["w"] == {"attempt": 4}
    events = await redis.xrange(keyspace.events(0))
    waits = [f for _, f in events if f[b"kind"] == b"task_waiting"]
    assert [f[b"reason"] for f in waits] == [b"every provider is out"] * 3
    assert {f[b"retry_ms"] for f in waits} == {b"50"}


@pytest.mark.parametrize(
    ("args", "said"),
    [
        ([1, 5], "reason must be text, not 5"),
        (["soon", "x"], "delay must be a number of seconds, 0 or more"),
        ([-1, "x"], "delay must be a number of seconds, 0 or more"),
        ([1, "x", "forever"], "give_up_after must be a number of seconds over 0"),
    ],
)
async def test_a_malformed_retry_later_fails_its_task_at_once_saying_why(
    engine: Engine, client: Client, args: list[Any], said: str
) -> None:
    """It crashed the worker's handling of the task, which then waited for its claim to lapse
    (30 s) and ran again, to the same end."""
    spec = {"tasks": [{"id": "r", "agent": "retry_later", "input": {"args": args}}]}
    state = await client.wait(await client.submit(spec), timeout=20)
    assert state.status == "failed" and state.tasks[0].attempt == 1
    assert state.reason == f"task r dead-lettered: RetryLater: {said}"


async def test_a_task_that_waits_past_its_deadline_is_dead_lettered_with_the_reason(
    engine: Engine, client: Client, redis: Redis, keyspace: Keyspace
) -> None:
    spec = {"tasks": [{"id": "w", "agent": "patient", "input": {"ok_at": 10**6, "give_up": 0.3}}]}
    state = await client.wait(await client.submit(spec), timeout=20)
    assert state.status == "failed"
    assert state.reason.startswith("task w dead-lettered: gave up after waiting 0s")
    assert state.reason.endswith(": every provider is out")
    (dead,) = await redis.xrange(keyspace.dead(0, "patient"))
    assert dead[1][b"reason"].startswith(b"gave up after waiting")
    assert state.tasks[0].failures == 0 and state.tasks[0].attempt > 2


async def test_a_task_past_its_timeout_fails_and_is_retried_per_its_policy(
    engine: Engine, client: Client
) -> None:
    spec = {
        "tasks": [
            {"id": "slow", "agent": "sleep", "input": {"seconds": 30}, "timeout": 0.2, "retries": 1}
        ]
    }
    workflow_id = await client.submit(spec)
    state = await client.wait(workflow_id, timeout=20)
    assert state.status == "failed"
    assert state.reason == "task slow dead-lettered: failed 2 times, last: timed out after 0.2s"
    (task,) = state.tasks
    assert (task.attempt, task.failures) == (2, 2)
    kinds = [e["kind"] for e in await client.history(workflow_id)]
    assert kinds[1:] == [
        "task_started",
        "task_failed",
        "task_retried",
        "task_started",
        "task_failed",
        "failed",
    ]


async def test_a_huge_malformed_entry_is_parked_cut_to_64_kib_per_field(
    engine: Engine, redis: Redis, keyspace: Keyspace
) -> None:
    stream = keyspace.tasks(0, "echo")
    await redis.xadd(stream, {"junk": b"x" * (1 << 20), "small": b"kept"})
    await eventually(lambda: _dead_reasons(redis, keyspace.dead(0, "echo"), 1))
    [(_, dead)] = await redis.xrange(keyspace.dead(0, "echo"))
    assert dead[b"small"] == b"kept"
    assert dead[b"junk"] == b"x" * 65536 + b"... (1048576 bytes in all)"


async def test_a_fan_in_whose_needs_results_outgrow_a_task_entry_fails_its_workflow(
    resolver_only: Engine, client: Client
) -> None:
    """Nine results of 0.95 MiB join into more than a task entry may hold (8 MiB): the task
    that needs them is dead-lettered instead of published, and its workflow fails."""
    resolver_only.start_worker(("big", "echo"))
    parts = [{"id": f"p{i}", "agent": "big", "input": {"mb": 0.95}} for i in range(9)]
    join = {"id": "join", "agent": "echo", "needs": [part["id"] for part in parts]}
    state = await client.wait(await client.submit({"tasks": [*parts, join]}), timeout=60)
    assert state.status == "failed"
    assert state.reason == (
        "task join dead-lettered: inputs too large: 8.6 MiB of input and needs' results,"
        " over the 8 MiB bound"
    )
    assert {t.id: t.state for t in state.tasks}["join"] == "failed"
