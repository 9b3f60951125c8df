"""A workflow hash field that would hold its default may be absent, and its absence reads as
that default (fields.py), in Python and in the engine's functions alike; a hash with every
field present reads the same."""

from __future__ import annotations

from redis.asyncio import Redis

from streamproc import Client, Keyspace
from streamproc.store import fields
from streamproc.store.fields import ABSENT, TaskField, WorkflowField, parse_state
from tests.conftest import Engine

LEAN = {
    b"order": b"a b",
    b"status": b"completed",
    b"created": b"1",
    b"g:a": b"echo",
    b"g:b": b"echo",
    b"s:a": b"done",
    b"s:b": b"done",
    b"n:b": b"a",
}


def test_a_hash_with_every_field_present_reads_as_the_same_state() -> None:
    full = {
        **LEAN,
        b"reason": b"",
        b"rounds": b"1",
        **{f"a:{t}".encode(): b"1" for t in "ab"},
        **{f"{f}:{t}".encode(): b"0" for f in "fkc" for t in "ab"},
        **{f"{f}:{t}".encode(): b"" for f in "Td" for t in "ab"},
        b"n:a": b"",
        b"R:a": b"2",
        b"R:b": b"2",
    }
    assert parse_state("wf", full) == parse_state("wf", LEAN)
    assert [fields.given(full, t) for t in "ab"] == [fields.given(LEAN, t) for t in "ab"]
    assert fields.adjust_rounds(full) == fields.adjust_rounds(LEAN) == 1
    assert [(t.attempt, t.failures, t.lost) for t in parse_state("wf", LEAN).tasks] == [
        (1, 0, 0)
    ] * 2


def test_fields_holding_zero_read_as_zero_not_as_their_default() -> None:
    raw = {**LEAN, b"R:a": b"0", b"rounds": b"0"}
    assert (fields.given(raw, "a").retries, fields.adjust_rounds(raw)) == (0, 0)
    assert fields.given(LEAN, "a").retries == ABSENT[TaskField.RETRIES]


async def test_a_workflow_whose_default_fields_are_absent_runs_as_with_them(
    engine: Engine, client: Client, redis: Redis, keyspace: Keyspace
) -> None:
    """Its first attempts, failure counts, retries, timeouts, empty needs and dependents,
    limits and rounds removed while its root runs: its other task still retries twice."""
    workflow_id = await client.submit(
        {
            "tasks": [
                {"id": "a", "agent": "gate"},
                {"id": "b", "agent": "flaky", "input": {"fail": 2}, "needs": ["a"]},
            ]
        }
    )
    key = keyspace.workflow(workflow_id)
    defaults = [TaskField.ATTEMPT.of(t) for t in "ab"]
    defaults += [f.of(t) for f in (TaskField.FAILURES, TaskField.LOST) for t in "ab"]
    defaults += [f.of(t) for f in (TaskField.RETRIES, TaskField.TIMEOUT) for t in "ab"]
    defaults += [TaskField.NEEDS.of("a"), TaskField.UNMET.of("a"), TaskField.DEPENDENTS.of("b")]
    defaults += [WorkflowField.ROUNDS, WorkflowField.MAX_TASKS, WorkflowField.MAX_MAP]
    assert await redis.hdel(key, *defaults) == len(defaults)
    await redis.rpush(f"open:{workflow_id}:a", 1)
    state = await client.wait(workflow_id, timeout=20)
    assert state.status == "completed", state.reason
    assert [(t.attempt, t.failures) for t in state.tasks] == [(1, 0), (3, 2)]
    history = [(e["kind"], e.get("task"), e.get("att")) for e in await client.history(workflow_id)]
    assert ("task_retried", "b", "2") in history and ("task_retried", "b", "3") in history
