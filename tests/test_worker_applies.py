"""A worker applies its own completions (``sp_resolve`` acknowledging the task entries they
answer), so a workflow's next tasks are published without a trip through the completion
stream and the resolver; with ``apply_completions=False`` it reports them to the completion
stream for the resolver, as before."""

from __future__ import annotations

from redis.asyncio import Redis

from streamproc import Client, Keyspace
from streamproc.store import calls, codec
from streamproc.store.codec import Acks
from tests.conftest import Engine, eventually, with_starts

CHAIN = {
    "tasks": [
        {"id": "a", "agent": "echo", "input": 1},
        {"id": "b", "agent": "echo", "needs": ["a"]},
        {"id": "c", "agent": "echo", "needs": ["b"]},
    ]
}


async def entries_added(redis: Redis, stream: str) -> int:
    """Every entry ever added to ``stream``, trimmed ones too (0: no stream)."""
    if not await redis.exists(stream):
        return 0
    return int((await redis.xinfo_stream(stream))["entries-added"])


async def pending(redis: Redis, stream: str, group: str) -> int:
    return int((await redis.xpending(stream, group))["pending"])


async def test_a_worker_alone_runs_a_chain_to_its_end_through_no_completion_stream(
    redis_url: str, keyspace: Keyspace, client: Client, redis: Redis
) -> None:
    engine = Engine(redis_url, keyspace)  # no resolver
    engine.start_worker(("echo",))
    try:
        state = await client.wait(await client.submit(CHAIN), timeout=20)
    finally:
        await engine.stop()
    assert state.status == "completed"
    assert state.results["c"] == {"input": None, "deps": {"b": {"input": None, "deps": {"a": 1}}}}
    assert await entries_added(redis, keyspace.done(0)) == 0
    assert await pending(redis, keyspace.tasks(0, "echo"), "echo") == 0
    history = [(e["kind"], e.get("task")) for e in with_starts(await client.history(state.id))]
    assert history == [
        ("submitted", None),
        *[(kind, t) for t in "abc" for kind in ("task_started", "task_done")],
        ("completed", None),
    ]


async def test_a_dependent_of_an_agent_the_worker_never_named_is_published_once_it_learns_it(
    redis_url: str, keyspace: Keyspace, client: Client, redis: Redis
) -> None:
    """The worker reads the shard's agents once; a workflow submitted later for a new agent
    stops its call at that agent, which it then learns, and the rest is applied."""
    engine = Engine(redis_url, keyspace)
    engine.start_worker(("echo",))
    try:
        await client.wait(await client.submit({"tasks": [{"id": "a", "agent": "echo"}]}), 20)
        spec = {
            "tasks": [
                {"id": "a", "agent": "echo", "input": 2},
                {"id": "b", "agent": "sleep", "needs": ["a"], "input": {"seconds": 0}},
            ]
        }
        workflow_id = await client.submit(spec)
        stream = keyspace.tasks(0, "sleep")

        async def published() -> bool:
            return bool(await redis.exists(stream)) and await redis.xlen(stream) == 1

        await eventually(published)
        state = await client.get(workflow_id)
        assert {t.id: t.state for t in state.tasks} == {"a": "done", "b": "queued"}
        engine.start_worker(("sleep",))
        assert (await client.wait(workflow_id, timeout=20)).status == "completed"
    finally:
        await engine.stop()
    assert await entries_added(redis, keyspace.done(0)) == 0


async def test_a_worker_told_not_to_apply_reports_to_the_resolver(
    redis_url: str, keyspace: Keyspace, client: Client, redis: Redis
) -> None:
    engine = Engine(redis_url, keyspace)
    engine.start_worker(("echo",), apply_completions=False)
    try:
        workflow_id = await client.submit(CHAIN)

        async def reported() -> bool:
            return await entries_added(redis, keyspace.done(0)) == 1

        await eventually(reported)
        state = await client.get(workflow_id)
        states = {t.id: t.state for t in state.tasks}
        assert states["a"] in {"queued", "running"}  # its start may ride with its report
        assert (states["b"], states["c"]) == ("waiting", "waiting")
        engine.start_resolver()
        assert (await client.wait(workflow_id, timeout=20)).status == "completed"
    finally:
        await engine.stop()
    assert await entries_added(redis, keyspace.done(0)) == 3


async def test_a_call_lacking_the_agent_of_a_completion_applies_nothing_and_names_it(
    redis: Redis, keyspace: Keyspace, client: Client
) -> None:
    """Applying a completion and acknowledging its entry need its agent's streams among the
    call's keys: without them the call stops there and names the agent, as for any agent it
    lacks, and the next call, naming it, applies the completion."""
    workflow_id = await client.submit({"tasks": [{"id": "a", "agent": "echo"}]})
    stream = keyspace.tasks(0, "echo")
    await redis.xgroup_create(stream, "echo", id="0")
    [[_, [(entry_id, fields)]]] = await redis.xreadgroup("echo", "w1", {stream: ">"}, count=1)
    event = codec.decode_task(entry_id, fields, "echo")
    completion = codec.completion_of(event, b"ok", b"1", 1, 2, "w1")
    retry = calls.Retry(10, 10, 1.0)
    args = calls.resolve_arguments(keyspace, 0, [], retry, [completion], Acks.TASKS)
    resolved = await calls.RESOLVE(redis, args)
    assert (resolved.consumed, resolved.missing) == (0, "echo")
    assert [t.state for t in (await client.get(workflow_id)).tasks] == ["queued"]
    assert await pending(redis, stream, "echo") == 1
    args = calls.resolve_arguments(keyspace, 0, ["echo"], retry, [completion], Acks.TASKS)
    assert (await calls.RESOLVE(redis, args)).consumed == 1
    assert (await client.get(workflow_id)).status == "completed"
    assert await pending(redis, stream, "echo") == 0
