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


def reads(linger: Linger, clock: FakeClock, every: float, got: int, count: int) -> list[float]:
    """``count`` reads ``every`` seconds apart, each returning ``got`` of 32: the waits."""
    waits = []
    for _ in range(count):
        clock.now += every
        waits.append(linger.after_read(got, 32))
    return waits


def test_linger_waits_only_while_entries_arrive_fast() -> None:
    clock = FakeClock()
    linger = Linger(target=16, max_wait=0.002, busy_rate=2000.0, window=0.1, clock=clock)
    assert set(reads(linger, clock, 0.01, 1, 50)) == {0.0}  # 100/s: latency counts more
    waits = reads(linger, clock, 0.001, 8, 500)  # 8,000/s, for five windows
    assert 7_500 < linger.rate < 8_500
    assert waits[-1] == min(0.002, 16 / linger.rate) and waits[-1] > 0.0
    clock.now += 0.001
    assert linger.after_read(32, 32) == 0.0  # a full batch: more is waiting, read at once
    clock.now += 1.0
    assert linger.after_read(0, 32) == 0.0
    assert linger.rate == 0.0


def test_a_steady_trickle_whose_entries_sometimes_come_in_pairs_never_lingers() -> None:
    """1,000 entries a second, one a read, every tenth arriving 10 microseconds after the one
    before: a pair is no burst (averaged per read, it once read as 100,000 a second)."""
    clock = FakeClock()
    linger = Linger(target=16, max_wait=0.001, busy_rate=2000.0, clock=clock)
    waits = []
    for i in range(2_000):
        clock.now += 0.00001 if i % 10 == 9 else 0.0011
        waits.append(linger.after_read(1, 32))
    assert set(waits) == {0.0}
    assert 800 < linger.rate < 1_200


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
