"""``GET /search``: each provider's cache counters and shared limits, read from Redis after
real searches through the stand-in providers, so any API process can tell them."""

from __future__ import annotations

import time
from dataclasses import replace

from redis.asyncio import Redis

from streamproc import Client
from streamproc.http.auth import ApiSettings
from streamproc.ops.search_stats import breaker_state
from streamproc.outbound.cache import SearchCache
from streamproc.outbound.limit_settings import BreakerSettings, LimitSettings, Quota
from streamproc.store.keys import Keyspace
from streamproc.testing.fakes import Behaviour, Fakes
from tests.http_helpers import serving
from tests.providers.conftest import SettingsFor

COOLDOWN = 30.0
LIMITS = {
    "serpapi": LimitSettings(breaker=BreakerSettings(failures=2, min_calls=100, cooldown=COOLDOWN)),
    "brave": LimitSettings(rate=1.0, burst=10, quota=Quota(1000, "day")),
}


async def test_the_figures_show_cache_counts_an_open_breaker_the_rate_and_the_quota(
    fakes: Fakes, settings_for: SettingsFor, redis: Redis, keyspace: Keyspace, client: Client
) -> None:
    fakes.serpapi.behaviour = Behaviour.UNAVAILABLE
    settings = replace(settings_for("serpapi", "brave"), limits=LIMITS)
    cache = SearchCache.from_settings(redis, keyspace, settings)
    for query in ("one", "two", "three", "one"):  # serpapi fails twice, then is skipped
        await cache.search(query)
    before_ms = int(time.time() * 1000)
    async with serving(client, ApiSettings()) as http:
        response = await http.get("/search")
        assert response.status == 200
        figures = await response.json()
    by_name = {p["provider"]: p for p in figures["providers"]}
    assert list(by_name) == ["serpapi", "brave", "tavily", "bing"]
    assert figures["unanswered"] == 0

    serpapi = by_name["serpapi"]
    assert (serpapi["hits"], serpapi["misses"], serpapi["upstream"]) == (0, 0, 2)
    assert serpapi["breaker"] == "open"
    assert before_ms < serpapi["breaker_until"] <= before_ms + COOLDOWN * 1000 + 1000

    brave = by_name["brave"]
    counts = brave["hits"], brave["misses"], brave["upstream"], brave["hit_ratio"]
    assert counts == (1, 3, 3, 0.25)
    assert (brave["breaker"], brave["breaker_until"], brave["spent"]) == ("closed", None, None)
    assert brave["next_slot"] > before_ms  # three calls booked at one a second
    today = Quota(1000, "day").window(time.time())[0]
    assert brave["quota_calls"] == {today: 3}

    tavily = by_name["tavily"]
    quiet = tavily["hits"], tavily["upstream"], tavily["hit_ratio"], tavily["breaker"]
    assert quiet == (0, 0, None, "closed")


async def test_a_spent_allowance_shows_with_its_reason_and_end(
    fakes: Fakes, settings_for: SettingsFor, redis: Redis, keyspace: Keyspace, client: Client
) -> None:
    fakes.serpapi.behaviour = Behaviour.QUOTA_SPENT
    cache = SearchCache.from_settings(redis, keyspace, settings_for("serpapi", "brave"))
    await cache.search("one")
    async with serving(client, ApiSettings()) as http:
        serpapi = (await (await http.get("/search")).json())["providers"][0]
    assert serpapi["spent"]
    assert serpapi["spent_until"] > int(time.time() * 1000)
    assert serpapi["breaker"] == "closed"


def test_after_its_cool_down_a_breaker_is_half_open_until_its_probe_expires() -> None:
    now_us = 10_000_000
    assert breaker_state(None, -2, now_us) == ("closed", None)
    assert breaker_state(now_us + 5_000_000, -2, now_us) == ("open", 15_000)
    assert breaker_state(now_us - 1, -2, now_us) == ("half-open", None)
    assert breaker_state(now_us - 1, 3_000, now_us) == ("half-open", 13_000)
