"""A workflow hash leaves out every field that would hold its default, and its absence reads
as that default (fields.py), in Python and in the engine's functions alike: the fields a
finished workflow keeps are listed here, so a new one is a choice; values that are not the
defaults are kept and honoured; and a hash with every field present (as the release before
wrote it) reads and runs the same."""

from __future__ import annotations

from typing import Any

from redis.asyncio import Redis

from streamproc import Client, ClientSettings, Keyspace
from streamproc.spec.model import Limits
from streamproc.store import fields, folded
from streamproc.store.fields import ABSENT, TaskField, WorkflowField, parse_state
from tests.conftest import Engine

WORKFLOW_FIELDS = {"order", "left", "ttl", "name", "agents", "digest", "status", "created"}
FINISHED_TASK_FIELDS = {"g", "i", "s", "q", "m", "b", "z", "w", "r"}  # and a, n, d, R, T


def names(raw: dict[bytes, bytes]) -> set[str]:
    return {name.decode() for name in raw}


def task_fields(task: str, *extra: str) -> set[str]:
    return {f"{letter}:{task}" for letter in (*FINISHED_TASK_FIELDS, *extra)}


def five_tasks() -> dict[str, Any]:
    """The seed workflow's shape: t1 -> t2 -> t3 -> (t4, t5)."""
    return {
        "name": "five",
        "tasks": [
            {"id": "t1", "agent": "echo", "input": {"n": 1}},
            {"id": "t2", "agent": "echo", "needs": ["t1"]},
            {"id": "t3", "agent": "echo", "needs": ["t2"], "retries": 2, "timeout": 60},
            {"id": "t4", "agent": "echo", "needs": ["t3"]},
            {"id": "t5", "agent": "echo", "needs": ["t3"], "timeout": 60},
        ],
    }


async def finished_hash(client: Client, spec: dict[str, Any]) -> dict[bytes, bytes]:
    workflow_id = await client.submit(spec)
    state = await client.wait(workflow_id, timeout=20)
    assert state.status == "completed", state.reason
    return await folded.workflow_hash(client.redis, client.keyspace, workflow_id)


async def test_a_finished_one_task_workflow_keeps_only_these_fields(
    engine: Engine, client: Client
) -> None:
    raw = await finished_hash(client, {"name": "one", "tasks": [{"id": "t1", "agent": "echo"}]})
    assert names(raw) == WORKFLOW_FIELDS | {"ended"} | task_fields("t1")


async def test_a_finished_five_task_workflow_keeps_only_these_fields(
    engine: Engine, client: Client
) -> None:
    raw = await finished_hash(client, five_tasks())
    expected = WORKFLOW_FIELDS | {"ended", "edges"}
    expected |= task_fields("t1", "d") | task_fields("t2", "n", "d")
    expected |= task_fields("t3", "n", "d", "T") | task_fields("t4", "n")
    expected |= task_fields("t5", "n", "T")
    assert names(raw) == expected
    state = parse_state("wf", raw)
    assert [(t.failures, t.lost, t.needs) for t in state.tasks][:2] == [(0, 0, []), (0, 0, ["t1"])]
    assert (state.reason, fields.given(raw, "t3").retries, fields.adjust_rounds(raw)) == ("", 2, 1)
    assert [fields.given(raw, t).timeout for t in ("t1", "t3")] == [None, 60.0]


async def test_a_new_workflow_hash_is_a_hashtable_without_the_field_that_made_it_one(
    client: Client,
) -> None:
    """The engine reads and writes a running workflow's hash field by field: sp_submit makes
    the hash of a five-task workflow a hashtable, which finds a field at once where a small
    hash's listpack is scanned, with a field too wide for a listpack that it deletes at once;
    a one-task workflow's few fields stay a listpack, the smaller while it waits."""
    five, one = await client.submit_many([five_tasks(), {"tasks": [{"id": "t1", "agent": "echo"}]}])
    encodings = [
        await client.redis.object("encoding", client.keyspace.workflow(wf)) for wf in (five, one)
    ]
    assert encodings == [b"hashtable", b"listpack"]
    raw = await client.redis.hgetall(client.keyspace.workflow(five))  # no engine: as submitted
    assert all(len(name) < 64 for name in raw), names(raw)
    assert {"digest", "status", "created", "order", "g:t1", "i:t1", "s:t1"} <= names(raw)


