"""Streamed output: chunks an agent emits while it runs reach ``Client.follow``, ``streamproc
events --workflow`` and the API's event stream as ``output`` events, in order, with task and
attempt, marked when their attempt was superseded; the output stream is bounded and expires
with its workflow."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, cast

import orjson
import pytest
from redis.asyncio import Redis

from streamproc import Client, ClientSettings, Keyspace, PermanentError, Task, agent
from streamproc.errors import EmitRefused
from streamproc.http.auth import ApiSettings
from streamproc.ops import deadletters
from streamproc.outbound.http import close_session
from streamproc.outbound.llm import LLMClient, LLMSettings
from streamproc.store.chunks import MAX_CHUNK_BYTES, MAX_CHUNKS
from streamproc.testing.fakes import Behaviour, Fakes
from tests.cli_runner import at, run
from tests.conftest import Engine, eventually
from tests.http_helpers import AUTH, Http, serving, sse_frames

GATES: dict[str, asyncio.Event] = {}
LLM: list[LLMClient] = []  # the client the poet agent asks, set by its test
CHUNKS = ["Hel", "lo", {"tokens": 2}]


def gate(workflow_id: str) -> asyncio.Event:
    return GATES.setdefault(workflow_id, asyncio.Event())


@agent("talker")
async def talker(task: Task) -> Any:
    """Emit input['chunks'] (after the test opens the gate, when input['gated']), and return
    (when input['hold'], once the test opens the gate ``<wf>:end``)."""
    if task.input.get("gated"):
        await gate(task.workflow).wait()
    for chunk in task.input["chunks"]:
        await task.emit(chunk)
    if task.input.get("hold"):
        await gate(f"{task.workflow}:end").wait()
    return "said"


@agent("sync_talker")
def sync_talker(task: Task) -> Any:
    """A plain function agent, in a thread: emits with emit_sync."""
    for chunk in task.input["chunks"]:
        task.emit_sync(chunk)
    return "said"


@agent("second_try")
async def second_try(task: Task) -> Any:
    """Emit a chunk naming the attempt; fail the first attempt."""
    await task.emit(f"attempt {task.attempt}")
    if task.attempt == 1:
        raise RuntimeError("first attempt fails")
    return task.attempt


@agent("overflow")
async def overflow(task: Task) -> Any:
    """Try the bounds: a chunk too big, one that is no JSON, then one chunk too many."""
    refusals = []
    for bad in ("x" * MAX_CHUNK_BYTES, {1, 2}):
        try:
            await task.emit(bad)
        except EmitRefused as exc:
            refusals.append(str(exc))
    for n in range(MAX_CHUNKS):
        await task.emit(n)
    try:
        await task.emit("one too many")
    except EmitRefused as exc:
        refusals.append(str(exc))
    return refusals


MENDED: set[str] = set()  # workflows whose mendable task works now


@agent("mendable")
async def mendable(task: Task) -> Any:
    """Emit, then fail for good until the test mends the workflow."""
    await task.emit(f"try {task.attempt}")
    if task.workflow not in MENDED:
        raise PermanentError("broken until mended")
    return "mended"


@agent("poet")
async def poet(task: Task) -> Any:
    """Ask the LLM, streaming its answer to the task's output."""
    return await LLM[0].ask(task.input["prompt"], emit=task.emit)


@pytest.fixture
async def talking(redis_url: str, keyspace: Keyspace) -> AsyncIterator[Engine]:
    running = Engine(redis_url, keyspace)
    running.start_resolver()
    agents = ("talker", "sync_talker", "second_try", "overflow", "poet", "mendable")
    running.start_worker(agents)
    yield running
    await running.stop()


def spec(agent_name: str, **task_input: Any) -> dict[str, Any]:
    return {
        "tasks": [
            {"id": "say", "agent": agent_name, "input": task_input, "retries": 1},
            {"id": "then", "agent": "talker", "input": {"chunks": []}, "needs": ["say"]},
        ]
    }


async def blocked_follower(redis: Redis) -> bool:
    """A client waits in XREAD: the follower has its starting point."""
    clients = cast(list[dict[str, Any]], await redis.client_list())
    return any(c.get("cmd") == "xread" and "b" in str(c.get("flags")) for c in clients)


