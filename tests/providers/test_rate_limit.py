"""The rate limit each provider shares through Redis (GCRA): held across processes, short
waits slept, long ones skipped to the next provider."""

from __future__ import annotations

import asyncio
import os
import sys
import time

import orjson
import pytest
from redis.asyncio import Redis

from streamproc.errors import AllProvidersFailed, ConfigError, RateLimited
from streamproc.outbound.limit_settings import LimitSettings, parse_rate
from streamproc.outbound.limiter import SharedLimiter
from streamproc.store.keys import Keyspace
from streamproc.testing.fakes import Fakes
from tests.cli_runner import ROOT
from tests.providers.conftest import Clock, LimitedChain

CLIENT = "tests.providers.rate_client"
RATE = 200.0  # calls per second, all processes together
RUN = 2.0  # seconds each process takes slots
EDGE = 0.25  # seconds left out at each end of the run, while processes start and stop


async def start_client(redis_url: str, keyspace: Keyspace) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        CLIENT,
        redis_url,
        keyspace.namespace,
        str(RATE),
        str(RUN),
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )


async def test_the_rate_holds_across_four_processes_within_five_percent(
    redis_url: str, keyspace: Keyspace
) -> None:
    clients = [await start_client(redis_url, keyspace) for _ in range(4)]
    for client in clients:
        assert client.stdout is not None
        assert await asyncio.wait_for(client.stdout.readline(), 30) == b"ready\n"
    start = time.time() + 0.1
    outputs = await asyncio.gather(
        *(c.communicate(f"{start}\n".encode()) for c in clients),
    )
    assert [c.returncode for c in clients] == [0] * 4
    granted = [orjson.loads(out) for out, _ in outputs]
    inside = [[t for t in times if start + EDGE <= t < start + RUN - EDGE] for times in granted]
    expected = RATE * (RUN - 2 * EDGE)
    total = sum(map(len, inside))
    assert abs(total - expected) <= 0.05 * expected, (total, expected)
    assert all(len(share) > 0.1 * total for share in inside), [len(s) for s in inside]


async def test_slots_are_spaced_by_the_emission_interval_after_the_burst(
    redis: Redis, keyspace: Keyspace, clock: Clock
) -> None:
    limits = {"serpapi": LimitSettings(rate=10, burst=3, max_wait=0.25)}
    limiter = SharedLimiter(redis, keyspace, limits, clock)
    waits = [(await limiter.admit("serpapi")).wait for _ in range(5)]
    assert waits == pytest.approx([0, 0, 0, 0.1, 0.2])
    refused = await limiter.admit("serpapi")
    assert refused.verdict == "rate" and refused.wait == pytest.approx(0.3)
    clock.advance(1.0)  # idle: the burst comes back, no more
    waits = [(await limiter.admit("serpapi")).wait for _ in range(4)]
    assert waits == pytest.approx([0, 0, 0, 0.1])


async def test_a_refused_call_books_nothing(redis: Redis, keyspace: Keyspace, clock: Clock) -> None:
    limiter = SharedLimiter(redis, keyspace, {"serpapi": LimitSettings(rate=1, max_wait=0)}, clock)
    assert (await limiter.admit("serpapi")).verdict == "go"
    for _ in range(5):
        refused = await limiter.admit("serpapi")
        assert (refused.verdict, refused.wait) == ("rate", 1.0)
    clock.advance(1.0)
    assert (await limiter.admit("serpapi")).verdict == "go"


async def test_a_short_wait_is_slept_on_the_same_provider(
    fakes: Fakes, limited_chain: LimitedChain
) -> None:
    limits = {"serpapi": LimitSettings(rate=20, max_wait=1.0)}
    chain = limited_chain("serpapi", "brave", limits=limits)
    started = time.monotonic()
    providers = [(await chain.search(q, 5)).provider for q in ("one", "two", "three")]
    assert providers == ["serpapi"] * 3
    assert time.monotonic() - started >= 2 / 20
    assert fakes.brave.requests == 0


async def test_a_long_wait_skips_to_the_next_provider(
    fakes: Fakes, limited_chain: LimitedChain
) -> None:
    limits = {"serpapi": LimitSettings(rate=parse_rate("6/min"), max_wait=1.0)}
    asked: list[str] = []
    first = limited_chain("serpapi", "brave", limits=limits)
    assert (await first.search("one", 5)).provider == "serpapi"
    other_process = limited_chain("serpapi", "brave", limits=limits)
    assert (await other_process.search("two", 5, on_call=asked.append)).provider == "brave"
    assert asked == ["brave"]
    assert fakes.serpapi.requests == 1


async def test_a_rate_skip_says_when_the_next_slot_is(
    limited_chain: LimitedChain, clock: Clock
) -> None:
    chain = limited_chain("serpapi", limits={"serpapi": LimitSettings(rate=0.1, max_wait=1.0)})
    await chain.search("one", 5)
    clock.advance(4)
    with pytest.raises(AllProvidersFailed) as caught:
        await chain.search("two", 5)
    assert isinstance(caught.value.failures["serpapi"], RateLimited)
    assert caught.value.retry_after == pytest.approx(6.0)


def test_rates_are_read_per_second_minute_or_hour() -> None:
    assert [parse_rate(r) for r in ("5", "5/s", "300/min", "3600/h")] == [5, 5, 5, 1]
    with pytest.raises(ConfigError, match="unreadable rate"):
        parse_rate("fast")
    with pytest.raises(ConfigError, match="must be positive"):
        parse_rate("0/s")
