"""Spawn: an agent grows its running workflow; the spawned tasks join in the step that records
its completion, and the tasks that needed it wait for them all (fan-in)."""

from __future__ import annotations

from typing import Any

from redis.asyncio import Redis

from streamproc import Client, ClientSettings, Keyspace, Limits
from streamproc.ops.history import snapshot
from streamproc.registry import registered
from streamproc.store.fields import WorkflowField
from streamproc.store.folded import hmget_many
from tests.conftest import Engine

QUERIES = [{"id": f"q{i}", "agent": "echo", "input": i} for i in range(3)]


def plan(
    spawn: list[dict[str, Any]], result: Any = "planned", as_specs: bool = False
) -> dict[str, Any]:
    """plan spawns ``spawn`` (as TaskSpec objects, or mappings); reduce was declared to need
    plan only."""
    planned = {"spawn": spawn, "result": result, "as_specs": as_specs}
    return {
        "tasks": [
            {"id": "plan", "agent": "planner", "input": planned},
            {"id": "reduce", "agent": "echo", "needs": ["plan"]},
        ]
    }


async def test_spawned_tasks_run_and_the_dependents_of_the_spawner_fan_in(
    engine: Engine, client: Client, redis: Redis
) -> None:
    workflow_id = await client.submit(plan(QUERIES, as_specs=True))
    state = await client.wait(workflow_id, timeout=20)
    assert state.status == "completed"
    tasks = {t.id: t for t in state.tasks}
    assert [t.id for t in state.tasks] == ["plan", "reduce", "q0", "q1", "q2"]
    assert {tasks[q].spawner for q in ("q0", "q1", "q2")} == {"plan"}
    assert tasks["q1"].needs == ["plan"]
    assert tasks["reduce"].needs == ["plan", "q0", "q1", "q2"]
    assert state.results["plan"] == "planned"
    deps = state.results["reduce"]["deps"]
    assert list(deps) == ["plan", "q0", "q1", "q2"]
    assert [deps[q]["input"] for q in ("q0", "q1", "q2")] == [0, 1, 2]
    assert deps["q1"]["deps"] == {"plan": "planned"}  # a spawned task receives its spawner's
    events = (await snapshot(redis, client.keyspace, workflow_id)).history
    spawned = [f for _, f in events if f[b"kind"] == b"tasks_spawned"]
    assert [(f[b"task"], f[b"tasks"]) for f in spawned] == [(b"plan", b"q0 q1 q2")]
    kinds = [f[b"kind"] for _, f in events]
    assert kinds.index(b"tasks_spawned") < kinds.index(b"task_done")


async def test_spawned_tasks_may_need_each_other_and_done_tasks_and_may_spawn(
    engine: Engine, client: Client, redis: Redis
) -> None:
    inner = [{"id": "deep", "agent": "ledger"}]  # an agent no declared task uses
    spawn = [
        {"id": "q1", "agent": "echo", "input": 1, "needs": ["q0", "first"]},
        {"id": "q0", "agent": "planner", "input": {"spawn": inner, "result": "q0 planned"}},
    ]
    spec = plan(spawn)
    spec["tasks"].insert(0, {"id": "first", "agent": "echo", "input": "first"})
    spec["tasks"][1]["needs"] = ["first"]
    state = await client.wait(await client.submit(spec), timeout=20)
    assert state.status == "completed"
    tasks = {t.id: t for t in state.tasks}
    assert tasks["deep"].spawner == "q0" and tasks["q0"].spawner == "plan"
    # q1 needed q0, so it waits for what q0 spawned too; reduce waits for all of them
    assert tasks["q1"].needs == ["plan", "q0", "first", "deep"]
    assert set(state.results["q1"]["deps"]) == {"plan", "q0", "first", "deep"}
    assert tasks["reduce"].needs == ["plan", "q0", "q1", "deep"]  # the spawn in need order
    assert b"ledger" in await redis.smembers(client.keyspace.agents(0))  # the shard serves it


async def refused(client: Client, redis: Redis, spec: dict[str, Any]) -> str:
    """Submit ``spec``, whose spawn is refused: the reason, the same in the workflow's failure,
    the spawner's dead letter and its history, where nothing was added."""
    state = await client.wait(await client.submit(spec), timeout=20)
    assert state.status == "failed"
    assert [t.id for t in state.tasks][-2:] == ["plan", "reduce"]  # nothing spawned
    tasks = {t.id: t for t in state.tasks}
    assert tasks["plan"].state == "failed" and tasks["reduce"].state == "skipped"
    [(_, dead)] = await redis.xrange(client.keyspace.dead(0, "planner"))
    reason = dead[b"reason"].decode()
    assert state.reason == f"task plan dead-lettered: {reason}"
    [record] = tasks["plan"].history
    assert record["error"] == reason and "\n" not in reason
    return reason


