"""Security check W1 (clean-up): an agent name no running workflow uses, with nothing in its
streams and no worker serving it, leaves the agents set, ``/agents`` and Redis; one a running
workflow uses, or holding dead letters, is kept."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
import pytest
from aiohttp.test_utils import TestClient, TestServer
from redis.asyncio import Redis

from streamproc import Client, ClientSettings, Keyspace, PermanentError, RedisSettings, Task
from streamproc.engine.worker import Worker
from streamproc.http.app import make_app
from streamproc.http.auth import ApiSettings
from streamproc.store.agents import prune_agents, shard_agents
from streamproc.transport import groups
from tests.cli_runner import at, run
from tests.conftest import Engine, eventually, fast_worker


async def falcon(task: Task) -> Any:
    return task.input


async def osprey(task: Task) -> Any:
    raise PermanentError("osprey never works")


async def names(redis: Redis, keyspace: Keyspace) -> set[str]:
    return {
        name
        for shard in keyspace.all_shards()
        for name in await shard_agents(redis, keyspace, shard)
    }


async def test_an_agent_nobody_uses_any_more_is_cleaned_up_and_one_in_use_is_kept(
    redis_url: str, redis: Redis
) -> None:
    keyspace = Keyspace(f"prune{id(redis) % 100000}", shards=2)
    engine = Engine(redis_url, keyspace)
    engine.start_resolver()  # prunes on its trim interval (0.5 s here)
    stop_worker = asyncio.Event()
    worker = Worker(
        RedisSettings.from_url(redis_url),
        fast_worker(keyspace, ("falcon", "osprey")),
        {"falcon": falcon, "osprey": osprey},
    )
    serving = asyncio.create_task(worker.run(stop_worker))
    try:
        async with Client(redis_url, ClientSettings(keyspace=keyspace)) as client:
            done = await client.submit({"tasks": [{"id": "a", "agent": "falcon", "input": 1}]})
            dead = await client.submit({"tasks": [{"id": "a", "agent": "osprey"}]})
            waiting = await client.submit(
                {
                    "tasks": [
                        {"id": "a", "agent": "heron"},
                        {"id": "b", "agent": "kestrel", "needs": ["a"]},
                    ]
                }
            )
            assert (await client.wait(done, timeout=10)).status == "completed"
            assert (await client.wait(dead, timeout=10)).status == "failed"
            stop_worker.set()
            await serving  # leaves its groups
            assert {"falcon", "osprey", "heron", "kestrel"} <= await names(redis, keyspace)

            async def falcon_gone() -> bool:
                return "falcon" not in await names(redis, keyspace)

            await eventually(falcon_gone, timeout=10)
            for shard in keyspace.all_shards():
                assert not await redis.exists(keyspace.tasks(shard, "falcon"))
            # dead letters (osprey), a running workflow's unread task (heron) and a running
            # workflow's task not yet published (kestrel) keep their names
            assert {"osprey", "heron", "kestrel"} <= await names(redis, keyspace)
            async with TestClient(TestServer(make_app(client, ApiSettings()))) as http:
                listed = {row["agent"] for row in await (await http.get("/agents")).json()}
            assert "falcon" not in listed and {"osprey", "heron", "kestrel"} <= listed
            # kestrel goes once its workflow ends; heron's queued entry is still unread
            await client.cancel(waiting)

            async def kestrel_gone() -> bool:
                return "kestrel" not in await names(redis, keyspace)

            await eventually(kestrel_gone, timeout=10)
            assert {"osprey", "heron"} <= await names(redis, keyspace)
            await engine.stop()  # no resolver: what prunes now is the call below
            await prune_agents(redis, keyspace)
            # a submit naming a pruned agent brings it back
            await client.submit({"tasks": [{"id": "a", "agent": "falcon", "input": 2}]})
            assert "falcon" in await names(redis, keyspace)
    finally:
        stop_worker.set()
        await serving
        if not engine.stop_event.is_set():
            await engine.stop()


async def test_a_worker_joins_its_group_even_if_a_prune_removes_the_stream_meanwhile(
    redis: Redis, keyspace: Keyspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    stream = keyspace.tasks(0, "falcon")
    create = groups.ensure_group
    pruned: list[str] = []

    async def created_then_pruned(r: Redis, s: str, group: str) -> None:
        await create(r, s, group)
        if not pruned:  # what sp_prune_agents does to a stream no consumer serves yet
            pruned.append(s)
            await redis.delete(s)

    monkeypatch.setattr(groups, "ensure_group", created_then_pruned)
    await groups.join_group(redis, stream, "falcon", "worker-1")
    assert pruned == [stream]
    assert await groups.served_agents(redis, keyspace, ["falcon"]) == {"falcon"}


async def test_the_agents_prune_verb_forgets_unused_agents_and_names_them(
    redis_url: str, redis: Redis, keyspace: Keyspace
) -> None:
    async with Client(redis_url, ClientSettings(keyspace=keyspace)) as client:
        ended = await client.submit({"tasks": [{"id": "a", "agent": "falcon"}]})
        await client.submit({"tasks": [{"id": "a", "agent": "heron"}]})  # queued, unread
        await client.cancel(ended)
        await redis.delete(keyspace.tasks(0, "falcon"))  # as if its cancelled task was trimmed
    pruned = await run("agents", "prune", *at(redis_url, keyspace))
    assert (pruned.code, pruned.out, pruned.err) == (0, "forgot falcon\n", "")
    assert await names(redis, keyspace) == {"heron"}
    again = await run("agents", "prune", *at(redis_url, keyspace))
    assert (again.code, again.out) == (0, "no agent to forget\n")


async def test_a_workers_agents_are_listed_before_their_first_task_and_pruned_after_it_stops(
    redis_url: str, redis: Redis, keyspace: Keyspace
) -> None:
    stop_worker = asyncio.Event()
    worker = Worker(
        RedisSettings.from_url(redis_url),
        fast_worker(keyspace, ("falcon",)),
        {"falcon": falcon},
    )
    serving = asyncio.create_task(worker.run(stop_worker))
    try:

        async def listed() -> bool:
            status = await run("status", "--json", *at(redis_url, keyspace))
            rows = [orjson.loads(line) for line in status.out.splitlines()]
            return any(row["agent"] == "falcon" and row["consumers"] == 1 for row in rows)

        await eventually(listed)
        await prune_agents(redis, keyspace)  # served: kept
        assert "falcon" in await names(redis, keyspace)
    finally:
        stop_worker.set()
        await serving  # leaves its group
    await prune_agents(redis, keyspace)
    assert "falcon" not in await names(redis, keyspace)
