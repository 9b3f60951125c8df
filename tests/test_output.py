"""Streamed output as written: chunks an agent emits are bounded in size and count, the
output stream is capped and expires with its workflow (and no longer once a requeue resumes
it), and outside a worker emit only checks the chunk."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import orjson
import pytest
from redis.asyncio import Redis

from streamproc import Client, ClientSettings, Keyspace, Task
from streamproc.errors import EmitRefused
from streamproc.ops import deadletters
from streamproc.store.chunks import MAX_CHUNKS
from tests.cli_runner import at, run
from tests.conftest import Engine, eventually
from tests.output_agents import MENDED, gate, spec, talking_engine


@pytest.fixture
async def talking(redis_url: str, keyspace: Keyspace) -> AsyncIterator[Engine]:
    async with talking_engine(redis_url, keyspace) as running:
        yield running


async def test_a_chunk_too_big_not_json_or_one_too_many_is_refused_with_a_clear_error(
    talking: Engine, client: Client, redis: Redis, keyspace: Keyspace, redis_url: str
) -> None:
    workflow_id = await client.submit(spec("overflow"))
    state = await client.wait(workflow_id, timeout=20)
    assert state.status == "completed"
    too_big, not_json, too_many = state.results["say"]
    assert too_big.startswith("chunk too large: 65538 bytes as JSON, over the 65536-byte bound")
    assert not_json.startswith("chunk is not JSON-serialisable")
    assert too_many == (
        "task say attempt 1 already emitted 10000 chunks, the most one attempt may emit"
    )
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
    assert abs(ttl - await redis.pttl(keyspace.past(workflow_id))) < 1000  # stowed there


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
    with pytest.raises(EmitRefused, match="NaN and Infinity are not JSON numbers"):
        task.emit_sync({"tokens": [1.5, None, float("nan")]})
