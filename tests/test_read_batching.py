"""The lean connection and adaptive read batching that keep per-task overhead low."""

from __future__ import annotations

import pytest
from redis.exceptions import ResponseError

from streamproc import RedisSettings
from streamproc.engine.linger import Linger
from streamproc.transport.connection import WRITE_BUFFER_LIMIT, LeanConnection


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_linger_waits_only_while_entries_arrive_fast() -> None:
    clock = FakeClock()
    linger = Linger(target=16, max_wait=0.002, busy_rate=2000.0, smoothing=1.0, clock=clock)
    clock.now += 0.01
    assert linger.after_read(1, 32) == 0.0  # 100/s: latency matters more than round trips
    clock.now += 0.001
    wait = linger.after_read(8, 32)  # 8,000/s
    assert 0.0 < wait <= 0.002
    assert wait == min(0.002, 16 / linger.rate)
    clock.now += 0.001
    assert linger.after_read(32, 32) == 0.0  # a full batch: more is waiting, read at once
    clock.now += 0.001
    assert linger.after_read(0, 32) == 0.0
    assert linger.rate == 0.0


async def test_lean_connection_carries_multiword_and_large_commands(redis_url: str) -> None:
    redis = RedisSettings.from_url(redis_url).connect()
    try:
        assert redis.connection_pool.connection_class is LeanConnection
        big = b"x" * (4 * WRITE_BUFFER_LIMIT)  # over the buffer limit: the write must drain
        await redis.set("lean:big", big)
        assert await redis.get("lean:big") == big
        async with redis.pipeline(transaction=False) as pipe:
            pipe.config_get("maxmemory-policy").xadd("lean:s", {"a": 1.5, "b": 2})
            policy, entry = await pipe.execute()
        assert "maxmemory-policy" in {k.decode() if isinstance(k, bytes) else k for k in policy}
        fields = (await redis.xrange("lean:s", entry, entry))[0][1]
        assert fields == {b"a": b"1.5", b"b": b"2"}
    finally:
        await redis.delete("lean:big", "lean:s")
        await redis.aclose()


async def test_replies_read_from_the_buffer_keep_errors_in_their_place(redis_url: str) -> None:
    """A pipeline's replies arrive together and are read from the buffer, without a timer
    each: an error still lands at its command, and a transaction's replies stay in order."""
    redis = RedisSettings.from_url(redis_url).connect()
    try:
        async with redis.pipeline(transaction=False) as pipe:
            for i in range(100):
                pipe.set(f"lean:k{i}", i)
            pipe.lpush("lean:k0", "x")  # WRONGTYPE, in the middle
            pipe.get("lean:k99")
            replies = await pipe.execute(raise_on_error=False)
        assert replies[:100] == [True] * 100
        assert isinstance(replies[100], ResponseError) and "WRONGTYPE" in str(replies[100])
        assert replies[101] == b"99"
        async with redis.pipeline(transaction=True) as pipe:
            pipe.incr("lean:n").lpush("lean:k1", "x").incr("lean:n")
            replies = await pipe.execute(raise_on_error=False)
        assert replies[0] == 1 and isinstance(replies[1], ResponseError) and replies[2] == 2
        with pytest.raises(ResponseError, match="WRONGTYPE"):
            await redis.lpush("lean:k2", "x")
        assert await redis.get("lean:k2") == b"2"  # the connection is still in step
    finally:
        await redis.delete(*(f"lean:k{i}" for i in range(100)), "lean:n")
        await redis.aclose()
