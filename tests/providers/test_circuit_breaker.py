"""The circuit breaker each provider shares through Redis: closed, open, half-open with one
probe, and closed or open again by that probe's outcome."""

from __future__ import annotations

import asyncio

import pytest
from redis.asyncio import Redis

from streamproc.errors import AllProvidersFailed, CircuitOpen
from streamproc.outbound.limit_settings import BreakerSettings, LimitSettings
from streamproc.outbound.limiter import Admission, SharedLimiter
from streamproc.store.keys import Keyspace
from streamproc.testing.fakes import Behaviour, Fakes
from tests.conftest import eventually
from tests.providers.conftest import Clock, LimitedChain

BREAKER = BreakerSettings(failures=2, cooldown=30.0, min_calls=100)
LIMITS = {"serpapi": LimitSettings(breaker=BREAKER)}


async def open_breaker(limiter: SharedLimiter) -> None:
    for _ in range(BREAKER.failures):
        assert await limiter.record(await limiter.admit("serpapi"), "fail") in ("closed", "open")
    assert (await limiter.admit("serpapi")).verdict == "open"


async def test_the_circuit_opens_after_consecutive_failures_and_the_next_provider_serves(
    fakes: Fakes, limited_chain: LimitedChain
) -> None:
    fakes.serpapi.behaviour = Behaviour.UNAVAILABLE
    chain = limited_chain("serpapi", "brave", limits=LIMITS)
    for query in ("one", "two", "three", "four"):
        assert (await chain.search(query, 5)).provider == "brave"
    assert fakes.serpapi.requests == 2 * 3  # two visits of three attempts, then open


async def test_an_open_circuit_is_skipped_by_every_process_with_the_time_left(
    fakes: Fakes, limited_chain: LimitedChain, clock: Clock
) -> None:
    fakes.serpapi.behaviour = Behaviour.MALFORMED
    first = limited_chain("serpapi", "brave", limits=LIMITS)
    for query in ("one", "two"):
        await first.search(query, 5)
    clock.advance(10)
    other = limited_chain("serpapi", "brave", limits=LIMITS)
    asked: list[str] = []
    assert (await other.search("three", 5, on_call=asked.append)).provider == "brave"
    assert asked == ["brave"]
    assert fakes.serpapi.requests == 2


async def test_after_the_cool_down_exactly_one_probe_goes_through(
    redis: Redis, keyspace: Keyspace, clock: Clock
) -> None:
    limiter = SharedLimiter(redis, keyspace, LIMITS, clock)
    await open_breaker(limiter)
    clock.advance(BREAKER.cooldown - 1)
    assert (await limiter.admit("serpapi")).verdict == "open"
    clock.advance(1)
    racers = [SharedLimiter(redis, keyspace, LIMITS, clock) for _ in range(20)]
    verdicts = await asyncio.gather(*(r.admit("serpapi") for r in racers))
    assert sorted(a.verdict for a in verdicts) == ["open"] * 19 + ["probe"]
    assert all(a.wait > 0 for a in verdicts if a.verdict == "open")


async def test_a_successful_probe_closes_the_circuit(
    redis: Redis, keyspace: Keyspace, clock: Clock
) -> None:
    limiter = SharedLimiter(redis, keyspace, LIMITS, clock)
    await open_breaker(limiter)
    clock.advance(BREAKER.cooldown)
    probe = await limiter.admit("serpapi")
    assert probe.verdict == "probe"
    assert await limiter.record(probe, "ok") == "closed"
    verdicts = {(await limiter.admit("serpapi")).verdict for _ in range(5)}
    assert verdicts == {"go"}


async def test_a_failed_probe_opens_the_circuit_for_another_cool_down(
    redis: Redis, keyspace: Keyspace, clock: Clock
) -> None:
    limiter = SharedLimiter(redis, keyspace, LIMITS, clock)
    await open_breaker(limiter)
    clock.advance(BREAKER.cooldown)
    assert await limiter.record(await limiter.admit("serpapi"), "fail") == "open"
    shut = await limiter.admit("serpapi")
    assert (shut.verdict, shut.wait) == ("open", BREAKER.cooldown)
    clock.advance(BREAKER.cooldown)
    assert (await limiter.admit("serpapi")).verdict == "probe"


