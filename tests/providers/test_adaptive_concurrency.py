"""The adaptive concurrency limit per provider (AIMD with a latency signal), on synthetic
sequences of outcomes and through the search chain."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from streamproc.outbound.concurrency import AdaptiveLimit, ConcurrencySettings, Outcome
from streamproc.outbound.providers import SearchChain, SearchSettings
from streamproc.testing.fakes import Behaviour, Fakes
from tests.providers.conftest import Clock

SETTINGS = ConcurrencySettings(initial=8, min_limit=2, max_limit=16, backoff=0.5, tolerance=2.0)
RTT = 0.1


def replay(limit: AdaptiveLimit, clock: Clock, outcome: Outcome, rtt: float = RTT) -> float:
    """One call that started now, took ``rtt`` and used the whole limit; the limit after it."""
    started = clock.now
    clock.advance(rtt)
    limit.sample(started, limit.capacity, outcome)
    return limit.limit


def test_a_429_or_a_timeout_halves_the_limit(clock: Clock) -> None:
    limit = AdaptiveLimit(SETTINGS, clock)
    assert replay(limit, clock, Outcome.DROPPED) == 4
    assert replay(limit, clock, Outcome.DROPPED) == 2


def test_successes_grow_it_back_by_about_one_per_round_of_calls(clock: Clock) -> None:
    limit = AdaptiveLimit(SETTINGS, clock)
    replay(limit, clock, Outcome.DROPPED)
    for _ in range(4):  # one round of 4 calls at limit 4
        replay(limit, clock, Outcome.SUCCESS)
    assert 4.9 < limit.limit < 5.0
    for _ in range(200):
        replay(limit, clock, Outcome.SUCCESS)
    assert limit.limit == 16  # and no further


def test_the_limit_never_leaves_its_bounds(clock: Clock) -> None:
    limit = AdaptiveLimit(SETTINGS, clock)
    for _ in range(50):
        replay(limit, clock, Outcome.DROPPED)
        assert limit.capacity >= 2
    assert limit.limit == 2
    for _ in range(10_000):
        replay(limit, clock, Outcome.SUCCESS)
    assert limit.limit == 16


def test_a_reply_much_slower_than_the_fastest_recent_one_counts_as_a_drop(clock: Clock) -> None:
    limit = AdaptiveLimit(SETTINGS, clock)
    for _ in range(5):
        replay(limit, clock, Outcome.SUCCESS, rtt=RTT)
    before = limit.limit
    grown = replay(limit, clock, Outcome.SUCCESS, rtt=1.9 * RTT)  # within tolerance
    assert grown > before
    assert replay(limit, clock, Outcome.SUCCESS, rtt=3 * RTT) == grown / 2


def test_a_burst_of_drops_from_calls_sent_together_cuts_once(clock: Clock) -> None:
    limit = AdaptiveLimit(SETTINGS, clock)
    sent = clock.now
    clock.advance(RTT)
    for _ in range(8):  # eight calls in flight under the old limit all get a 429
        limit.sample(sent, 8, Outcome.DROPPED)
    assert limit.limit == 4
    assert replay(limit, clock, Outcome.DROPPED) == 2  # a call sent after the cut does count


def test_a_steady_load_does_not_flap(clock: Clock) -> None:
    """Alternating 100 successes and one 429: the limit saw-tooths within one band."""
    limit = AdaptiveLimit(SETTINGS, clock)
    lows = []
    for _ in range(20):
        for _ in range(100):
            replay(limit, clock, Outcome.SUCCESS)
        lows.append(replay(limit, clock, Outcome.DROPPED))
    settled = lows[5:]
    assert max(settled) - min(settled) < 1.0, lows
    assert min(settled) >= SETTINGS.min_limit


def test_successes_without_load_do_not_grow_the_limit(clock: Clock) -> None:
    limit = AdaptiveLimit(SETTINGS, clock)
    for _ in range(100):
        started = clock.now
        clock.advance(RTT)
        limit.sample(started, 1, Outcome.SUCCESS)  # one call at a time under a limit of 8
    assert limit.limit == 8


def test_ignored_outcomes_change_nothing(clock: Clock) -> None:
    limit = AdaptiveLimit(SETTINGS, clock)
    for _ in range(10):
        replay(limit, clock, Outcome.IGNORED, rtt=10 * RTT)
    assert limit.limit == 8


async def test_callers_past_the_limit_wait_their_turn_in_order() -> None:
    limit = AdaptiveLimit(ConcurrencySettings(initial=2, min_limit=1, max_limit=4))
    release, two_in = asyncio.Event(), asyncio.Event()
    order: list[int] = []

    async def call(n: int) -> None:
        async with limit.slot():
            order.append(n)
            if len(order) == 2:
                two_in.set()
            await release.wait()

    tasks = [asyncio.create_task(call(n)) for n in range(5)]
    await two_in.wait()
    for _ in range(10):  # every other caller has had its chance to get in
        await asyncio.sleep(0)
    assert (order, limit.in_flight) == ([0, 1], 2)
    release.set()
    await asyncio.gather(*tasks)
    assert order == [0, 1, 2, 3, 4]
    assert limit.in_flight == 0


async def test_a_caller_cancelled_while_waiting_gives_up_its_place() -> None:
    limit = AdaptiveLimit(ConcurrencySettings(initial=1, min_limit=1, max_limit=1))
    async with limit.slot():
        waiter = asyncio.create_task(limit.slot().__aenter__())
        await asyncio.sleep(0)
        waiter.cancel()
        await asyncio.gather(waiter, return_exceptions=True)
    assert limit.in_flight == 0
    async with limit.slot() as slot:
        assert slot.in_flight == 1


async def test_the_chain_shrinks_a_providers_limit_on_a_429(
    fakes: Fakes, settings_for: Callable[..., SearchSettings]
) -> None:
    fakes.serpapi.script(Behaviour.RATE_LIMITED)
    chain = SearchChain.from_settings(settings_for("serpapi", "brave"))
    assert (await chain.search("q", 5)).provider == "serpapi"  # after one short wait
    assert chain.guard.limits["serpapi"].limit == ConcurrencySettings().initial / 2
    assert chain.guard.limits["serpapi"].in_flight == 0


async def test_the_chain_shrinks_a_providers_limit_on_a_timeout(
    fakes: Fakes, settings_for: Callable[..., SearchSettings]
) -> None:
    fakes.serpapi.script(Behaviour.SLOW)
    chain = SearchChain.from_settings(settings_for("serpapi", "brave", timeout=0.2))
    assert (await chain.search("q", 5)).provider == "serpapi"  # the retry answers
    assert chain.guard.limits["serpapi"].limit == ConcurrencySettings().initial / 2
