"""The dashboard's operator pages in a real headless chromium: a dead letter, or all those
listed, purged after a confirmation (a read token cannot), and the Search page's figures after
real searches through the stand-in providers, read from Redis, an open breaker among them."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from dataclasses import replace

import pytest
from playwright.async_api import expect
from redis.asyncio import Redis

from streamproc.outbound.cache import SearchCache
from streamproc.outbound.limit_settings import BreakerSettings, LimitSettings
from streamproc.outbound.providers import SearchSettings, close_session
from streamproc.store.keys import Keyspace
from streamproc.testing.fakes import Behaviour, Fakes
from tests.browser import READER, Tab, needs_chromium

pytestmark = needs_chromium
pytest_plugins = ["tests.browser_fixtures"]

RAW = {"v": "1", "agent": "parked", "entry": "1-1", "reason": "payload trimmed before ack"}
NONE = "\u2013"  # the page's mark for a figure Redis does not have
TRIPS_FAST = {"serpapi": LimitSettings(breaker=BreakerSettings(failures=2, min_calls=100))}


@pytest.fixture
async def stand_ins() -> AsyncIterator[Fakes]:
    async with Fakes(retry_after=0) as fakes:
        yield fakes
    await close_session()


async def test_a_dead_letter_is_purged_after_a_confirmation_and_a_read_token_cannot(
    tab: Tab, redis: Redis, keyspace: Keyspace
) -> None:
    stream = keyspace.dead(0, "parked")
    purged, kept = [(await redis.xadd(stream, RAW)).decode() for _ in "ab"]
    await tab.open("#/dead/parked", token=READER)
    await expect(tab.page.get_by_text("need the admin scope")).to_be_visible()
    await expect(tab.page.get_by_role("button", name="Purge")).to_have_count(0)

    await tab.page.get_by_role("button", name="Forget token").click()
    await tab.open("#/dead/parked")
    row = tab.page.locator(f'table.dead-table tr[data-entry="{purged}"]')
    await expect(row).to_contain_text("payload trimmed before ack")
    await row.get_by_role("button", name="Purge").click()
    await tab.shot("dead-letter-purge")
    await row.get_by_role("button", name="Keep").click()  # asked again, and kept
    assert await redis.xlen(stream) == 2
    await row.get_by_role("button", name="Purge").click()
    await row.get_by_role("button", name="Confirm: purge this entry").click()
    await expect(row).to_contain_text("purged")
    await expect(row.get_by_role("button", name="Requeue")).to_have_count(0)
    assert [entry_id.decode() for entry_id, _ in await redis.xrange(stream)] == [kept]
    assert tab.errors == []


async def test_purge_all_deletes_the_entries_listed_after_a_confirmation_and_no_later_one(
    tab: Tab, redis: Redis, keyspace: Keyspace
) -> None:
    stream = keyspace.dead(0, "parked")
    for _ in "ab":
        await redis.xadd(stream, RAW)
    await tab.open("#/dead/parked")
    await expect(tab.page.locator("table.dead-table tr[data-entry]")).to_have_count(2)
    later = (await redis.xadd(stream, RAW)).decode()  # parked after the page listed
    await tab.page.get_by_role("button", name="Purge all").click()
    await tab.page.get_by_role("button", name="Confirm: purge the 2 entries listed").click()
    await expect(tab.page.get_by_text("purged 2 for good")).to_be_visible()
    await expect(tab.page.locator("table.dead-table")).to_have_count(0)
    assert [entry_id.decode() for entry_id, _ in await redis.xrange(stream)] == [later]
    assert tab.errors == []


async def test_the_search_page_shows_each_providers_counts_and_an_open_breaker(
    tab: Tab, stand_ins: Fakes, redis: Redis, keyspace: Keyspace
) -> None:
    stand_ins.serpapi.behaviour = Behaviour.UNAVAILABLE
    env = {**stand_ins.search_env(), "STREAMPROC_SEARCH_ORDER": "serpapi,brave"}
    settings = replace(SearchSettings.from_env(env), timeout=2.0, limits=TRIPS_FAST)
    cache = SearchCache.from_settings(redis, keyspace, settings)
    for query in ("owls", "larks", "wrens", "owls"):  # serpapi fails twice, then is skipped
        await cache.search(query)

    await tab.open("#/search")
    serpapi = tab.page.locator('table.search-table tr[data-provider="serpapi"]')
    brave = tab.page.locator('table.search-table tr[data-provider="brave"]')
    await expect(serpapi.locator(".breaker")).to_have_attribute("data-breaker", "open")
    await expect(serpapi).to_contain_text("until")
    await expect(brave.locator("td")).to_have_text(
        ["brave", "1", "3", "25%", "3", "closed", NONE, NONE, NONE]
    )
    # This process searched: its own /metrics counts the limiter's decisions since it began
    # (earlier tests in this process may have added other decisions between the two).
    own = tab.page.locator('table.process-search-table tr[data-provider="serpapi"]')
    await expect(own).to_contain_text(re.compile(r"go \d+, .*open \d+"))
    await tab.shot("search-figures")
    assert tab.errors == []
