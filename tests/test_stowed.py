"""An ended workflow is stowed: its hash goes, and its fields become the first line of its
history archive (``history.lua``), which expires as the hash would have.  Every reader sees
the same workflow before and after, and whatever touches it again (a revival, a late
completion, a cancel) brings the hash back first and stows it again as it ends.  A workflow
that ended under 0.8 (its hash kept, its task fields folded into its archive) reads whole,
and is stowed by the next function that reads it (bringing its hash back first)."""

from __future__ import annotations

import asyncio

import orjson
import pytest
from redis.asyncio import Redis

from streamproc import Client, Keyspace
from streamproc.config import ClientSettings
from streamproc.engine.stower import Stower
from streamproc.errors import WorkflowConflict, WorkflowNotFound
from streamproc.ops import deadletters
from streamproc.ops.listing import Query, list_workflows
from streamproc.ops.results import task_input
from streamproc.registry import registered
from streamproc.store import calls, codec
from streamproc.store.codec import Acks
from streamproc.store.fields import TaskField, WorkflowField
from streamproc.store.folded import hmget_many, shift_id, workflow_hash
from streamproc.store.stow import STOW, Read, stow_arguments, stowed_archive
from tests.conftest import Engine, eventually, stowed, with_starts
from tests.test_cancel import started

LONG = "a long input, well over the 64 bytes a compact hash value may hold " * 2


async def stowed_line(redis: Redis, keyspace: Keyspace, workflow_id: str) -> dict:
    """The workflow's stowed fields (its archive's first line) once its hash is gone: the
    engine stows a workflow its completion ended just after the call that ended it."""

    async def line() -> dict | None:
        if await redis.exists(keyspace.workflow(workflow_id)):
            return None
        past = await redis.get(keyspace.past(workflow_id))
        return orjson.loads(past.split(b"\n", 1)[0]) if past and past.startswith(b"{") else None

    return await eventually(line)


async def ended_workflow(client: Client, redis: Redis, keyspace: Keyspace, agent: str) -> str:
    workflow_id = await client.submit({"tasks": [{"id": "a", "agent": agent, "input": 1}]})
    await client.wait(workflow_id, timeout=20)
    assert await stowed_line(redis, keyspace, workflow_id)
    return workflow_id


async def test_an_ended_workflow_is_stowed_and_every_reader_sees_it_whole(
    engine: Engine, client: Client, redis: Redis, keyspace: Keyspace
) -> None:
    spec = {
        "tasks": [
            {"id": "a", "agent": "echo", "input": {"text": LONG}},
            {"id": "b", "agent": "echo", "needs": ["a"]},
        ]
    }
    workflow_id = await client.submit(spec)
    state = await client.wait(workflow_id, timeout=20)
    line = await stowed_line(redis, keyspace, workflow_id)
    assert line and line[WorkflowField.STATUS] == "completed"
    assert line[TaskField.STATE.prefix] == "done"  # one value: every task has it
    assert line[TaskField.NEEDS.prefix] == [None, "a"]  # by task, in order
    assert "#" not in line  # no names beside the tasks
    assert 0 < await redis.pttl(keyspace.past(workflow_id)) <= 7 * 24 * 3600 * 1000
    assert state.status == "completed"
    assert [(t.id, t.state, t.agent, t.needs) for t in state.tasks] == [
        ("a", "done", "echo", []),
        ("b", "done", "echo", ["a"]),
    ]
    assert state.tasks[0].result == {"text": LONG}
    assert all(t.began_ms and t.ended_ms and t.consumer and t.entry for t in state.tasks)
    assert await task_input(redis, keyspace, workflow_id, "a", workflow_id) == {"text": LONG}
    kinds = [event["kind"] for event in with_starts(await client.history(workflow_id))]
    assert kinds[0] == "submitted" and kinds[-1] == "completed" and len(kinds) == 6
    page = await list_workflows(redis, keyspace, Query(limit=10))
    [summary] = page.workflows
    assert (summary.id, summary.tasks["total"], summary.tasks["done"]) == (workflow_id, 2, 2)
    assert summary.status == "completed"
    rows = await hmget_many(redis, keyspace, [(workflow_id, ["status", "s:b", "nope"])])
    assert rows == [[b"completed", b"done", None]]


