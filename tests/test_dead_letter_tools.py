"""Operators read dead letters, requeue them once the cause is fixed (the workflow resumes
where it failed) and purge them, through ``streamproc dead`` and ``streamproc.ops.deadletters``."""

from __future__ import annotations

import functools
import re
from datetime import UTC, datetime
from typing import Any

import orjson
import pytest
from redis.asyncio import Redis

from streamproc import Client, Keyspace
from streamproc.errors import DeadLetterNotFound, DeadLetterRefused
from streamproc.ops import deadletters
from tests.cli_runner import assert_one_line_error, at, run, run_sync
from tests.conftest import Engine, eventually

FIXABLE_SPEC: dict[str, Any] = {
    "tasks": [
        {"id": "a", "agent": "echo", "input": 1},
        {"id": "fix", "agent": "fixable", "needs": ["a"], "retries": 0},
        {"id": "side", "agent": "gate", "needs": ["a"]},
        {"id": "after", "agent": "echo", "needs": ["fix", "side"]},
        {"id": "tail", "agent": "echo", "needs": ["side"]},
    ]
}
SIMPLE_SPEC: dict[str, Any] = {
    "tasks": [
        {"id": "a", "agent": "echo", "input": 1},
        {"id": "fix", "agent": "fixable", "needs": ["a"]},
    ]
}
RAW_ENTRY = {"v": "1", "agent": "fixable", "entry": "1-1", "reason": "payload trimmed before ack"}


async def failed(client: Client, workflow_id: str) -> bool:
    return (await client.get(workflow_id)).status == "failed"


async def dead_ids(redis: Redis, keyspace: Keyspace, agent: str) -> list[str]:
    return [i.decode() for i, _ in await redis.xrange(keyspace.dead(0, agent))]


async def test_requeue_after_a_fix_resumes_the_workflow_and_it_completes(
    engine: Engine, client: Client, redis: Redis, keyspace: Keyspace, redis_url: str
) -> None:
    workflow_id = await client.submit(FIXABLE_SPEC)
    await eventually(lambda: failed(client, workflow_id))
    await redis.rpush(f"open:{workflow_id}:side", 1)

    async def side_done() -> bool:
        return {t.id: t.state for t in (await client.get(workflow_id)).tasks}["side"] == "done"

    await eventually(side_done)  # recorded while failed: nothing after it was published
    state = await client.get(workflow_id)
    assert {t.id: t.state for t in state.tasks} == {
        "a": "done",
        "fix": "failed",
        "side": "done",
        "after": "skipped",
        "tail": "skipped",
    }
    assert state.reason == "task fix dead-lettered: PermanentError: not fixed yet"

    listed = await run("dead", "list", "--agent", "fixable", "--json", *at(redis_url, keyspace))
    assert listed.code == 0, listed
    [row] = [orjson.loads(line) for line in listed.out.splitlines()]
    assert row["workflow"] == workflow_id and row["task"] == "fix" and row["attempt"] == 1
    await redis.set(f"fixed:{workflow_id}", 1)
    requeued = await run(
        "dead", "requeue", row["id"], "--agent", "fixable", *at(redis_url, keyspace)
    )
    assert requeued.code == 0, requeued
    assert requeued.out == f"requeued {row['id']}: task fix of {workflow_id}\n"

    state = await client.wait(workflow_id, timeout=20)
    assert state.status == "completed" and state.reason == ""
    tasks = {t.id: t for t in state.tasks}
    assert tasks["fix"].result == {"fixed": "fix", "attempt": 2}
    assert (tasks["fix"].failures, tasks["fix"].history[-1]["outcome"]) == (0, "requeued")
    assert state.results["after"]["deps"]["side"] == {"gate": "side", "deps": ["a"]}
    assert state.results["tail"] == {"input": None, "deps": {"side": tasks["side"].result}}
    assert await dead_ids(redis, keyspace, "fixable") == []
    assert await redis.pttl(keyspace.past(workflow_id)) > 0  # finished again: stowed, expires

    events = [
        f for _, f in await redis.xrange(keyspace.events(0)) if f[b"wf"] == workflow_id.encode()
    ]
    kinds = [f[b"kind"].decode() for f in events]
    resumed = kinds.index("resumed")
    assert kinds.index("failed") < resumed and kinds[-1] == "completed"
    requeues = {f[b"task"]: f[b"reason"] for f in events if f[b"kind"] == b"task_requeued"}
    assert requeues == {b"fix": b"from dead letters", b"tail": b"workflow resumed"}


