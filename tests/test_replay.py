"""Replay for debugging: a past run re-run from its recorded results reproduces it exactly,
failures, skips and cancellation included; from a task on, only that task and what depends
on it run again; bad ids, tasks and flags are one-line errors; runs are compared task by
task; stream ranges are printed (or re-delivered to a debug group) without touching the
live groups, and a trimmed range is reported."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from typing import Any

import orjson
from redis.asyncio import Redis

from streamproc import Client, Keyspace, WorkflowState
from streamproc.engine.resolver import Resolver
from streamproc.ops.deadletters import list_dead
from streamproc.store.keys import RESOLVER_GROUP
from tests.cli_runner import TEST_AGENTS, assert_one_line_error, at, run
from tests.conftest import ALL_AGENTS, Engine, eventually, fast_resolver

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


async def trimmed_below(redis: Redis, stream: str, entry: str) -> bool:
    """For ``eventually``: nothing older than ``entry`` is left ("+": than the newest)."""
    if entry == "+":
        newest = await redis.xrevrange(stream, count=1)
        entry = newest[0][0].decode() if newest else "0-0"
    return not await redis.xrange(stream, "-", f"({entry}")


async def group_names(redis: Redis, stream: str, names: list[str]) -> bool:
    """For ``eventually``: the stream's groups are exactly ``names``."""
    return [g["name"].decode() for g in await redis.xinfo_groups(stream)] == names


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
    assert "Traceback" not in result.err and "failed for good" not in result.err, result.err
    again = await client.get(await replayed_id(result.err))
    assert again.status == "failed"
    assert [(t.id, t.state, t.error) for t in again.tasks] == [
        (t.id, t.state, t.error) for t in original.tasks
    ]
    assert {t.agent for t in again.tasks} == {"replay"}
    # Its failure went through a dead letter (only a dead letter fails a workflow so),
    # deleted once the replay ended: requeuing it would resume the replay with no worker
    # serving "replay".  (The emptied stream itself may go: the resolver prunes an agent
    # nothing uses any more.)
    assert again.reason.startswith("task b dead-lettered: "), again.reason
    assert [d.workflow for d in await list_dead(client.redis, keyspace, "poison")] == [original.id]
    assert await list_dead(client.redis, keyspace, "replay") == []


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
        "no task '' in the recorded workflow": [original.id, "--from-task", ""],
        "--live": [original.id, "--live", "--from-task", "b"],
        "--from-recorded": [original.id, "--from-recorded", "--live"],
        "--from-task": [original.id, "--from-recorded", "--from-task", "b"],
        "cannot run agent ledger here": [original.id, "--live"],  # no --import
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
        "replay", "stream", "--agent", "echo", "--workflow", first.id, "--group", "debug-1",
        *at(redis_url, keyspace),
    )  # fmt: skip
    assert result.code == 0, result
    printed = result.out.splitlines()
    assert len(printed) == 4 and all(f'"wf":"{first.id}"' in line for line in printed)
    groups = {g["name"].decode(): g for g in await redis.xinfo_groups(stream)}
    live_after = [g for name, g in groups.items() if name != "debug-1"]
    assert live_after == live_before
    redelivered = await redis.xreadgroup("debug-1", "me", {stream: ">"}, count=100)
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
    assert f"trimmed: entries before {entries[2][0].decode()} (" in result.err
    assert "are gone (2 of 4 ever added)" in result.err
    assert len(result.out.splitlines()) == 2


async def test_a_range_with_no_entries_says_so(
    redis: Redis, redis_url: str, keyspace: Keyspace
) -> None:
    stream = keyspace.tasks(0, "echo")
    await redis.xadd(stream, {"v": "1"}, id="5-0")
    args = ["replay", "stream", "--agent", "echo", "--start", "6"]
    result = await run(*args, *at(redis_url, keyspace))
    assert (result.code, result.out) == (0, ""), result
    assert result.err == f"no entry in {stream} from 6 to +\n"


async def test_a_past_runs_entries_outlive_trimming_within_the_retention_window(
    client: Client, redis: Redis, redis_url: str, keyspace: Keyspace
) -> None:
    done = keyspace.done(0)
    await redis.xadd(done, {"v": "1"}, id="1000-0")  # an entry from long ago, out of the window
    await redis.xgroup_create(done, RESOLVER_GROUP, id="$")
    running = Engine(redis_url, keyspace)
    settings = replace(fast_resolver(keyspace), stream_retention=3600.0)
    running.tasks.append(
        asyncio.create_task(Resolver(running.redis, settings).run(running.stop_event))
    )
    running.start_worker(ALL_AGENTS, apply_completions=False)  # its completions kept in done
    try:
        first = await client.wait(await client.submit(DIAMOND), timeout=20)
        await eventually(lambda: trimmed_below(redis, done, "1000-0"))  # a trim pass ran
        result = await run(
            "replay", "stream", "--agent", "echo", "--workflow", first.id, *at(redis_url, keyspace)
        )
        assert result.code == 0, result
        assert len(result.out.splitlines()) == 4
        completions = await run(
            "replay", "stream", "--workflow", first.id, *at(redis_url, keyspace)
        )
        assert len(completions.out.splitlines()) == 4
    finally:
        await running.stop()