async def test_submitting_a_stowed_workflow_again_creates_nothing_and_keeps_it_stowed(
    engine: Engine, client: Client, redis: Redis, keyspace: Keyspace
) -> None:
    """sp_submit finds the stowed workflow under its id: the same spec returns it as it is,
    another raises WorkflowConflict, and it stays stowed, its history untouched."""
    spec = {"tasks": [{"id": "a", "agent": "echo", "input": 1}]}
    workflow_id = await client.submit(spec, "again")
    await client.wait(workflow_id, timeout=20)
    line = await stowed_line(redis, keyspace, workflow_id)
    history = await client.history(workflow_id)
    assert await client.create(spec, workflow_id) == (workflow_id, False)
    with pytest.raises(WorkflowConflict):
        await client.submit({"tasks": [{"id": "a", "agent": "echo", "input": 2}]}, workflow_id)
    assert await stowed_line(redis, keyspace, workflow_id) == line
    assert await client.history(workflow_id) == history
    assert (await client.get(workflow_id)).status == "completed"


async def test_stowed_times_and_entry_ids_are_offsets_from_creation_read_back_exactly(
    engine: Engine, client: Client, redis: Redis, keyspace: Keyspace
) -> None:
    workflow_id = await client.submit({"tasks": [{"id": "slow", "agent": "gate", "input": 1}]})
    await eventually(lambda: started(redis, keyspace, workflow_id))
    running = await workflow_hash(redis, keyspace, workflow_id)  # a hash as the engine keeps
    await redis.rpush(f"open:{workflow_id}:slow", 1)
    await client.wait(workflow_id, timeout=20)
    line = await stowed_line(redis, keyspace, workflow_id)
    assert line
    created = int(line[WorkflowField.CREATED])
    times = [TaskField.QUEUED, TaskField.BEGAN, TaskField.ENDED]
    assert all(isinstance(line[f.prefix], int) and abs(line[f.prefix]) < 60_000 for f in times)
    assert isinstance(line[WorkflowField.ENDED], int)
    ms, seq = line[TaskField.ENTRY.prefix].split("-")
    assert abs(int(ms)) < 60_000 and seq.isdigit()
    whole = await workflow_hash(redis, keyspace, workflow_id)
    entry = TaskField.ENTRY.of("slow").encode()
    assert whole[entry] == running[entry] == f"{created + int(ms)}-{seq}".encode()
    assert [int(whole[f.of("slow").encode()]) for f in times] == [
        created + line[f.prefix] for f in times
    ]
    assert WorkflowField.LEFT not in line and whole[WorkflowField.LEFT.encode()] == b"0"
    [done] = [e for e in await client.history(workflow_id) if e["kind"] == "task_done"]
    assert whole[TaskField.ENDED.of("slow").encode()] == done["at"].encode()
    # The archive's lines after it have their ids' ms as offsets too, and a `by` naming the
    # task's consumer is 1: each reads back as it was.
    archive = await redis.get(keyspace.past(workflow_id))
    lines = [orjson.loads(line) for line in archive.split(b"\n")[1:-1]]
    history = await client.history(workflow_id)
    ids = [shift_id(line[0].encode(), created).decode() for line in lines]
    assert ids == [e["id"] for e in history]
    assert all(abs(int(line[0].split("-")[0])) < 60_000 for line in lines)
    named = [(e["by"], li) for e, li in zip(history, lines, strict=True) if "by" in e]
    assert [e["kind"] for e in history if "by" in e] == ["task_started"]
    assert all(li[-2:] == ["by", 1] and by == line[TaskField.CONSUMER.prefix] for by, li in named)
    # The engine brings the hash back (a cancel reads it) and stows it again as the call
    # ends: the same archive (its first line made by Lua now, its fields in another order).
    assert await client.cancel(workflow_id) is False
    again = await redis.get(keyspace.past(workflow_id))
    assert orjson.loads(again.split(b"\n", 1)[0]) == orjson.loads(archive.split(b"\n", 1)[0])
    assert again.split(b"\n", 1)[1] == archive.split(b"\n", 1)[1]
    assert await workflow_hash(redis, keyspace, workflow_id) == whole