async def test_a_requeued_workflow_runs_again_without_expiry_and_its_entry_is_gone(
    resolver_only: Engine, client: Client, redis: Redis, keyspace: Keyspace, redis_url: str
) -> None:
    first = Engine(redis_url, keyspace)
    first.start_worker(("echo", "fixable"))
    workflow_id = await client.submit(SIMPLE_SPEC)
    await eventually(lambda: failed(client, workflow_id))
    await first.stop()  # nothing serves the task now, so its requeued state stays visible
    key, past = keyspace.workflow(workflow_id), keyspace.past(workflow_id)
    assert await redis.pttl(past) > 0 and not await redis.exists(key)  # stowed: it expires
    [entry_id] = await dead_ids(redis, keyspace, "fixable")

    dead = await deadletters.requeue(redis, keyspace, "fixable", entry_id)
    assert (dead.workflow, dead.task) == (workflow_id, "fix")
    state = await client.get(workflow_id)
    assert (state.status, state.reason, state.ended_ms) == ("running", "", None)
    fix = state.tasks[1]
    assert (fix.state, fix.attempt, fix.failures) == ("queued", 2, 0)
    assert await redis.pttl(key) == await redis.pttl(past) == -1  # its hash back, no expiry
    [(_, published)] = await redis.xrange(keyspace.tasks(0, "fixable"), fix.entry, fix.entry)
    assert published[b"att"] == b"2" and published[b"deps"] == b'{"a":1}'
    assert await dead_ids(redis, keyspace, "fixable") == []
    with pytest.raises(DeadLetterNotFound):
        await deadletters.requeue(redis, keyspace, "fixable", entry_id)

    await redis.set(f"fixed:{workflow_id}", 1)
    resolver_only.start_worker(("fixable",))
    assert (await client.wait(workflow_id, timeout=20)).status == "completed"


async def test_requeue_of_a_malformed_entry_is_refused_and_leaves_it_listed(
    redis: Redis, keyspace: Keyspace, redis_url: str
) -> None:
    entry_id = (await redis.xadd(keyspace.dead(0, "fixable"), RAW_ENTRY)).decode()
    result = await run("dead", "requeue", entry_id, "--agent", "fixable", *at(redis_url, keyspace))
    assert_one_line_error(
        result, f"error: cannot requeue dead letter {entry_id}: it names no workflow and task"
    )
    assert await dead_ids(redis, keyspace, "fixable") == [entry_id]
    listed = await run("dead", "list", "--json", *at(redis_url, keyspace))
    assert listed.code == 0, listed
    [row] = [orjson.loads(line) for line in listed.out.splitlines()]
    assert row["id"] == entry_id and row["workflow"] == "" and row["attempt"] is None
    assert row["reason"] == "payload trimmed before ack"


async def test_requeue_refuses_an_entry_whose_workflow_did_not_fail_because_of_it(
    engine: Engine, client: Client, redis: Redis, keyspace: Keyspace
) -> None:
    workflow_id = await client.submit({"tasks": [{"id": "fix", "agent": "echo"}]})
    assert (await client.wait(workflow_id, timeout=20)).status == "completed"
    stale = {"v": "1", "wf": workflow_id, "task": "fix", "agent": "fixable", "att": "1"}
    entry_id = (await redis.xadd(keyspace.dead(0, "fixable"), stale)).decode()
    with pytest.raises(DeadLetterRefused, match="is completed, not failed"):
        await deadletters.requeue(redis, keyspace, "fixable", entry_id)
    assert await dead_ids(redis, keyspace, "fixable") == [entry_id]
    assert (await client.get(workflow_id)).status == "completed"


async def test_requeue_all_resumes_each_failed_workflow_and_reports_what_it_refuses(
    engine: Engine, client: Client, redis: Redis, keyspace: Keyspace, redis_url: str
) -> None:
    workflows = [await client.submit(SIMPLE_SPEC) for _ in range(2)]
    for workflow_id in workflows:
        await eventually(functools.partial(failed, client, workflow_id))
        await redis.set(f"fixed:{workflow_id}", 1)
    raw_id = (await redis.xadd(keyspace.dead(0, "fixable"), RAW_ENTRY)).decode()
    result = await run("dead", "requeue", "--all", "--agent", "fixable", *at(redis_url, keyspace))
    assert result.code == 1, result
    assert sorted(line.split()[-1] for line in result.out.splitlines()) == sorted(workflows)
    assert result.err.startswith(f"error: cannot requeue dead letter {raw_id}: it names no")
    for workflow_id in workflows:
        assert (await client.wait(workflow_id, timeout=20)).status == "completed"
    assert await dead_ids(redis, keyspace, "fixable") == [raw_id]