def outputs(events: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    return [
        (e["task"], e["att"], e["seq"], e["format"], e["chunk"], e["superseded"])
        for e in events
        if e["kind"] == "output"
    ]


async def test_client_follow_gets_the_chunks_in_order_before_the_task_ends(
    talking: Engine, client: Client, redis: Redis
) -> None:
    workflow_id = await client.submit(spec("talker", chunks=CHUNKS, gated=True))
    events: list[dict[str, Any]] = []

    async def follow() -> None:
        async for event in client.follow(workflow_id):
            events.append(event)

    following = asyncio.create_task(follow())
    await eventually(lambda: blocked_follower(redis))
    gate(workflow_id).set()
    await asyncio.wait_for(following, 20)
    assert outputs(events) == [
        ("say", "1", "0", "text", "Hel", False),
        ("say", "1", "1", "text", "lo", False),
        ("say", "1", "2", "json", {"tokens": 2}, False),
    ]
    kinds = [(e["kind"], e.get("task")) for e in events]
    assert kinds.index(("output", "say")) < kinds.index(("task_done", "say"))
    assert kinds[-1] == ("completed", None)


async def test_a_plain_function_agent_emits_with_emit_sync(
    talking: Engine, client: Client, redis_url: str, keyspace: Keyspace
) -> None:
    workflow_id = await client.submit(spec("sync_talker", chunks=CHUNKS))
    assert (await client.wait(workflow_id, timeout=20)).status == "completed"
    result = await run("events", "--workflow", workflow_id, "--json", *at(redis_url, keyspace))
    assert result.code == 0, result
    events = [orjson.loads(line) for line in result.out.splitlines()]
    assert outputs(events) == [
        ("say", "1", "0", "text", "Hel", False),
        ("say", "1", "1", "text", "lo", False),
        ("say", "1", "2", "json", {"tokens": 2}, False),
    ]
    ids = [tuple(map(int, e["id"].split("-"))) for e in events]
    assert ids == sorted(ids)  # merged with the lifecycle events by time
    kinds = [e["kind"] for e in events]
    assert kinds.index("output") > kinds.index("task_started")  # the start is written first
    assert kinds.index("output") < kinds.index("task_done") and kinds[-1] == "completed"


async def test_chunks_of_a_superseded_attempt_are_marked(
    talking: Engine, client: Client, redis_url: str, keyspace: Keyspace
) -> None:
    workflow_id = await client.submit(spec("second_try"))
    assert (await client.wait(workflow_id, timeout=20)).status == "completed"
    result = await run("events", "--workflow", workflow_id, "--json", *at(redis_url, keyspace))
    assert result.code == 0, result
    events = [orjson.loads(line) for line in result.out.splitlines()]
    assert outputs(events) == [
        ("say", "1", "0", "text", "attempt 1", True),
        ("say", "2", "0", "text", "attempt 2", False),
    ]
    steps = [(e["kind"], e.get("att")) for e in events]
    for attempt in ("1", "2"):  # each attempt's chunk between its start and its end
        started = steps.index(("task_started", attempt))
        assert started < steps.index(("output", attempt)) < started + 3
    text = await run("events", "--workflow", workflow_id, *at(redis_url, keyspace))
    lines = [line for line in text.out.splitlines() if " output " in line]
    assert lines[0].endswith('chunk="attempt 1" superseded') and "superseded" not in lines[1]


async def test_a_chunk_too_big_not_json_or_one_too_many_is_refused_with_a_clear_error(
    talking: Engine, client: Client, redis: Redis, keyspace: Keyspace, redis_url: str
) -> None:
    workflow_id = await client.submit(spec("overflow"))
    state = await client.wait(workflow_id, timeout=20)
    assert state.status == "completed"
    too_big, not_json, too_many = state.results["say"]
    assert too_big.startswith("chunk too large: 65538 bytes as JSON, over the 65536-byte bound")
    assert not_json.startswith("chunk is not JSON-serialisable")
    assert too_many == "task say attempt 1 already emitted 10000 chunks, the most one attempt may"
    length = await redis.xlen(keyspace.output(workflow_id))
    assert MAX_CHUNKS <= length < MAX_CHUNKS + 200  # capped: MAXLEN ~
    # Read in batches of 1,000 a stream, merged with the history: none lost, none out of order.
    result = await run("events", "--workflow", workflow_id, "--json", *at(redis_url, keyspace))
    events = [orjson.loads(line) for line in result.out.splitlines()]
    seqs = [int(e["seq"]) for e in events if e["kind"] == "output"]
    assert len(seqs) == length and seqs == sorted(seqs)
    kinds = [e["kind"] for e in events]
    assert kinds.index("task_done") > max(i for i, k in enumerate(kinds) if k == "output")
    assert kinds[-1] == "completed"


async def test_the_output_stream_expires_with_its_workflow(
    talking: Engine, redis_url: str, keyspace: Keyspace, redis: Redis
) -> None:
    """Until its workflow ends, a stream expires at the latest 14 days after its first chunk
    (so a chunk written after the end never lingers); the end gives it the workflow's ttl."""
    settings = ClientSettings(keyspace=keyspace, workflow_ttl=60)
    async with Client(redis_url, settings) as client:
        workflow_id = await client.submit(spec("talker", chunks=["a"], gated=True, hold=True))
        output = keyspace.output(workflow_id)
        gate(workflow_id).set()
        await eventually(lambda: redis.exists(output))
        assert 60_000 < await redis.pttl(output) <= 14 * 24 * 3600 * 1000
        gate(f"{workflow_id}:end").set()
        assert (await client.wait(workflow_id, timeout=20)).status == "completed"
    ttl = await redis.pttl(output)
    assert 0 < ttl <= 60_000
    assert abs(ttl - await redis.pttl(keyspace.workflow(workflow_id))) < 1000


async def test_a_requeued_workflows_output_stream_no_longer_expires_with_its_failure(
    talking: Engine, redis_url: str, keyspace: Keyspace, redis: Redis
) -> None:
    settings = ClientSettings(keyspace=keyspace, workflow_ttl=60)
    async with Client(redis_url, settings) as client:
        workflow_id = await client.submit({"tasks": [{"id": "fix", "agent": "mendable"}]})
        assert (await client.wait(workflow_id, timeout=20)).status == "failed"
        output = keyspace.output(workflow_id)
        assert 0 < await redis.pttl(output) <= 60_000
        (dead,) = await deadletters.list_dead(redis, keyspace, "mendable")
        MENDED.add(workflow_id)
        await deadletters.requeue(redis, keyspace, "mendable", dead.entry_id)
        ttl = await redis.pttl(output)  # none, or the bound a new chunk set: not the failure's
        assert ttl == -1 or ttl > 60_000
        assert (await client.wait(workflow_id, timeout=20)).status == "completed"
    assert 0 < await redis.pttl(output) <= 60_000


def test_outside_a_worker_emit_only_checks_the_chunk() -> None:
    task = Task("wf", "t", 1, None, {})
    asyncio.run(task.emit("fine"))
    task.emit_sync({"also": "fine"})
    with pytest.raises(EmitRefused, match="not JSON-serialisable"):
        task.emit_sync({1, 2})


async def test_output_events_reach_the_api_event_stream(talking: Engine, client: Client) -> None:
    workflow_id = await client.submit(spec("second_try"))
    assert (await client.wait(workflow_id, timeout=20)).status == "completed"
    http: Http
    async with serving(client, ApiSettings()) as http:
        response = await http.get(f"/workflows/{workflow_id}/events", headers=AUTH)
        async with asyncio.timeout(20):
            frames = sse_frames(await response.text())
        chunks = [orjson.loads(f["data"]) for f in frames if f["event"] == "output"]
        assert [(c["att"], c["chunk"], c["superseded"]) for c in chunks] == [
            ("1", "attempt 1", True),
            ("2", "attempt 2", False),
        ]
        assert frames[-1]["event"] == "completed"
        ids = [f["id"] for f in frames]
        assert len(set(ids)) == len(ids)
        at_output = next(i for i, f in enumerate(frames) if f["event"] == "output")
        resumed = await http.get(
            f"/workflows/{workflow_id}/events",
            headers={**AUTH, "Last-Event-ID": frames[at_output]["id"]},
        )
        async with asyncio.timeout(20):
            assert sse_frames(await resumed.text()) == frames[at_output + 1 :]


async def test_an_llm_answer_streams_to_the_output_through_the_stand_in(
    talking: Engine, client: Client, redis_url: str, keyspace: Keyspace
) -> None:
    async with Fakes(retry_after=0) as fakes:
        settings = LLMSettings.from_env(fakes.env())
        assert settings is not None
        LLM[:] = [LLMClient(settings)]
        try:
            workflow_id = await client.submit(spec("poet", prompt="redis streams"))
            state = await client.wait(workflow_id, timeout=20)
            fakes.llm.script(Behaviour.BROKEN_STREAM)
            task = {"id": "say", "agent": "poet", "input": {"prompt": "q"}, "retries": 0}
            failed = await client.wait(await client.submit({"tasks": [task]}), timeout=20)
        finally:
            await close_session()
    assert state.status == "completed"
    result = await run("events", "--workflow", workflow_id, "--json", *at(redis_url, keyspace))
    events = [orjson.loads(line) for line in result.out.splitlines()]
    chunks = [e["chunk"] for e in events if e["kind"] == "output"]
    assert len(chunks) > 5 and "".join(chunks) == state.results["say"]
    assert failed.status == "failed"
    assert failed.tasks[0].error == "MalformedReply: llm: stream chunk 4 is not JSON"


async def test_submit_wait_prints_each_chunk_as_it_comes(
    talking: Engine, redis_url: str, keyspace: Keyspace, tmp_path: Path
) -> None:
    flow = tmp_path / "flow.json"
    flow.write_bytes(orjson.dumps(spec("talker", chunks=CHUNKS)))
    result = await run("submit", str(flow), "--wait", *at(redis_url, keyspace))
    assert result.code == 0, result
    shown = [line.split(None, 3)[1:] for line in result.err.splitlines() if " output " in line]
    assert shown == [
        ["output", "say", '"Hel"'],
        ["output", "say", '"lo"'],
        ["output", "say", '{"tokens":2}'],
    ]