async def test_a_revived_workflow_gets_its_hash_back_runs_again_and_is_stowed_as_it_ends(
    engine: Engine, client: Client, redis: Redis, keyspace: Keyspace
) -> None:
    spec = {"tasks": [{"id": "a", "agent": "fixable", "input": {"text": LONG}}]}
    workflow_id = await client.submit(spec)
    assert (await client.wait(workflow_id, timeout=20)).status == "failed"
    assert await stowed_line(redis, keyspace, workflow_id)
    await redis.set(f"fixed:{workflow_id}", 1)
    [dead] = await deadletters.list_dead(redis, keyspace, "fixable")
    await deadletters.requeue(redis, keyspace, "fixable", dead.entry_id)
    state = await client.wait(workflow_id, timeout=20)
    assert state.status == "completed"
    [task] = state.tasks
    assert (task.state, task.attempt, task.result) == ("done", 2, {"fixed": "a", "attempt": 2})
    assert [record["outcome"] for record in task.history] == ["fatal", "requeued"]
    assert await stowed_line(redis, keyspace, workflow_id)
    past = await redis.get(keyspace.past(workflow_id))
    assert past.count(b"\n{") == 0 and past.startswith(b"{")  # one stowed line, at the start
    kinds = [event["kind"] for event in await client.history(workflow_id)]
    assert kinds.count("failed") == 1 and kinds[-1] == "completed"


async def test_a_late_completion_of_a_cancelled_workflow_is_recorded_and_stowed(
    engine: Engine, client: Client, redis: Redis, keyspace: Keyspace
) -> None:
    spec = {"tasks": [{"id": "slow", "agent": "gate", "input": {"text": LONG}}]}
    workflow_id = await client.submit(spec)
    await eventually(lambda: started(redis, keyspace, workflow_id))
    assert await client.cancel(workflow_id) is True
    assert await stowed_line(redis, keyspace, workflow_id)
    await redis.rpush(f"open:{workflow_id}:slow", 1)

    async def recorded() -> bool:
        return (await client.get(workflow_id)).tasks[0].state == "done"

    await eventually(recorded)
    state = await client.get(workflow_id)
    assert state.status == "cancelled" and state.tasks[0].result == {"gate": "slow", "deps": []}
    line = await stowed_line(redis, keyspace, workflow_id)
    assert line and line[TaskField.STATE.prefix] == "done"
    kinds = [event["kind"] for event in await client.history(workflow_id)]
    assert kinds[-2:] == ["cancelled", "task_done"]


async def test_a_workflow_kept_forever_is_stowed_with_no_expiry(
    engine: Engine, redis_url: str, redis: Redis, keyspace: Keyspace
) -> None:
    settings = ClientSettings(keyspace=keyspace, workflow_ttl=0)
    async with Client(redis_url, settings, agents=registered()) as client:
        workflow_id = await ended_workflow(client, redis, keyspace, "echo")
    assert await redis.pttl(keyspace.past(workflow_id)) == -1


async def test_an_ended_hash_left_without_expiry_is_stowed_with_its_whole_ttl(
    engine: Engine, client: Client, redis: Redis, keyspace: Keyspace
) -> None:
    """An ending whose call failed after writing the end (a script error) leaves an ended
    hash with no expiry, never stowed: the next function that touches it stows it, and the
    archive takes the workflow's ttl, not "kept forever"."""
    workflow_id = await client.submit({"tasks": [{"id": "slow", "agent": "gate"}]})
    await eventually(lambda: started(redis, keyspace, workflow_id))
    key = keyspace.workflow(workflow_id)
    await redis.hset(key, WorkflowField.STATUS, "failed")
    assert await redis.pttl(key) == -1
    assert await client.cancel(workflow_id) is False  # not running: it only touches it
    assert await stowed_line(redis, keyspace, workflow_id)
    ttl = int(client.settings.workflow_ttl * 1000)
    assert ttl - 60_000 < await redis.pttl(keyspace.past(workflow_id)) <= ttl
    await redis.rpush(f"open:{workflow_id}:slow", 1)  # its late completion keeps that ttl

    async def recorded() -> bool:
        return (await client.get(workflow_id)).tasks[0].state == "done"

    await eventually(recorded)
    assert ttl - 60_000 < await redis.pttl(keyspace.past(workflow_id)) <= ttl


def folded_08(whole: dict[bytes, bytes], created: int) -> tuple[dict[bytes, bytes], bytes]:
    """A workflow's hash and archive's first line as 0.8 left a large ended one: task fields
    folded into one JSON object, times as offsets, the hash's ``folded`` its length."""
    times = {f.value for f in (TaskField.QUEUED, TaskField.BEGAN, TaskField.ENDED)}
    moved = {
        k.decode(): int(v) - created if k[:1].decode() in times else v.decode()
        for k, v in whole.items()
        if k[1:2] == b":"
    }
    line = orjson.dumps(moved) + b"\n"
    kept = {k: v for k, v in whole.items() if k[1:2] != b":"}
    return {**kept, WorkflowField.FOLDED.encode(): str(len(line)).encode()}, line


