"""``streamproc events`` follows lifecycle events: one workflow's until its end, or every
shard's until interrupted."""

from __future__ import annotations

import asyncio
import signal

import orjson
from redis.asyncio import Redis

from streamproc import Client, ClientSettings, Keyspace
from tests.cli_runner import STREAMPROC, TIMEOUT, at, cli_env, run
from tests.conftest import Engine, eventually, with_starts

GATED = {
    "tasks": [
        {"id": "a", "agent": "gate"},
        {"id": "b", "agent": "echo", "needs": ["a"]},
    ]
}
KINDS = ["submitted", "task_started", "task_done", "task_started", "task_done", "completed"]


async def test_events_of_a_workflow_are_printed_in_order_and_the_command_exits_at_its_end(
    engine: Engine, client: Client, redis: Redis, keyspace: Keyspace, redis_url: str
) -> None:
    workflow_id = await client.submit(GATED)
    following = asyncio.create_task(
        run("events", "--workflow", workflow_id, "--json", *at(redis_url, keyspace))
    )
    await eventually(lambda: redis.llen(f"ledger:{workflow_id}"))
    await redis.rpush(f"open:{workflow_id}:a", 1)
    result = await following
    assert result.code == 0, result
    printed = [orjson.loads(line) for line in result.out.splitlines()]
    events = with_starts(printed)
    assert [e["kind"] for e in events] == KINDS
    assert [e.get("task") for e in events] == [None, "a", "a", "b", "b", None]
    assert {e["wf"] for e in events} == {workflow_id}

    again = await run("events", "--workflow", workflow_id, *at(redis_url, keyspace))
    assert again.code == 0, again
    lines = again.out.splitlines()
    assert [line.split()[2] for line in lines] == [e["kind"] for e in printed]
    assert lines[1].split()[3:6] == [workflow_id, "a", "1"] and "by=" in lines[1]


async def test_events_of_an_unknown_workflow_is_a_one_line_error(
    redis_url: str, keyspace: Keyspace
) -> None:
    result = await run("events", "--workflow", "nope", *at(redis_url, keyspace))
    assert result.code == 1 and result.err == "error: workflow 'nope' not found\n", result


async def test_events_follows_every_shard_and_exits_zero_on_ctrl_c(
    redis_url: str, keyspace: Keyspace
) -> None:
    sharded = Keyspace(keyspace.namespace, shards=2)
    ids = ["w0", "w1", "w4", "w5"]
    assert [sharded.shard_of(i) for i in ids] == [0, 0, 1, 1]
    async with Client(redis_url, ClientSettings(keyspace=sharded)) as client:
        for workflow_id in ids:
            await client.submit({"tasks": [{"id": "a", "agent": "echo"}]}, workflow_id)
    args = ["events", "--from", "0", "--json", *at(redis_url, keyspace), "--shards", "2"]
    proc = await asyncio.create_subprocess_exec(
        str(STREAMPROC), *args, stdout=asyncio.subprocess.PIPE, env=cli_env()
    )
    assert proc.stdout is not None
    engine = Engine(redis_url, sharded)  # the tasks run while the command follows
    engine.start_resolver()
    engine.start_worker(("echo",))
    completed: set[str] = set()
    try:
        async with asyncio.timeout(TIMEOUT):
            while completed != set(ids):
                event = orjson.loads(await proc.stdout.readline())
                if event["kind"] == "completed":
                    completed.add(event["wf"])
        proc.send_signal(signal.SIGINT)
        assert await asyncio.wait_for(proc.wait(), TIMEOUT) == 0
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        await engine.stop()