async def test_dead_list_and_show_print_each_entry_with_its_error_and_history(
    engine: Engine, client: Client, keyspace: Keyspace, redis_url: str
) -> None:
    spec = {"tasks": [{"id": "bad", "agent": "poison", "retries": 1}]}
    workflow_id = await client.submit(spec)
    assert (await client.wait(workflow_id, timeout=20)).status == "failed"

    listed = await run("dead", "list", "--json", *at(redis_url, keyspace))
    assert listed.code == 0, listed
    [row] = [orjson.loads(line) for line in listed.out.splitlines()]
    assert {k: row[k] for k in ("agent", "workflow", "task", "attempt", "deliveries")} == {
        "agent": "poison",
        "workflow": workflow_id,
        "task": "bad",
        "attempt": 2,
        "deliveries": 2,
    }
    assert row["reason"] == "failed 2 times, last: ValueError: poisoned input"
    assert row["at"] >= int(row["id"].split("-")[0]) - 1000
    table = await run("dead", "list", "--agent", "poison", *at(redis_url, keyspace))
    assert table.code == 0, table
    header, line = table.out.splitlines()
    assert header.split()[:4] == ["id", "agent", "workflow", "task"]
    assert line.split()[:6] == [row["id"], "poison", workflow_id, "bad", "2", "2"]

    shown = await run(
        "dead", "show", row["id"], "--agent", "poison", "--json", *at(redis_url, keyspace)
    )
    assert shown.code == 0, shown
    entry = orjson.loads(shown.out)
    assert entry["error"] == "ValueError: poisoned input"
    assert [h["attempt"] for h in entry["history"]] == [1, 2]
    assert entry["entry"].count("-") == 1 and entry["id"] == row["id"]
    text = await run("dead", "show", row["id"], "--agent", "poison", *at(redis_url, keyspace))
    assert text.code == 0, text
    assert f"workflow:    {workflow_id}" in text.out
    assert "error:       ValueError: poisoned input" in text.out
    assert '"outcome": "error"' in text.out  # the history, indented JSON


async def test_a_dead_letter_holds_its_tasks_input_which_dead_show_prints(
    engine: Engine, client: Client, keyspace: Keyspace, redis_url: str
) -> None:
    """The input is kept as given, and cut like any parked value when it is huge."""
    given = {"query": "why", "n": [1, 2]}
    small = await client.submit({"tasks": [{"id": "bad", "agent": "poison", "input": given}]})
    huge = {"tasks": [{"id": "bad", "agent": "poison", "input": "x" * 100_000}]}
    big = await client.submit(huge)
    for workflow_id in (small, big):
        assert (await client.wait(workflow_id, timeout=20)).status == "failed"
    entries = {d.workflow: d for d in await deadletters.list_dead(client.redis, keyspace, "poison")}

    shown = await run(
        "dead", "show", entries[small].entry_id, "--agent", "poison", "--json",
        *at(redis_url, keyspace),
    )  # fmt: skip
    assert shown.code == 0, shown
    assert orjson.loads(shown.out)["input"] == given
    text = await run(
        "dead", "show", entries[small].entry_id, "--agent", "poison", *at(redis_url, keyspace)
    )
    assert "input:       {\n" in text.out and '"query": "why"' in text.out, text.out
    cut = entries[big].to_dict()["input"]
    assert cut.startswith('"xxx') and cut.endswith("... (100002 bytes in all)")
    assert len(cut) < 70_000