async def test_a_workflow_folded_by_0_8_reads_whole_and_is_stowed_when_touched(
    engine: Engine, client: Client, redis: Redis, keyspace: Keyspace
) -> None:
    workflow_id = await ended_workflow(client, redis, keyspace, "echo")
    whole = await workflow_hash(redis, keyspace, workflow_id)
    before = await client.get(workflow_id)
    past = await redis.get(keyspace.past(workflow_id))
    history = past.split(b"\n", 1)[1]
    kept, line = folded_08(whole, int(whole[WorkflowField.CREATED.encode()]))
    key = keyspace.workflow(workflow_id)
    await redis.hset(key, mapping=kept)
    await redis.set(keyspace.past(workflow_id), line + history)
    assert await workflow_hash(redis, keyspace, workflow_id) == whole
    assert await client.get(workflow_id) == before
    assert await client.cancel(workflow_id) is False  # a function reads it: stowed since
    assert await stowed_line(redis, keyspace, workflow_id)
    assert await workflow_hash(redis, keyspace, workflow_id) == whole
    assert [e["kind"] for e in await client.history(workflow_id)][-1] == "completed"


async def test_a_stowed_workflow_whose_archive_was_deleted_is_gone(
    engine: Engine, client: Client, redis: Redis, keyspace: Keyspace
) -> None:
    workflow_id = await ended_workflow(client, redis, keyspace, "echo")
    await redis.delete(keyspace.past(workflow_id))
    with pytest.raises(WorkflowNotFound):
        await client.get(workflow_id)
    assert await hmget_many(redis, keyspace, [(workflow_id, ["status"])]) == [[None]]


async def test_a_stowed_value_that_is_not_utf8_reads_back_byte_for_byte(
    engine: Engine, client: Client, redis: Redis, keyspace: Keyspace
) -> None:
    """Lua's cjson copies bytes as they are: a field no UTF-8 decoder takes (written here by
    hand, as a foreign writer might) is stowed and read back unchanged, by Python and by the
    engine when it brings the hash back."""
    workflow_id = await client.submit({"tasks": [{"id": "slow", "agent": "gate", "input": 1}]})
    await eventually(lambda: started(redis, keyspace, workflow_id))
    raw = b'\xff\xfe caf\xc3 \x00 "quoted" / \\'
    await redis.hset(keyspace.workflow(workflow_id), "x:odd", raw)
    await redis.rpush(f"open:{workflow_id}:slow", 1)
    await client.wait(workflow_id, timeout=20)
    await stowed(redis, keyspace, workflow_id)
    with pytest.raises(orjson.JSONDecodeError):  # a line orjson refuses...
        orjson.loads((await redis.get(keyspace.past(workflow_id))).split(b"\n")[0])
    whole = await workflow_hash(redis, keyspace, workflow_id)
    assert whole[b"x:odd"] == raw  # ...not us
    assert await client.cancel(workflow_id) is False  # the engine unstows and stows it again
    assert await workflow_hash(redis, keyspace, workflow_id) == whole


@pytest.mark.parametrize(
    "tasks",
    [
        [  # fan-out and fan-in, a retried task, text JSON escapes differently in Lua
            {"id": "a", "agent": "echo", "input": {"text": 'é / ✓ \\ "q" \n'}},
            {"id": "b", "agent": "flaky", "input": {"fail": 1}, "needs": ["a"], "retries": 2},
            {"id": "c", "agent": "echo", "input": LONG, "needs": ["a"]},
            {"id": "d", "agent": "echo", "needs": ["b", "c"]},
        ],
        [  # a failure, and a task it skipped
            {"id": "a", "agent": "poison", "input": 1},
            {"id": "b", "agent": "echo", "needs": ["a"]},
        ],
    ],
    ids=["completed", "failed"],
)
async def test_the_engine_stows_as_lua_does_what_its_process_stowed(
    engine: Engine, client: Client, redis: Redis, keyspace: Keyspace, tasks: list[dict]
) -> None:
    """A workflow a completion ended is stowed by the process that applied it (store/stow.py),
    not by Redis; the engine's own stow (history.lua), when a call brings the hash back, makes
    the same first line (its fields perhaps in another order) and the same lines after it."""
    workflow_id = await client.submit({"tasks": tasks})
    await client.wait(workflow_id, timeout=20)
    await stowed(redis, keyspace, workflow_id)
    by_process = await redis.get(keyspace.past(workflow_id))
    whole = await workflow_hash(redis, keyspace, workflow_id)
    assert await client.cancel(workflow_id) is False  # unstowed, stowed again by Lua
    by_lua = await redis.get(keyspace.past(workflow_id))
    first, lines = by_process.split(b"\n", 1)
    assert orjson.loads(first) == orjson.loads(by_lua.split(b"\n", 1)[0])
    assert lines == by_lua.split(b"\n", 1)[1]
    assert await workflow_hash(redis, keyspace, workflow_id) == whole


