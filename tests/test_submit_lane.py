"""A client's submits go on one connection of its own (``transport/lane.py``): concurrent
submits share it, each gets its own reply even when another was cancelled mid-flight, and a
connection killed or gone silent is replaced."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest
from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from streamproc import Client, ClientSettings, Keyspace, WorkflowConflict
from streamproc.config import RedisSettings
from streamproc.store.folded import hmget_many
from streamproc.testing.embedded import EmbeddedRedis, free_port
from streamproc.transport.lane import Lane, transact
from tests.faults.tcpproxy import FaultProxy

NAME = "lane-test"


def one_task(n: int) -> dict[str, object]:
    return {"tasks": [{"id": "t", "agent": "echo", "input": n}]}


async def input_of(redis: Redis, keyspace: Keyspace, workflow_id: str) -> int:
    """The input the workflow's task was submitted with, as Redis keeps it."""
    [[given]] = await hmget_many(redis, keyspace, [(workflow_id, ["i:t"])])
    return int(given)


async def named_connections(redis: Redis) -> list[dict[str, object]]:
    return [c for c in await redis.client_list() if c.get("name") == NAME]


async def test_concurrent_submits_are_pipelined_on_one_connection(
    redis_url: str, keyspace: Keyspace, redis: Redis
) -> None:
    async with Client(f"{redis_url}?client_name={NAME}", ClientSettings(keyspace=keyspace)) as c:
        ids = await asyncio.gather(*(c.submit(one_task(n)) for n in range(200)))
        assert [await input_of(redis, keyspace, i) for i in ids] == list(range(200))
        # the lane, and the pool's one connection that loaded the functions
        assert len(await named_connections(redis)) <= 2


async def test_a_submit_cancelled_in_flight_leaves_the_next_reply_to_the_next_submit(
    redis_url: str, keyspace: Keyspace, redis: Redis
) -> None:
    async with Client(redis_url, ClientSettings(keyspace=keyspace)) as client:
        taken = await client.submit(one_task(0), "taken")
        cancelled = asyncio.create_task(client.submit(one_task(1), "cancelled"))
        # The submit runs up to its wait for the reply, then is cancelled in the same turn of
        # the loop: no reply can have been read in between.
        await asyncio.sleep(0)
        cancelled.cancel()
        # Its reply (created) comes first; this submit must get its own (a conflict).
        with pytest.raises(WorkflowConflict):
            await client.submit(one_task(2), taken)
        assert cancelled.cancelled()
        assert await input_of(redis, keyspace, "cancelled") == 1  # it was sent


async def test_a_submit_after_its_connection_was_killed_goes_on_a_new_one(
    redis_url: str, keyspace: Keyspace, redis: Redis
) -> None:
    async with Client(f"{redis_url}?client_name={NAME}", ClientSettings(keyspace=keyspace)) as c:
        await c.submit(one_task(1))
        for connection in await named_connections(redis):
            await redis.client_kill_filter(_id=connection["id"])
        workflow_id = await c.submit(one_task(2))
        assert await input_of(redis, keyspace, workflow_id) == 2


async def test_a_client_reaches_redis_over_a_unix_socket_and_submits_on_its_lane(
    tmp_path: Path, keyspace: Keyspace
) -> None:
    socket_path = tmp_path / "redis.sock"
    with EmbeddedRedis(None, tmp_path, "--unixsocket", str(socket_path)) as server:
        async with Client(f"unix://{socket_path}", ClientSettings(keyspace=keyspace)) as c:
            ids = await asyncio.gather(*(c.submit(one_task(n)) for n in range(20)))
            async with Redis.from_url(server.url) as redis:
                assert [await input_of(redis, keyspace, i) for i in ids] == list(range(20))


async def test_a_silent_connection_fails_the_submit_within_the_socket_timeout(
    redis_server: EmbeddedRedis, keyspace: Keyspace, redis: Redis
) -> None:
    async with FaultProxy(redis_server.port) as proxy:
        settings = RedisSettings(url=proxy.url, socket_timeout=0.5, command_retries=0)
        async with Client(settings, ClientSettings(keyspace=keyspace)) as client:
            await client.submit(one_task(1))
            proxy.blackhole()
            started = time.monotonic()
            with pytest.raises(RedisTimeoutError, match=r"answered nothing for 0\.5s"):
                await asyncio.wait_for(client.submit(one_task(2), "silent"), 10)
            assert time.monotonic() - started < 5
            proxy.heal()
            workflow_id = await client.submit(one_task(3))
            assert await input_of(redis, keyspace, workflow_id) == 3


async def test_a_transaction_on_a_lane_answers_as_a_redis_py_pipeline_does(
    redis_url: str, redis: Redis
) -> None:
    """``transact``: each command's reply, one that failed as it ran with its error in its
    place and the rest applied; a command Redis would not queue raises its own error, and
    nothing of the transaction ran."""
    lane = Lane(Redis.from_url(redis_url))
    try:
        await redis.delete("lane-test:n", "lane-test:text")
        await redis.set("lane-test:text", "abc")
        replies = await transact(
            lane, [("INCR", "lane-test:n"), ("INCR", "lane-test:text"), ("INCR", "lane-test:n")]
        )
        assert replies[0::2] == [1, 2]
        assert isinstance(replies[1], ResponseError) and "not an integer" in str(replies[1])
        with pytest.raises(ResponseError, match="wrong number of arguments"):
            await transact(lane, [("INCR", "lane-test:n"), ("INCR",)])
        assert await redis.get("lane-test:n") == b"2"
    finally:
        await lane.close()


@pytest.mark.parametrize("retries", [0, 2])
async def test_a_lane_makes_as_many_attempts_as_the_retry_policy_allows(retries: int) -> None:
    """The first attempt goes outside the retry wrapper, yet counts as the policy's first: a
    server that is never reached is tried ``retries + 1`` times in all, then the error is
    raised.  (redis-py's connect retries under the same policy on its own, so an attempt
    opens as many connections as one failed connect does.)"""
    async with FaultProxy(free_port()) as proxy:  # it accepts, then finds nothing upstream
        redis = Redis.from_url(proxy.url, retry=Retry(NoBackoff(), retries))
        with pytest.raises(RedisConnectionError):
            await redis.connection_pool.make_connection().connect()
        per_attempt = proxy.connections
        lane = Lane(redis)
        try:
            with pytest.raises(RedisConnectionError):
                await lane.send([("PING",)])
            assert proxy.connections == per_attempt * (retries + 2)
        finally:
            await lane.close()
            await redis.aclose()