async def test_without_retention_the_notice_says_what_was_trimmed_from_a_past_run(
    engine: Engine, client: Client, redis: Redis, redis_url: str, keyspace: Keyspace
) -> None:
    stream = keyspace.tasks(0, "echo")
    first = await client.wait(await client.submit(DIAMOND), timeout=20)
    await client.wait(await client.submit(DIAMOND), timeout=20)
    await eventually(lambda: trimmed_below(redis, stream, "+"))  # all but the newest entry
    info = await redis.xinfo_stream(stream)
    gone = info["entries-added"] - info["length"]
    result = await run(
        "replay", "stream", "--agent", "echo", "--workflow", first.id, *at(redis_url, keyspace)
    )
    assert result.code == 0, result
    assert result.out == ""
    first_left = info["first-entry"][0].decode()
    assert f"trimmed: entries before {first_left} (" in result.err
    assert f"are gone ({gone} of 8 ever added)" in result.err
    assert f"no entry of workflow {first.id} in {stream}" in result.err


async def test_debug_groups_are_listed_by_status_dropped_by_name_and_need_the_prefix(
    engine: Engine, client: Client, redis: Redis, redis_url: str, keyspace: Keyspace
) -> None:
    stream = keyspace.tasks(0, "echo")
    await client.wait(await client.submit(DIAMOND), timeout=20)
    made = await run(
        "replay", "stream", "--agent", "echo", "--group", "debug-me", *at(redis_url, keyspace)
    )
    assert made.code == 0, made
    again = await run(
        "replay", "stream", "--agent", "echo", "--group", "debug-me", *at(redis_url, keyspace)
    )
    assert_one_line_error(again, f"error: debug group debug-me already exists on {stream}: ")
    assert again.code == 2
    listed = await run("status", *at(redis_url, keyspace))
    assert listed.code == 0, listed
    row = next(line for line in listed.out.splitlines() if "debug-me" in line)
    assert stream in row and row.split()[-1].endswith("s")  # idle time
    as_json = await run("status", "--json", *at(redis_url, keyspace))
    groups = [orjson.loads(line) for line in as_json.out.splitlines() if "debug_group" in line]
    assert [(g["debug_group"], g["stream"]) for g in groups] == [("debug-me", stream)]
    dropped = await run(
        "replay", "stream", "--agent", "echo", "--drop-group", "debug-me", *at(redis_url, keyspace)
    )
    assert dropped.code == 0, dropped
    assert [g["name"] for g in await redis.xinfo_groups(stream)] == [b"echo"]
    for flag in ("--group", "--drop-group"):
        refused = await run(
            "replay", "stream", "--agent", "echo", flag, "echo", *at(redis_url, keyspace)
        )
        assert refused.code == 2 and len(refused.err.splitlines()) == 1, refused
        assert "debug-" in refused.err
    again = await run(
        "replay", "stream", "--agent", "echo", "--drop-group", "debug-me", *at(redis_url, keyspace)
    )
    assert again.code == 2 and len(again.err.splitlines()) == 1, again


async def test_an_idle_debug_group_expires_and_stops_holding_back_trimming(
    client: Client, redis: Redis, redis_url: str, keyspace: Keyspace
) -> None:
    stream = keyspace.tasks(0, "echo")
    running = Engine(redis_url, keyspace)
    settings = replace(fast_resolver(keyspace), debug_group_idle=1.0)
    running.tasks.append(
        asyncio.create_task(Resolver(running.redis, settings).run(running.stop_event))
    )
    running.start_worker(ALL_AGENTS)
    try:
        await client.wait(await client.submit(DIAMOND), timeout=20)
        made = await run(
            "replay", "stream", "--agent", "echo", "--group", "debug-old", *at(redis_url, keyspace)
        )
        assert made.code == 0, made
        await client.wait(await client.submit(DIAMOND), timeout=20)
        await eventually(lambda: group_names(redis, stream, ["echo"]))
        await eventually(lambda: trimmed_below(redis, stream, "+"))
    finally:
        await running.stop()