async def ended_by_hand(redis: Redis, keyspace: Keyspace, client: Client) -> str:
    """A workflow ended by an ``sp_resolve`` call of the test's own, which no stower follows:
    its hash stays, ended."""
    workflow_id = await client.submit({"tasks": [{"id": "a", "agent": "echo", "input": 1}]})
    stream = keyspace.tasks(0, "echo")
    await redis.xgroup_create(stream, "echo", id="0")
    [[_, [(entry_id, fields)]]] = await redis.xreadgroup("echo", "w1", {stream: ">"}, count=1)
    task = codec.decode_task(entry_id, fields, "echo")
    completion = codec.completion_of(task, b"ok", b"1", 1, 2, "w1")
    retry = calls.Retry(10, 10, 1.0)
    args = calls.resolve_arguments(keyspace, 0, ["echo"], retry, [completion], Acks.TASKS)
    assert (await calls.RESOLVE(redis, args)).ended == [workflow_id]
    return workflow_id


async def test_sp_stow_writes_only_where_the_workflow_is_as_its_stower_read_it(
    redis: Redis, keyspace: Keyspace, client: Client
) -> None:
    """The hash sp_resolve leaves ended expires with its archive, as the stowed archive would;
    sp_stow stows it only while it is over and has as many fields and as long an archive as
    the stower read (any later change stows it or adds to its archive)."""
    workflow_id = await ended_by_hand(redis, keyspace, client)
    key, past = keyspace.workflow(workflow_id), keyspace.past(workflow_id)
    ttl = ClientSettings().workflow_ttl * 1000
    assert ttl - 60_000 < await redis.pttl(key) <= ttl
    assert ttl - 60_000 < await redis.pttl(past) <= ttl
    whole = await workflow_hash(redis, keyspace, workflow_id)
    fields, archived = await redis.hlen(key), await redis.strlen(past)
    for counts in ((fields + 1, archived), (fields, archived - 1)):
        stow = stow_arguments(keyspace, 0, [Read(workflow_id, *counts, b"{}\n")])
        assert await STOW(redis, stow) == 0
    assert await redis.hgetall(key) == whole
    assert await Stower(redis, keyspace).stow(0, [workflow_id]) == 1
    assert not await redis.exists(key)
    assert ttl - 60_000 < await redis.pttl(past) <= ttl
    assert await workflow_hash(redis, keyspace, workflow_id) == whole


async def test_sp_stow_leaves_a_running_workflow_alone(
    redis: Redis, keyspace: Keyspace, client: Client
) -> None:
    workflow_id = await client.submit({"tasks": [{"id": "a", "agent": "echo", "input": 1}]})
    assert await Stower(redis, keyspace).stow(0, [workflow_id]) == 0
    assert (await client.get(workflow_id)).status == "running"


async def test_an_ended_hash_no_stower_stowed_is_stowed_by_the_next_call_that_touches_it(
    redis: Redis, keyspace: Keyspace, client: Client
) -> None:
    """The process whose call ended a workflow died before stowing it: the hash reads whole,
    and the next function call that reads it stows it."""
    workflow_id = await ended_by_hand(redis, keyspace, client)
    state = await client.get(workflow_id)
    assert state.status == "completed" and state.tasks[0].result == 1
    assert await client.cancel(workflow_id) is False
    assert await stowed_line(redis, keyspace, workflow_id)
    assert await client.get(workflow_id) == state


async def test_the_resolver_stows_the_ended_hashes_its_sweep_finds(
    redis: Redis, keyspace: Keyspace, client: Client, redis_url: str
) -> None:
    """A worker died between ending workflows and stowing them: the resolver's sweep (at its
    start, and every reconcile interval) finds them among the hashes it reads, and stows them."""
    workflow_id = await ended_by_hand(redis, keyspace, client)
    state = await client.get(workflow_id)
    resolver = Engine(redis_url, keyspace)
    resolver.start_resolver()
    try:
        assert await stowed_line(redis, keyspace, workflow_id)
    finally:
        await resolver.stop()
    assert await client.get(workflow_id) == state