async def test_values_other_than_the_defaults_are_kept_and_read_back(
    engine: Engine, redis_url: str, keyspace: Keyspace
) -> None:
    limits = Limits(max_tasks=50, max_edges=60, max_input_bytes=7000, max_map=0)
    spec = {
        "adjust_rounds": 0,
        "tasks": [
            {"id": "a", "agent": "flaky", "input": {"fail": 1}, "retries": 0, "timeout": 5},
            {"id": "b", "agent": "echo", "needs": ["a"]},
        ],
    }
    async with Client(redis_url, ClientSettings(keyspace=keyspace, limits=limits)) as client:
        workflow_id = await client.submit(spec)
        state = await client.wait(workflow_id, timeout=20)
        raw = await folded.workflow_hash(client.redis, keyspace, workflow_id)
    assert state.status == "failed"  # no retry: its first failure dead-lettered it
    assert (state.tasks[0].failures, state.tasks[1].state) == (1, "skipped")
    assert "dead-lettered: failed 1 time" in state.reason
    limit_fields = ("max_tasks", "max_edges", "max_input", "max_map", "rounds")
    assert [raw[name.encode()] for name in limit_fields] == [b"50", b"60", b"7000", b"0", b"0"]
    assert (fields.given(raw, "a").retries, fields.given(raw, "a").timeout) == (0, 5.0)
    assert fields.adjust_rounds(raw) == 0


async def test_the_default_retries_and_map_limit_bind_when_their_fields_are_absent(
    engine: Engine, client: Client
) -> None:
    retried = await client.wait(
        await client.submit({"tasks": [{"id": "a", "agent": "flaky", "input": {"fail": 2}}]}),
        timeout=20,
    )
    assert (retried.status, retried.tasks[0].attempt) == ("completed", 3)  # two retries
    items = list(range(ABSENT[WorkflowField.MAX_MAP] + 1))
    spec = {
        "tasks": [
            {"id": "plan", "agent": "echo", "input": items},
            {"id": "each", "agent": "echo", "needs": ["plan"], "map": "plan"},
        ]
    }
    mapped = await client.wait(await client.submit(spec), timeout=20)
    assert mapped.status == "failed"
    assert "1001 items, over the limit of 1000" in mapped.reason


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
    counts = [(t.attempt, t.failures, t.lost) for t in parse_state("wf", LEAN).tasks]
    assert counts == [(1, 0, 0), (1, 0, 0)]


def test_fields_holding_zero_read_as_zero_not_as_their_default() -> None:
    raw = {**LEAN, b"R:a": b"0", b"rounds": b"0"}
    assert (fields.given(raw, "a").retries, fields.adjust_rounds(raw)) == (0, 0)
    assert fields.given(LEAN, "a").retries == ABSENT[TaskField.RETRIES]


async def test_an_old_hash_with_every_field_present_runs_as_before(
    engine: Engine, client: Client, redis: Redis, keyspace: Keyspace
) -> None:
    """A workflow stored by the previous release, its defaults written out, then run."""
    workflow_id = await client.submit(
        {"tasks": [{"id": "a", "agent": "gate"}, {"id": "b", "agent": "flaky", "needs": ["a"]}]}
    )
    old = {
        TaskField.FAILURES.of("b"): 0,
        TaskField.LOST.of("b"): 0,
        TaskField.RETRIES.of("b"): 2,
        TaskField.TIMEOUT.of("b"): "",
        TaskField.DEPENDENTS.of("b"): "",
        TaskField.ATTEMPT.of("b"): 1,
        TaskField.ATTEMPT.of("a"): 1,
        WorkflowField.MAX_TASKS: 2000,
        WorkflowField.ROUNDS: 1,
    }
    await redis.hset(keyspace.workflow(workflow_id), mapping=old)  # type: ignore[arg-type]
    await redis.hset(keyspace.workflow(workflow_id), TaskField.INPUT.of("b"), '{"fail": 2}')
    await redis.rpush(f"open:{workflow_id}:a", 1)
    state = await client.wait(workflow_id, timeout=20)
    assert state.status == "completed", state.reason
    assert (state.tasks[1].attempt, state.tasks[1].failures) == (3, 2)