async def test_a_grown_run_replays_from_the_record_spawning_and_mapping_the_same_graph(
    engine: Engine, client: Client, redis: Redis, redis_url: str, keyspace: Keyspace
) -> None:
    nested = [{"id": "deep", "agent": "ledger"}]
    spawn = [
        {"id": "q0", "agent": "planner", "input": {"spawn": nested, "result": [1, 2]}},
        {"id": "q1", "agent": "ledger", "needs": ["q0"]},
        {"id": "each", "agent": "echo", "map": "q0", "needs": ["q0"]},
    ]
    spec = {
        "tasks": [
            {"id": "plan", "agent": "planner", "input": {"spawn": spawn, "result": "p"}},
            {"id": "reduce", "agent": "ledger", "needs": ["plan"]},
        ]
    }
    original = await client.wait(await client.submit(spec), timeout=20)
    assert original.status == "completed", original.reason
    assert {"q0", "q1", "deep", "each", "each[0]", "each[1]"} <= {t.id for t in original.tasks}
    result = await run("replay", "run", original.id, *at(redis_url, keyspace))
    assert result.code == 0, result
    assert f"no difference between {original.id} and " in result.out
    again = await client.get(await replayed_id(result.err))
    assert again.results == original.results
    assert {t.id: (t.needs, t.spawner) for t in again.tasks} == {
        t.id: (t.needs, t.spawner) for t in original.tasks
    }
    assert {t.agent for t in again.tasks} == {"replay"}
    assert await executed(redis, again.id) == []


async def test_a_run_whose_spawn_was_superseded_replays_its_final_graph(
    engine: Engine, client: Client, redis_url: str, keyspace: Keyspace
) -> None:
    again = [{"id": "q2", "agent": "echo"}]
    spec = {
        "tasks": [
            {"id": "plan", "agent": "planner", "input": {"spawn": [{"id": "q1", "agent": "echo"}]}},
            {
                "id": "reduce",
                "agent": "judge",
                "input": {"adjust": {"plan": {"spawn": again, "result": "again"}}},
                "needs": ["plan"],
            },
        ]
    }
    original = await client.wait(await client.submit(spec), timeout=20)
    assert {t.id: t.state for t in original.tasks}["q1"] == "superseded"
    result = await run("replay", "run", original.id, *at(redis_url, keyspace))
    assert result.code == 0, result
    assert f"no difference between {original.id} and " in result.out
    again_state = await client.get(await replayed_id(result.err))
    assert [t.id for t in again_state.tasks] == ["plan", "reduce", "q2"]


async def test_live_replay_of_a_grown_run_runs_its_spawners_live(
    engine: Engine, client: Client, redis: Redis, redis_url: str, keyspace: Keyspace
) -> None:
    spawn = [{"id": "q0", "agent": "ledger"}]
    spec = {
        "tasks": [
            {"id": "plan", "agent": "planner", "input": {"spawn": spawn}},
            {"id": "reduce", "agent": "ledger", "needs": ["plan"]},
        ]
    }
    original = await client.wait(await client.submit(spec), timeout=20)
    result = await run(
        "replay", "run", original.id, "--live", "--import", "tests.agents_for_tests",
        *at(redis_url, keyspace),
    )  # fmt: skip
    assert result.code == 0, result
    again = await client.get(await replayed_id(result.err))
    assert sorted(await executed(redis, again.id)) == ["plan", "q0", "reduce"]
    assert {t.id: (t.agent, t.spawner) for t in again.tasks} == {
        "plan": ("planner", ""),
        "reduce": ("ledger", ""),
        "q0": ("ledger", "plan"),
    }


async def test_replay_from_a_spawned_task_runs_it_and_its_downstream_live(
    engine: Engine, client: Client, redis: Redis, redis_url: str, keyspace: Keyspace
) -> None:
    spawn = [{"id": "q0", "agent": "ledger"}, {"id": "q1", "agent": "ledger", "needs": ["q0"]}]
    spec = {
        "tasks": [
            {"id": "plan", "agent": "planner", "input": {"spawn": spawn}},
            {"id": "side", "agent": "ledger", "needs": ["plan"]},
        ]
    }
    original = await client.wait(await client.submit(spec), timeout=20)
    result = await run(
        "replay", "run", original.id, "--from-task", "q1", "--import", "tests.agents_for_tests",
        *at(redis_url, keyspace),
    )  # fmt: skip
    assert result.code == 0, result
    again = await client.get(await replayed_id(result.err))
    assert again.status == "completed"
    assert sorted(await executed(redis, again.id)) == ["q1", "side"]  # side waits for q1
    agents = {t.id: t.agent for t in again.tasks}
    assert agents == {"plan": "replay", "side": "ledger", "q0": "replay", "q1": "ledger"}


async def test_a_range_that_cannot_hold_an_entry_or_contradicting_group_options_are_refused(
    redis_url: str, keyspace: Keyspace
) -> None:
    where = at(redis_url, keyspace)
    backwards = await run("replay", "stream", "--start", "5", "--end", "1", *where)
    assert_one_line_error(backwards, "error: --start 5 is after --end 1: no entry lies between")
    both = await run("replay", "stream", "--group", "debug-x", "--drop-group", "debug-x", *where)
    assert_one_line_error(both, "error: --drop-group removes a group: it takes no --group")
    assert backwards.code == both.code == 2
    # An end given as milliseconds alone takes each entry of that millisecond.
    same_ms = await run("replay", "stream", "--start", "5-3", "--end", "5", *where)
    assert "is after" not in same_ms.err, same_ms