async def test_a_late_reply_from_before_the_circuit_opened_does_not_close_it(
    redis: Redis, keyspace: Keyspace, clock: Clock
) -> None:
    limiter = SharedLimiter(redis, keyspace, LIMITS, clock)
    early = await limiter.admit("serpapi")
    await open_breaker(limiter)
    assert await limiter.record(early, "ok") == "open"
    forged = Admission("serpapi", "probe", 0.0, "another-process")
    assert await limiter.record(forged, "ok") == "open"


async def test_a_failure_ratio_opens_the_circuit_without_a_streak(
    redis: Redis, keyspace: Keyspace, clock: Clock
) -> None:
    ratio = BreakerSettings(failures=100, ratio=0.5, min_calls=6, window=60.0)
    limiter = SharedLimiter(redis, keyspace, {"serpapi": LimitSettings(breaker=ratio)}, clock)
    states = []
    for outcome in ("ok", "fail", "ok", "fail", "ok", "fail"):
        states.append(await limiter.record(await limiter.admit("serpapi"), outcome))  # type: ignore[arg-type]
    assert states == ["closed"] * 5 + ["open"]


async def test_failures_spread_over_windows_do_not_add_up(
    redis: Redis, keyspace: Keyspace, clock: Clock
) -> None:
    ratio = BreakerSettings(failures=100, ratio=0.5, min_calls=4, window=10.0)
    limiter = SharedLimiter(redis, keyspace, {"serpapi": LimitSettings(breaker=ratio)}, clock)
    for outcome in ("ok", "fail", "ok", "fail", "ok", "fail", "ok", "fail"):
        state = await limiter.record(await limiter.admit("serpapi"), outcome)  # type: ignore[arg-type]
        clock.advance(4.0)
        assert state == "closed"


async def test_rate_limits_quota_errors_and_rejected_keys_do_not_open_the_circuit(
    fakes: Fakes, limited_chain: LimitedChain
) -> None:
    fakes.serpapi.retry_after = 0
    fakes.serpapi.behaviour = Behaviour.RATE_LIMITED
    fakes.brave.behaviour = Behaviour.UNAUTHORIZED
    for query in ("one", "two", "three"):
        chain = limited_chain("serpapi", "brave", "tavily", limits=LIMITS)
        assert (await chain.search(query, 5)).provider == "tavily"
    assert fakes.serpapi.requests == 3 * 2  # asked every time: never open


async def test_a_probe_whose_process_died_is_replaced_after_its_timeout(
    redis: Redis, keyspace: Keyspace, clock: Clock
) -> None:
    quick = BreakerSettings(failures=2, cooldown=30.0, probe_timeout=0.2)
    limiter = SharedLimiter(redis, keyspace, {"serpapi": LimitSettings(breaker=quick)}, clock)
    await open_breaker(limiter)
    clock.advance(30.0)
    assert (await limiter.admit("serpapi")).verdict == "probe"  # and never reports back

    async def next_probe() -> bool:
        return (await limiter.admit("serpapi")).verdict == "probe"

    await eventually(next_probe, timeout=5)


async def test_the_probe_through_the_chain_brings_the_provider_back(
    fakes: Fakes, limited_chain: LimitedChain, clock: Clock
) -> None:
    fakes.serpapi.script(*[Behaviour.SERVER_ERROR] * 6)
    chain = limited_chain("serpapi", "brave", limits=LIMITS)
    for query in ("one", "two"):
        assert (await chain.search(query, 5)).provider == "brave"
    clock.advance(BREAKER.cooldown)
    assert (await chain.search("three", 5)).provider == "serpapi"
    assert (await chain.search("four", 5)).provider == "serpapi"
    assert fakes.serpapi.requests == 6 + 2


async def test_every_provider_open_is_an_error_with_the_soonest_return(
    fakes: Fakes, limited_chain: LimitedChain, clock: Clock
) -> None:
    fakes.serpapi.behaviour = fakes.brave.behaviour = Behaviour.UNAVAILABLE
    limits = {"serpapi": LimitSettings(breaker=BREAKER), "brave": LimitSettings(breaker=BREAKER)}
    chain = limited_chain("serpapi", "brave", limits=limits)
    for query in ("one", "two"):
        with pytest.raises(AllProvidersFailed):
            await chain.search(query, 5)
    clock.advance(5)
    with pytest.raises(AllProvidersFailed) as caught:
        await chain.search("three", 5)
    assert caught.value.retry_after == BREAKER.cooldown - 5
    assert {type(e) for e in caught.value.failures.values()} == {CircuitOpen}
    assert "serpapi: circuit open, not asked (circuit open, next probe in 25.0s)" in str(
        caught.value
    )