async def test_dead_letters_read_for_people_dates_plurals_and_long_ids(
    engine: Engine, client: Client, keyspace: Keyspace, redis_url: str
) -> None:
    """``dead show`` dates entries in ISO-8601 UTC (``--json`` keeps milliseconds), a single
    failure is "1 time", and ``dead list`` columns stay aligned for 32-character ids."""
    long_id = "w" * 32
    spec = {"tasks": [{"id": "t" * 32, "agent": "poison", "retries": 0}]}
    await client.submit(spec, long_id)
    short_id = await client.submit({"tasks": [{"id": "bad", "agent": "poison", "retries": 0}]})
    for workflow_id in (long_id, short_id):
        assert (await client.wait(workflow_id, timeout=20)).status == "failed"

    table = await run("dead", "list", "--agent", "poison", *at(redis_url, keyspace))
    assert table.code == 0, table
    header, *rows = table.out.splitlines()
    starts = [header.index(name) for name in ("agent", "workflow", "task", "reason")]
    for row in rows:
        assert [row[i - 1] == " " and row[i] != " " for i in starts] == [True] * 4, table.out
    assert all(row.endswith("failed 1 time, last: ValueError: poisoned input") for row in rows)

    listed = await run("dead", "list", "--agent", "poison", "--json", *at(redis_url, keyspace))
    entry_id = orjson.loads(listed.out.splitlines()[0])["id"]
    raw = await run(
        "dead", "show", entry_id, "--agent", "poison", "--json", *at(redis_url, keyspace)
    )
    at_ms = orjson.loads(raw.out)["at"]
    assert isinstance(at_ms, int)
    text = await run("dead", "show", entry_id, "--agent", "poison", *at(redis_url, keyspace))
    assert text.code == 0, text
    iso = datetime.fromtimestamp(at_ms / 1000, UTC).isoformat(timespec="milliseconds")
    assert f"at:          {iso.replace('+00:00', 'Z')}" in text.out
    # No raw milliseconds left, the history's included (entry ids, ms-seq, may stay).
    assert not re.search(r"\b1\d{12}\b(?!-)", text.out), text.out


async def test_dead_show_of_an_unknown_entry_is_a_one_line_error(
    keyspace: Keyspace, redis_url: str
) -> None:
    result = await run("dead", "show", "1-1", "--agent", "poison", *at(redis_url, keyspace))
    assert_one_line_error(result, "error: no dead letter 1-1 for agent 'poison'")


async def test_purge_refuses_without_yes_and_deletes_entries_before_an_id(
    redis: Redis, keyspace: Keyspace, redis_url: str
) -> None:
    stream = keyspace.dead(0, "fixable")
    ids = [(await redis.xadd(stream, RAW_ENTRY)).decode() for _ in range(3)]
    refused = await run("dead", "purge", "--agent", "fixable", *at(redis_url, keyspace))
    assert_one_line_error(refused, "error: purge deletes dead letters for good; add --yes")
    assert refused.code == 2, refused
    assert await dead_ids(redis, keyspace, "fixable") == ids

    before = await run(
        "dead", "purge", "--agent", "fixable", "--before", ids[2], "--yes", *at(redis_url, keyspace)
    )
    assert before.code == 0 and before.out == "deleted 2 dead letter(s) of fixable\n", before
    assert await dead_ids(redis, keyspace, "fixable") == ids[2:]
    every = await run("dead", "purge", "--agent", "fixable", "--yes", *at(redis_url, keyspace))
    assert every.code == 0 and every.out == "deleted 1 dead letter(s) of fixable\n", every
    assert await dead_ids(redis, keyspace, "fixable") == []


async def test_purge_deletes_one_entry_by_its_id_as_a_malformed_one_cannot_be_requeued(
    redis: Redis, keyspace: Keyspace, redis_url: str
) -> None:
    stream = keyspace.dead(0, "fixable")
    ids = [(await redis.xadd(stream, RAW_ENTRY)).decode() for _ in range(3)]
    where = at(redis_url, keyspace)
    one = await run("dead", "purge", ids[1], "--agent", "fixable", "--yes", *where)
    assert (one.code, one.out) == (0, f"deleted dead letter {ids[1]} of fixable\n"), one
    assert await dead_ids(redis, keyspace, "fixable") == [ids[0], ids[2]]
    again = await run("dead", "purge", ids[1], "--agent", "fixable", "--yes", *where)
    assert_one_line_error(again, f"error: no dead letter {ids[1]} for agent 'fixable'")
    both = await run("dead", "purge", ids[0], "--agent", "fixable", "--before", ids[2], *where)
    assert_one_line_error(both, "error: give either ENTRY_ID or --before")
    assert both.code == 2, both
    assert await dead_ids(redis, keyspace, "fixable") == [ids[0], ids[2]]


def test_dead_lists_its_verbs_and_each_takes_the_common_options() -> None:
    group = run_sync("dead", "--help")
    assert group.code == 0, group
    for verb in ("list", "show", "requeue", "purge"):
        assert f"  {verb} " in group.out, verb
        result = run_sync("dead", verb, "--help")
        assert result.code == 0 and "--redis-url" in result.out, result