BASE = {  # an ended two-task workflow's hash, as sp_resolve leaves it
    b"created": b"1700000000000",
    b"order": b"a b",
    b"status": b"completed",
    b"ended": b"1700000000900",
    b"left": b"0",
    b"ttl": b"0",
    b"s:a": b"done",
    b"s:b": b"done",
    b"q:a": b"1700000000001",
    b"q:b": b"1700000000400",
    b"m:a": b"1700000000001-0",
    b"m:b": b"1700000000400-3",
    b"w:a": b"vm-1",
    b"w:b": b"vm-1",
    b"r:a": b'{"n":1}',
    b"r:b": b'{"n":1}',
}
PAST = (
    b'["1700000000000-0","submitted"]\n'
    b'["1700000000399-2","task_done","task","a","att","1","by","vm-1"]\n'
    b'["1700000000900-1","completed","at",-1]\n'
)
VARIANTS = {
    "as ended": {},
    "another order": {b"order": b"b a"},
    "a signal's field": {b"S:approve": b'{"ok":true}'},
    "a field one task lacks": {b"T:b": b"60.0"},
    "values that differ": {b"w:b": b"vm-2", b"r:b": b"[]"},
    "a separator in a value": {b"e:a": b"bad\x00input", b"e:b": b"x"},
    "a time that is no number": {b"q:b": b"soon"},
    "an entry id of another form": {b"m:b": b"7"},
    "still a task left": {b"left": b"1"},
    "no task at all": {b"order": b""},
}


@pytest.mark.parametrize("changes", VARIANTS.values(), ids=VARIANTS.keys())
async def test_a_stower_stows_what_lua_would_for_hashes_of_every_form(
    redis: Redis, keyspace: Keyspace, changes: dict[bytes, bytes]
) -> None:
    """Python's stow (store/stow.py, which works out where each field goes once per set of
    field names) makes the first line Lua's makes (sp_stow given nothing to write) and the
    same lines after it, for the same hash read back in Redis's order."""
    stowed_by = {}
    for maker, workflow_id in (("python", "wf-python"), ("lua", "wf-lua")):
        key, past = keyspace.workflow(workflow_id), keyspace.past(workflow_id)
        await redis.hset(key, mapping={**BASE, **changes})
        await redis.set(past, PAST)
        raw = await redis.hgetall(key)
        made = stowed_archive(raw, PAST) if maker == "python" else b""
        assert made is not None
        read = Read(workflow_id, len(raw), len(PAST), made)
        assert await STOW(redis, stow_arguments(keyspace, 0, [read])) == 1
        stowed_by[maker] = await redis.get(past)
    by_python, by_lua = (stowed_by[m].split(b"\n", 1) for m in ("python", "lua"))
    assert orjson.loads(by_python[0]) == orjson.loads(by_lua[0])
    assert by_python[1] == by_lua[1]


def test_a_value_that_is_not_utf8_is_left_for_lua_to_stow() -> None:
    assert stowed_archive({**BASE, b"e:a": b"\xff\xfe"}, PAST) is None
    assert stowed_archive({**BASE, b"e:\xff": b"x"}, PAST) is None


async def test_a_running_stower_reads_and_writes_on_a_lane_of_its_own(
    redis: Redis, keyspace: Keyspace, client: Client
) -> None:
    """While it runs, a stower reads and stows on its own connection (hiredis parses the
    replies); what it stows reads back whole, and the connection closes as it stops."""
    workflow_id = await ended_by_hand(redis, keyspace, client)
    whole = await workflow_hash(redis, keyspace, workflow_id)
    clients = len(await redis.client_list())
    stower = Stower(redis, keyspace)
    stower.add(0, [workflow_id])
    running = asyncio.create_task(stower.run())
    await stowed(redis, keyspace, workflow_id)
    assert stower._lane is not None
    assert len(await redis.client_list()) == clients + 1  # the lane
    stower.close()
    await asyncio.wait_for(running, timeout=20)
    assert stower._lane is None
    assert await workflow_hash(redis, keyspace, workflow_id) == whole

    async def lane_closed() -> bool:
        return len(await redis.client_list()) == clients

    await eventually(lane_closed)
