"""A consumer reads each stream in its group on a connection of its own, where hiredis parses
the entries (transport/group_reads.py): what it reads is what redis-py's XREADGROUP reads,
under either protocol, trimmed entries and errors included."""

from __future__ import annotations

import pytest
from redis.asyncio import Redis
from redis.exceptions import ResponseError

from streamproc.config import RedisSettings
from streamproc.transport.group_reads import GroupReads
from tests.conftest import eventually

STREAM, GROUP = "reads-test:stream", "agents"


@pytest.fixture(params=[2, 3], ids=["RESP2", "RESP3"])
def reader(request: pytest.FixtureRequest, redis_url: str) -> RedisSettings:
    """What the reads' connections are made from, under either protocol."""
    return RedisSettings.from_url(f"{redis_url}?protocol={request.param}")


async def test_a_read_gives_the_entries_redis_py_gives_and_none_for_a_trimmed_one(
    redis: Redis, reader: RedisSettings
) -> None:
    await redis.delete(STREAM)
    await redis.xgroup_create(STREAM, GROUP, id="0", mkstream=True)
    added = [await redis.xadd(STREAM, {"n": str(n), "empty": ""}) for n in range(3)]
    reads = GroupReads(reader, "c1")
    try:
        got = await reads.read(GROUP, STREAM, ">", 2, 100)
        assert got == [
            (added[0], {b"n": b"0", b"empty": b""}),
            (added[1], {b"n": b"1", b"empty": b""}),
        ]
        await redis.xdel(STREAM, added[0])
        again = await reads.read(GROUP, STREAM, "0", 10, 100)  # this consumer's pending ones
        assert again == [(added[0], None), (added[1], {b"n": b"1", b"empty": b""})]
        assert await reads.read(GROUP, STREAM, added[1], 10, 100) == []  # none pending after
        assert [entry_id for entry_id, _ in await reads.read(GROUP, STREAM, ">", 5, 100)] == [
            added[2]
        ]
        assert await reads.read(GROUP, STREAM, ">", 5, 50) == []  # blocked 50 ms, none came
    finally:
        await reads.close()


async def test_a_refused_read_raises_and_closing_closes_each_streams_connection(
    redis: Redis, reader: RedisSettings
) -> None:
    await redis.delete(STREAM)
    reads = GroupReads(reader, "c1")
    before = len(await redis.client_list())
    with pytest.raises(ResponseError, match="NOGROUP"):
        await reads.read(GROUP, STREAM, ">", 1, 10)
    await redis.xgroup_create(STREAM, GROUP, id="0", mkstream=True)
    await redis.xgroup_create(STREAM + ":2", GROUP, id="0", mkstream=True)
    assert await reads.read(GROUP, STREAM + ":2", ">", 1, 10) == []
    assert len(await redis.client_list()) == before + 2  # one for each stream read
    await reads.close()

    async def closed() -> bool:
        return len(await redis.client_list()) == before

    await eventually(closed)
    await redis.delete(STREAM + ":2")
