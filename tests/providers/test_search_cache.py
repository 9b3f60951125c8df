"""The Redis search cache: expiry that follows frequency, single flight and its counters."""

from __future__ import annotations

import asyncio
import hashlib
import logging
import math
from collections.abc import Callable

import pytest
from redis.asyncio import Redis

from streamproc.errors import AllProvidersFailed
from streamproc.outbound.cache import SearchCache, cache_stats
from streamproc.outbound.providers import CacheSettings, SearchChain, SearchSettings
from streamproc.store.keys import Keyspace
from streamproc.testing.fakes import Behaviour, Fakes

SettingsFor = Callable[..., SearchSettings]
TTLS = CacheSettings(base_ttl=100, min_ttl=10, max_ttl=1000, empty_ttl=5)
QUERY = "redis streams"
DIGEST = hashlib.sha256(QUERY.encode()).hexdigest()


@pytest.fixture
def make_cache(
    redis: Redis, keyspace: Keyspace, settings_for: SettingsFor
) -> Callable[..., SearchCache]:
    """A cache over serpapi then brave; each call is a separate process's cache."""

    def make(settings: CacheSettings = TTLS) -> SearchCache:
        chain = SearchChain.from_settings(settings_for("serpapi", "brave"))
        return SearchCache(redis, keyspace, chain, settings)

    return make


async def ttl_ms(redis: Redis, keyspace: Keyspace, provider: str = "serpapi") -> int:
    return int(await redis.pttl(keyspace.cache(provider, DIGEST)))


def about(seconds: float) -> range:
    """PTTL values a key set to ``seconds`` may show a moment later."""
    return range(int(seconds * 1000) - 1000, int(seconds * 1000) + 1)


async def test_a_repeated_query_is_answered_from_the_cache(
    fakes: Fakes, make_cache: Callable[..., SearchCache]
) -> None:
    cache = make_cache()
    first = await cache.search(QUERY)
    second = await cache.search(QUERY)
    assert (first.cached, second.cached) == (False, True)
    assert second.results == first.results
    assert fakes.serpapi.requests == 1


async def test_case_and_spacing_do_not_matter(
    fakes: Fakes, make_cache: Callable[..., SearchCache], redis: Redis, keyspace: Keyspace
) -> None:
    cache = make_cache()
    await cache.search("  Redis \t STREAMS ")
    reply = await cache.search(QUERY)
    assert reply.query == QUERY
    assert fakes.serpapi.requests == 1
    assert await redis.hget(keyspace.cache("serpapi", DIGEST), "hits") == b"1"


async def test_the_expiry_grows_with_each_hit(
    make_cache: Callable[..., SearchCache], redis: Redis, keyspace: Keyspace
) -> None:
    cache = make_cache()
    await cache.search(QUERY)
    assert await ttl_ms(redis, keyspace) in about(100)
    for hits in (1, 2, 3):
        await cache.search(QUERY)
        assert await ttl_ms(redis, keyspace) in about(100 * (1 + math.log2(1 + hits)))


async def test_the_expiry_stops_at_max_ttl(
    make_cache: Callable[..., SearchCache], redis: Redis, keyspace: Keyspace
) -> None:
    cache = make_cache(CacheSettings(base_ttl=100, min_ttl=10, max_ttl=250))
    for _ in range(4):
        await cache.search(QUERY)
    assert await ttl_ms(redis, keyspace) in about(250)


async def test_an_empty_reply_is_kept_briefly_and_not_stretched(
    fakes: Fakes, make_cache: Callable[..., SearchCache], redis: Redis, keyspace: Keyspace
) -> None:
    fakes.serpapi.script(Behaviour.EMPTY)
    cache = make_cache()
    assert (await cache.search(QUERY)).results == ()
    assert await ttl_ms(redis, keyspace) in about(5)
    assert (await cache.search(QUERY)).cached
    assert await ttl_ms(redis, keyspace) in about(5)
    assert fakes.serpapi.requests == 1


async def test_errors_are_never_cached(
    fakes: Fakes, make_cache: Callable[..., SearchCache], redis: Redis, keyspace: Keyspace
) -> None:
    fakes.serpapi.behaviour = fakes.brave.behaviour = Behaviour.UNAVAILABLE
    cache = make_cache()
    with pytest.raises(AllProvidersFailed):
        await cache.search(QUERY)
    assert not [k async for k in redis.scan_iter(f"{keyspace.namespace}:cache:*:{DIGEST}")]
    fakes.serpapi.behaviour = Behaviour.NORMAL
    assert (await cache.search(QUERY)).provider == "serpapi"


async def test_a_hundred_concurrent_searches_make_one_upstream_call(
    fakes: Fakes, make_cache: Callable[..., SearchCache], redis: Redis, keyspace: Keyspace
) -> None:
    cache = make_cache()
    replies = await asyncio.gather(*(cache.search(QUERY) for _ in range(100)))
    assert fakes.serpapi.requests == 1
    assert len({r.results for r in replies}) == 1
    assert [r.cached for r in replies].count(False) == 1
    stats = await cache_stats(redis, keyspace)
    assert stats == {"serpapi": {"hit": 99, "miss": 1, "upstream": 1}}


async def test_single_flight_holds_across_processes(
    fakes: Fakes, make_cache: Callable[..., SearchCache]
) -> None:
    fakes.serpapi.stall = 0.3
    fakes.serpapi.script(Behaviour.SLOW)
    one, other = make_cache(), make_cache()
    searches = [cache.search(QUERY) for cache in (one, other) for _ in range(50)]
    replies = await asyncio.gather(*searches)
    assert fakes.serpapi.requests == 1
    assert len({r.results for r in replies}) == 1


async def test_a_waiter_searches_itself_when_the_lock_holder_goes_silent(
    fakes: Fakes,
    make_cache: Callable[..., SearchCache],
    redis: Redis,
    keyspace: Keyspace,
    caplog: pytest.LogCaptureFixture,
) -> None:
    await redis.set(keyspace.cache_lock(DIGEST), "a process that died", px=60_000)
    cache = make_cache(CacheSettings(wait_timeout=0.2, poll_interval=0.02))
    with caplog.at_level(logging.WARNING):
        reply = await cache.search(QUERY)
    assert (reply.provider, reply.cached) == ("serpapi", False)
    assert fakes.serpapi.requests == 1
    assert "no value from the holder" in caplog.text


async def test_counters_show_hits_misses_and_upstream_calls(
    fakes: Fakes, make_cache: Callable[..., SearchCache], redis: Redis, keyspace: Keyspace
) -> None:
    fakes.serpapi.script(Behaviour.QUOTA_SPENT)
    cache = make_cache()
    assert (await cache.search("first")).provider == "brave"
    assert (await cache.search("first")).cached
    fakes.brave.behaviour = Behaviour.UNAVAILABLE
    with pytest.raises(AllProvidersFailed):
        await cache.search("second")
    assert await cache_stats(redis, keyspace) == {
        "brave": {"hit": 1, "miss": 1, "upstream": 2},
        "none": {"hit": 0, "miss": 1, "upstream": 0},
        "serpapi": {"hit": 0, "miss": 0, "upstream": 1},
    }