async def test_spawns_that_break_a_rule_add_nothing_and_fail_the_spawner(
    engine: Engine, client: Client, redis: Redis
) -> None:
    q0 = {"id": "q0", "agent": "echo"}
    assert await refused(client, redis, plan([{"id": "reduce", "agent": "echo"}])) == (
        "spawn from plan refused: task id 'reduce' already exists"
    )
    await redis.delete(client.keyspace.dead(0, "planner"))
    assert await refused(client, redis, plan([q0, q0])) == (
        "spawn from plan refused: duplicate task id 'q0'"
    )
    await redis.delete(client.keyspace.dead(0, "planner"))
    cycle = [{**q0, "needs": ["q1"]}, {"id": "q1", "agent": "echo", "needs": ["q0"]}]
    assert await refused(client, redis, plan(cycle)) == (
        "spawn from plan refused: cycle: q1 -> q0 -> q1"
    )
    await redis.delete(client.keyspace.dead(0, "planner"))
    reason = await refused(client, redis, plan([{"id": "q0", "agent": "nobody"}]))
    assert reason.startswith("spawn from plan refused: task 'q0': unknown agent 'nobody'")
    await redis.delete(client.keyspace.dead(0, "planner"))
    assert await refused(client, redis, plan([{**q0, "needs": ["reduce"]}])) == (
        "spawn from plan refused: task 'q0' needs 'reduce', which is not done"
    )
    await redis.delete(client.keyspace.dead(0, "planner"))
    assert await refused(client, redis, plan([{**q0, "colour": "red"}])) == (
        "spawn from plan refused: task 'q0': unknown keys ['colour']"
    )


async def test_spawns_past_the_workflow_limits_are_refused(
    engine: Engine, redis_url: str, keyspace: Keyspace, redis: Redis
) -> None:
    limits = Limits(max_tasks=4, max_input_bytes=400)
    settings = ClientSettings(keyspace=keyspace, limits=limits)
    async with Client(redis_url, settings, agents=registered()) as client:
        assert await refused(client, redis, plan(QUERIES)) == (
            "spawn from plan refused: 5 tasks would take the workflow past its limit of 4"
        )
        await redis.delete(client.keyspace.dead(0, "planner"))
        big = plan([{"id": "q0", "agent": "echo"}])
        big["tasks"][0]["input"]["pad"] = 500
        assert await refused(client, redis, big) == (
            "spawn from plan refused: task 'q0': input is 502 bytes, over the 400 limit"
        )
    settings = ClientSettings(keyspace=keyspace, limits=Limits(max_edges=5))
    async with Client(redis_url, settings, agents=registered()) as client:
        await redis.delete(client.keyspace.dead(0, "planner"))
        # 1 declared, 3 spawned tasks needing plan, and reduce waiting for each of them
        assert await refused(client, redis, plan(QUERIES)) == (
            "spawn from plan refused: 7 dependencies would take the workflow past its limit of 5"
        )


async def test_adjusting_a_spawner_supersedes_its_spawn_and_it_spawns_anew(
    engine: Engine, client: Client
) -> None:
    again = [{"id": "q0", "agent": "echo", "input": "new"}, {"id": "q2", "agent": "echo"}]
    spec = plan([{"id": "q0", "agent": "echo"}, {"id": "q1", "agent": "echo"}])
    spec["tasks"][1] = {
        "id": "reduce",
        "agent": "judge",
        "input": {"adjust": {"plan": {"spawn": again, "result": "again"}}},
        "needs": ["plan"],
    }
    workflow_id = await client.submit(spec)
    state = await client.wait(workflow_id, timeout=20)
    assert state.status == "completed", state.reason
    tasks = {t.id: t for t in state.tasks}
    assert [t.id for t in state.tasks] == ["plan", "reduce", "q0", "q1", "q2"]
    assert (tasks["plan"].attempt, state.results["plan"]) == (2, "again")
    assert (tasks["q1"].state, tasks["q1"].history[-1]["outcome"]) == ("superseded", "superseded")
    assert tasks["q1"].history[-1]["cause"] == "plan"
    assert (tasks["q0"].attempt, state.results["q0"]["input"]) == (2, "new")
    assert tasks["reduce"].needs == ["plan", "q0", "q2"]
    assert state.results["reduce"] == "weak"  # its second round was refused: the limit is 1
    [[edges]] = await hmget_many(
        client.redis, client.keyspace, [(workflow_id, [WorkflowField.EDGES])]
    )
    kept = [t for t in state.tasks if t.state != "superseded"]
    assert int(edges) == sum(len(t.needs) for t in kept)  # what the limit counts stays true
    history = await client.history(workflow_id)
    assert [(e["kind"], e.get("tasks")) for e in history if "tasks" in e] == [
        ("tasks_spawned", "q0 q1"),
        ("tasks_superseded", "q0 q1"),
        ("tasks_spawned", "q0 q2"),
    ]
