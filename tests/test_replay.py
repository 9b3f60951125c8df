"""Replay for debugging: a past run re-run from its recorded results reproduces it exactly,
failures, skips and cancellation included; from a task on, only that task and what depends
on it run again; bad ids, tasks and flags are one-line errors; runs are compared task by
task; stream ranges are printed (or re-delivered to a debug group) without touching the
live groups, and a trimmed range is reported."""

from __future__ import annotations

from typing import Any

from redis.asyncio import Redis

from streamproc import Client, Keyspace, WorkflowState
from tests.cli_runner import TEST_AGENTS, at, run
from tests.conftest import Engine, eventually

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

FAILING = {
    "tasks": [
        {"id": "a", "agent": "echo", "input": "a"},
        {"id": "b", "agent": "poison", "needs": ["a"], "retries": 0},
        {"id": "c", "agent": "echo", "input": "c", "needs": ["b"]},
        {"id": "d", "agent": "echo", "input": "d", "needs": ["a"]},
    ]
}
GATED = {
    "tasks": [
        {"id": "a", "agent": "echo", "input": "a"},
        {"id": "b", "agent": "gate", "needs": ["a"]},
        {"id": "c", "agent": "echo", "input": "c", "needs": ["b"]},
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


async def finished_tasks(client: Client, workflow_id: str, *tasks: str) -> WorkflowState | None:
    """For ``eventually``: the workflow's state, once these tasks are done or failed."""
    state = await client.get(workflow_id)
    states = {t.id: t.state for t in state.tasks}
    return state if all(states[t] in ("done", "failed") for t in tasks) else None


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


async def test_a_failed_run_replays_from_the_record_with_its_failure_and_skips(
    engine: Engine, client: Client, redis_url: str, keyspace: Keyspace
) -> None:
    original = await client.wait(await client.submit(FAILING), timeout=20)
    assert {t.id: t.state for t in original.tasks}["b"] == "failed"
    result = await run("replay", "run", original.id, *at(redis_url, keyspace))
    assert result.code == 0, result
    assert f"no difference between {original.id} and " in result.out
    again = await client.get(await replayed_id(result.err))
    assert again.status == "failed"
    assert [(t.id, t.state, t.error) for t in again.tasks] == [
        (t.id, t.state, t.error) for t in original.tasks
    ]
    assert {t.agent for t in again.tasks} == {"replay"}


async def test_a_cancelled_run_replays_from_the_record_as_cancelled_for_the_same_reason(
    engine: Engine, client: Client, redis: Redis, redis_url: str, keyspace: Keyspace
) -> None:
    workflow_id = await client.submit(GATED)
    await eventually(lambda: executed(redis, workflow_id))  # b is running
    await client.cancel(workflow_id, "stopped by a person")
    await redis.rpush(f"open:{workflow_id}:b", 1)
    original = await eventually(lambda: finished_tasks(client, workflow_id, "b"))
    assert [t.state for t in original.tasks] == ["done", "done", "skipped"]
    result = await run("replay", "run", workflow_id, *at(redis_url, keyspace))
    assert result.code == 0, result
    assert f"no difference between {workflow_id} and " in result.out
    again = await client.get(await replayed_id(result.err))
    assert (again.status, again.reason) == ("cancelled", "stopped by a person")
    assert [t.state for t in again.tasks] == ["done", "done", "skipped"]
    assert await executed(redis, again.id) == []


async def test_a_failed_task_runs_live_from_it_or_with_live_and_the_diff_shows_the_change(
    engine: Engine, client: Client, redis: Redis, redis_url: str, keyspace: Keyspace
) -> None:
    engine.start_worker(("repairable",))
    fix = f"repaired:{keyspace.namespace}"
    spec: dict[str, Any] = {"tasks": [dict(t) for t in CHAIN["tasks"]]}
    spec["tasks"][1] = {"id": "b", "agent": "repairable", "input": {"fixed_by": fix},
                        "needs": ["a"], "retries": 0}  # fmt: skip
    original = await client.wait(await client.submit(spec), timeout=20)
    assert original.status == "failed"
    await redis.set(fix, 1)
    for flags in (["--from-task", "b"], ["--live"]):
        result = await run(
            "replay", "run", original.id, *flags, "--import", TEST_AGENTS,
            *at(redis_url, keyspace),
        )  # fmt: skip
        assert result.code == 0, result
        assert 'workflow status: "failed" -> "completed"' in result.out
        assert 'task b state: "failed" -> "done"' in result.out
        assert 'task c state: "skipped" -> "done"' in result.out
        again = await client.get(await replayed_id(result.err))
        assert again.status == "completed"


async def test_unknown_ids_and_tasks_and_contradictory_flags_are_refused_in_one_line(
    engine: Engine, client: Client, redis_url: str, keyspace: Keyspace
) -> None:
    original = await client.wait(await client.submit(CHAIN), timeout=20)
    refused = {
        "no-such-run": ["no-such-run"],
        "no-such-task": [original.id, "--from-task", "no-such-task"],
        "--live": [original.id, "--live", "--from-task", "b"],
        "--from-recorded": [original.id, "--from-recorded", "--live"],
        "--from-task": [original.id, "--from-recorded", "--from-task", "b"],
    }
    for named, args in refused.items():
        result = await run("replay", "run", *args, *at(redis_url, keyspace))
        assert result.code == 2, result
        assert len(result.err.splitlines()) == 1 and named in result.err, result
        assert result.out == ""


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
