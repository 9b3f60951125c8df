"""Workflows of every shape complete, each task sees its dependencies' results."""

from __future__ import annotations

from redis.asyncio import Redis

from streamproc import Client, ClientSettings, Keyspace, TaskSpec, WorkflowSpec
from tests.conftest import Engine


def chain(n: int) -> WorkflowSpec:
    return WorkflowSpec(
        tasks=tuple(
            TaskSpec(id=f"t{i}", agent="echo", input=i, needs=(f"t{i - 1}",) if i else ())
            for i in range(n)
        )
    )


async def test_chain_passes_each_result_to_the_next(engine: Engine, client: Client) -> None:
    state = await client.wait(await client.submit(chain(4)), timeout=20)
    assert state.status == "completed"
    assert state.results["t0"] == 0
    assert state.results["t1"] == {"input": 1, "deps": {"t0": 0}}
    assert state.results["t3"]["deps"]["t2"]["deps"]["t1"]["input"] == 1


async def test_diamond_joins_both_branches(engine: Engine, client: Client) -> None:
    spec = {
        "tasks": [
            {"id": "a", "agent": "echo", "input": "a"},
            {"id": "b", "agent": "echo", "input": "b", "needs": ["a"]},
            {"id": "c", "agent": "echo", "input": "c", "needs": ["a"]},
            {"id": "d", "agent": "echo", "input": "d", "needs": ["b", "c"]},
        ]
    }
    state = await client.wait(await client.submit(spec), timeout=20)
    assert state.status == "completed"
    assert state.results["d"]["deps"] == {
        "b": {"input": "b", "deps": {"a": "a"}},
        "c": {"input": "c", "deps": {"a": "a"}},
    }
    by_id = {t.id: t for t in state.tasks}
    assert by_id["d"].began_ms >= max(by_id["b"].ended_ms, by_id["c"].ended_ms)


async def test_fan_out_of_a_thousand_then_fan_in(engine: Engine, client: Client) -> None:
    leaves = [
        {"id": f"leaf{i}", "agent": "echo", "input": i, "needs": ["root"]} for i in range(1000)
    ]
    spec = {
        "tasks": [
            {"id": "root", "agent": "echo", "input": "go"},
            *leaves,
            {
                "id": "join",
                "agent": "echo",
                "input": "sum",
                "needs": [leaf["id"] for leaf in leaves],
            },
        ]
    }
    state = await client.wait(await client.submit(spec), timeout=60)
    assert state.status == "completed"
    joined = state.results["join"]["deps"]
    assert len(joined) == 1000
    assert joined["leaf999"] == {"input": 999, "deps": {"root": "go"}}


async def test_many_workflows_in_one_batch_all_complete(engine: Engine, client: Client) -> None:
    ids = await client.submit_many([chain(3) for _ in range(200)])
    assert len(set(ids)) == 200
    for workflow_id in ids:
        assert (await client.wait(workflow_id, timeout=30)).status == "completed"


async def test_each_task_completes_exactly_once(
    engine: Engine, client: Client, redis: Redis, keyspace: Keyspace
) -> None:
    workflow_id = await client.submit(chain(5))
    await client.wait(workflow_id, timeout=20)
    events = await redis.xrange(keyspace.events(0))
    done = [
        f[b"task"]
        for _, f in events
        if f[b"wf"] == workflow_id.encode() and f[b"kind"] == b"task_done"
    ]
    assert sorted(done) == [b"t0", b"t1", b"t2", b"t3", b"t4"]
    kinds = [f[b"kind"] for _, f in events if f[b"wf"] == workflow_id.encode()]
    assert kinds[0] == b"submitted" and kinds[-1] == b"completed"


async def test_workflows_spread_over_shards_complete_and_keep_their_keys_in_their_shard(
    redis_url: str, keyspace: Keyspace, redis: Redis
) -> None:
    sharded = Keyspace(namespace=keyspace.namespace, shards=4)
    engine = Engine(redis_url, sharded)
    engine.start_resolver()
    engine.start_worker(("echo",))
    try:
        async with Client(redis_url, ClientSettings(keyspace=sharded)) as client:
            ids = [await client.submit(chain(3)) for _ in range(24)]
            states = [await client.wait(wf, timeout=20) for wf in ids]
    finally:
        await engine.stop()
    assert all(s.status == "completed" for s in states)
    assert {s.results["t2"]["deps"]["t1"]["input"] for s in states} == {1}
    used = {sharded.shard_of(wf) for wf in ids}
    assert len(used) >= 2, used  # 24 random ids land on more than one of 4 shards
    for shard in sharded.all_shards():
        ours = [wf for wf in ids if sharded.shard_of(wf) == shard]
        events = await redis.xrange(sharded.events(shard))
        finished = {f[b"wf"].decode() for _, f in events if f[b"kind"] == b"completed"}
        assert finished == set(ours)
        tag = "{" + f"{sharded.namespace}:{shard}" + "}"
        assert all(sharded.workflow(wf).startswith(tag) for wf in ours)
