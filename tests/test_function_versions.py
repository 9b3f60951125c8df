"""Redis Functions are loaded under names that carry their code's digest, so two releases of
streamproc share one Redis during a rolling upgrade without replacing each other's code."""

from __future__ import annotations

from typing import Any, cast

from redis.asyncio import Redis

from streamproc import Client, ClientSettings, Keyspace, TaskSpec, WorkflowSpec
from streamproc.store import calls, functions, packed
from streamproc.store.fields import WorkflowField
from streamproc.store.functions import ENGINE, Library
from tests.conftest import Engine, eventually


def test_every_name_a_library_registers_carries_its_digest() -> None:
    library = Library("#!lua name=demo\nredis.register_function('f', g)\n-- f\n")
    assert library.code == (
        f"#!lua name=demo_{library.tag}\nredis.register_function('f_{library.tag}', g)\n-- f\n"
    )
    assert library.function("f") == f"f_{library.tag}"
    assert Library(library.source + " ").tag != library.tag


def pairs(flat: list[Any]) -> dict[bytes, Any]:
    return dict(zip(flat[::2], flat[1::2], strict=True))


async def libraries(redis: Redis) -> dict[str, list[str]]:
    """FUNCTION LIST as {library: [function, ...]} (its RESP2 reply is flat pairs)."""
    listed = [pairs(entry) for entry in cast(list[list[Any]], await redis.function_list())]
    return {
        entry[b"library_name"].decode(): [pairs(f)[b"name"].decode() for f in entry[b"functions"]]
        for entry in listed
    }


async def test_a_newer_release_starting_leaves_the_older_ones_functions_in_place(
    redis_url: str, redis: Redis, keyspace: Keyspace
) -> None:
    older = Library(ENGINE.source.replace("create workflows", "create workflows (older)"))
    assert older.tag != ENGINE.tag
    await functions.load(redis, older)
    await functions.load(redis)  # what every process of this release does at start
    loaded = await libraries(redis)
    for release in (older, ENGINE):
        assert release.function("sp_submit") in loaded[f"streamproc_{release.tag}"]

    spec = WorkflowSpec(tasks=[TaskSpec(id="a", agent="echo", input=1)])
    async with Client(redis_url, ClientSettings(keyspace=keyspace)) as client:
        assert await client.submit(spec, "shared") == "shared"
        # The older release's submit runs its own code over the same data: the workflow is
        # there with this spec, so it reports it as such rather than creating it again.
        item = client._prepare(spec, "shared")
        call = calls.submit_arguments(client.keyspace, [item])
        assert await functions.call(redis, "sp_submit", packed.flat(call), older) == [0]
    assert f"streamproc_{older.tag}" in await libraries(redis)


async def loads_run(redis: Redis) -> int:
    """How many FUNCTION LOAD commands this Redis has run."""
    stats = await redis.info("commandstats")
    return int(stats.get("cmdstat_function|load", {}).get("calls", 0))


async def test_a_start_loads_only_the_libraries_redis_lacks(redis: Redis) -> None:
    await functions.load(redis)
    before = await loads_run(redis)
    persistence = await redis.info("persistence")
    assert persistence["aof_enabled"] == 1
    aof = persistence["aof_current_size"]
    assert await functions.load(redis)  # a second process of this release starting
    assert await loads_run(redis) == before
    assert (await redis.info("persistence"))["aof_current_size"] == aof

    await redis.function_delete(functions.LIMITS.name)
    assert await functions.load(redis)
    assert await loads_run(redis) == before + 1
    loaded = await libraries(redis)
    assert {library.name for library in (ENGINE, functions.LIMITS, functions.CACHE)} <= set(loaded)


async def test_a_client_loads_the_functions_again_once_redis_lost_them(
    redis_url: str, redis: Redis, keyspace: Keyspace
) -> None:
    spec = WorkflowSpec(tasks=[TaskSpec(id="a", agent="echo", input=1)])
    async with Client(redis_url, ClientSettings(keyspace=keyspace)) as client:
        await client.submit(spec, "before")
        await redis.function_flush()
        assert await client.submit(spec, "after") == "after"
    assert ENGINE.name in await libraries(redis)
    assert await redis.hget(keyspace.workflow("after"), WorkflowField.STATUS) == b"running"


async def test_a_running_engine_loads_the_functions_again_once_redis_lost_them(
    engine: Engine, client: Client, redis: Redis
) -> None:
    spec = {
        "tasks": [
            {"id": "g", "agent": "gate"},
            {"id": "e", "agent": "echo", "input": 1, "needs": ["g"]},
        ]
    }
    workflow_id = await client.submit(spec)
    await eventually(lambda: redis.llen(f"ledger:{workflow_id}"))  # g's agent began
    await redis.function_flush()
    await redis.rpush(f"open:{workflow_id}:g", 1)  # its completion finds no function
    state = await client.wait(workflow_id, timeout=20)
    assert state.status == "completed"
    assert state.results["e"] == {"input": 1, "deps": {"g": {"gate": "g", "deps": []}}}
    assert ENGINE.name in await libraries(redis)
