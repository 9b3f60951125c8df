"""Replay for debugging: a past run re-run from its recorded results reproduces it exactly;
from a task on, only that task and what depends on it run again; runs are compared task by
task; stream ranges are printed (or re-delivered to a debug group) without touching the
live groups, and a trimmed range is reported."""

from __future__ import annotations

from typing import Any

from redis.asyncio import Redis

from streamproc import Client, Keyspace
from tests.cli_runner import at, run
from tests.conftest import Engine

CHAIN = {
    "tasks": [
        {"id": "a", "agent": "ledger"},
        {"id": "b", "agent": "ledger", "needs": ["a"]},
        {"id": "c", "agent": "ledger", "needs": ["b"]},
    ]
}
DIAMOND = {
    "tasks": [
        {"id": "a", "agent": "echo", "input": "a"},
        {"id": "b", "agent": "echo", "input": "b", "needs": ["a"]},
        {"id": "c", "agent": "echo", "input": {"n": [1, 2.5, None]}, "needs": ["a"]},
        {"id": "d", "agent": "echo", "input": "d", "needs": ["b", "c"]},
    ]
}


async def kept_from_retention(redis: Redis, keyspace: Keyspace) -> str:
    """The echo task stream, with a group that never reads, so the engine's retention (which
    trims only what every group acknowledged) leaves it whole while the test looks at it."""
    stream = keyspace.tasks(0, "echo")
    await redis.xgroup_create(stream, "keeper", id="0", mkstream=True)
    return stream


async def replayed_id(err: str) -> str:
    line = next(line for line in err.splitlines() if line.startswith("replaying "))
    return line.split()[-1]


async def executed(redis: Redis, workflow_id: str) -> list[str]:
    return [e.decode().split()[0] for e in await redis.lrange(f"ledger:{workflow_id}", 0, -1)]


async def test_replay_from_recorded_results_reproduces_chain_and_diamond_without_running_agents(
    engine: Engine, client: Client, redis: Redis, redis_url: str, keyspace: Keyspace
) -> None:
    for spec in (CHAIN, DIAMOND):
        original = await client.wait(await client.submit(spec), timeout=20)
        result = await run("replay", "run", original.id, *at(redis_url, keyspace))
        assert result.code == 0, result
        assert f"no difference between {original.id} and " in result.out
        again = await client.get(await replayed_id(result.err))
        assert again.status == "completed"
        assert again.results == original.results
        assert {t.agent for t in again.tasks} == {"replay"}
        assert await executed(redis, again.id) == []  # no agent ran


async def test_replay_from_a_task_runs_it_and_its_dependents_live_and_reuses_the_rest(
    engine: Engine, client: Client, redis: Redis, redis_url: str, keyspace: Keyspace
) -> None:
    original = await client.wait(await client.submit(CHAIN), timeout=20)
    result = await run(
        "replay", "run", original.id, "--from-task", "b", "--import", "tests.agents_for_tests",
        *at(redis_url, keyspace),
    )  # fmt: skip
    assert result.code == 0, result
    again = await client.get(await replayed_id(result.err))
    assert again.status == "completed"
    assert sorted(await executed(redis, again.id)) == ["b", "c"]
    assert {t.id: t.agent for t in again.tasks} == {"a": "replay", "b": "ledger", "c": "ledger"}


async def test_diff_names_each_task_whose_result_differs(
    engine: Engine, client: Client, redis_url: str, keyspace: Keyspace
) -> None:
    first = await client.wait(await client.submit(DIAMOND), timeout=20)
    changed: dict[str, Any] = {"tasks": [dict(t) for t in DIAMOND["tasks"]]}
    changed["tasks"][1]["input"] = "B"  # an injected difference in b, which d also sees
    second = await client.wait(await client.submit(changed), timeout=20)
    result = await run("replay", "diff", first.id, second.id, *at(redis_url, keyspace))
    assert result.code == 1, result
    assert "2 difference(s)" in result.out
    assert "task b result: " in result.out and "task d result: " in result.out
    same = await run("replay", "diff", first.id, first.id, *at(redis_url, keyspace))
    assert same.code == 0 and "no difference" in same.out


async def test_a_stream_range_prints_and_a_debug_group_leaves_the_live_groups_untouched(
    engine: Engine, client: Client, redis: Redis, redis_url: str, keyspace: Keyspace
) -> None:
    stream = await kept_from_retention(redis, keyspace)
    first = await client.wait(await client.submit(DIAMOND), timeout=20)
    await client.wait(await client.submit(DIAMOND), timeout=20)
    live_before = await redis.xinfo_groups(stream)
    result = await run(
        "replay", "stream", "--agent", "echo", "--workflow", first.id, "--group", "debug1",
        *at(redis_url, keyspace),
    )  # fmt: skip
    assert result.code == 0, result
    printed = result.out.splitlines()
    assert len(printed) == 4 and all(f'"wf":"{first.id}"' in line for line in printed)
    groups = {g["name"].decode(): g for g in await redis.xinfo_groups(stream)}
    live_after = [g for name, g in groups.items() if name != "debug1"]
    assert live_after == live_before
    redelivered = await redis.xreadgroup("debug1", "me", {stream: ">"}, count=100)
    assert len(redelivered[0][1]) == 8  # both workflows' tasks, from the start


async def test_a_range_that_retention_trimmed_is_reported(
    engine: Engine, client: Client, redis: Redis, redis_url: str, keyspace: Keyspace
) -> None:
    stream = await kept_from_retention(redis, keyspace)
    await client.wait(await client.submit(DIAMOND), timeout=20)
    entries = await redis.xrange(stream)
    await redis.xtrim(stream, minid=entries[2][0], approximate=False)
    result = await run(
        "replay", "stream", "--agent", "echo", "--start", entries[0][0].decode(),
        *at(redis_url, keyspace),
    )  # fmt: skip
    assert result.code == 0, result
    assert f"trimmed: entries before {entries[2][0].decode()} are gone" in result.err
    assert len(result.out.splitlines()) == 2
