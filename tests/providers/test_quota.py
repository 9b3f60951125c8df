"""Quotas per provider counted in Redis, spent marks shared by every process, and what a task
does when every provider is out: wait for the first one back, then give up clearly."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from redis.asyncio import Redis

import streamproc_agents.agentic  # noqa: F401  (registers the execution agent)
from streamproc import Client, Keyspace, RetryLater, TaskSpec, WorkflowSpec
from streamproc.errors import AllProvidersFailed, QuotaSpent
from streamproc.outbound.cache import SearchCache
from streamproc.outbound.limit_settings import LimitSettings, Quota, parse_quota
from streamproc.outbound.providers import SearchSettings
from streamproc.outbound.providers.settings import KEY_VARIABLES
from streamproc.testing.fakes import Behaviour, Fakes
from streamproc_agents.toolkit import Toolkit
from tests.conftest import Engine
from tests.providers.conftest import Clock, LimitedChain

LATE_EVENING = datetime(2026, 11, 24, 23, 0, tzinfo=UTC).timestamp()  # one hour to midnight
TWO_A_DAY = {"serpapi": LimitSettings(quota=Quota(2, "day"))}


async def test_a_spent_quota_switches_every_process_to_the_next_provider(
    fakes: Fakes, limited_chain: LimitedChain
) -> None:
    first, second = (limited_chain("serpapi", "brave", limits=TWO_A_DAY) for _ in range(2))
    assert (await first.search("one", 5)).provider == "serpapi"
    assert (await second.search("two", 5)).provider == "serpapi"
    for chain in (first, second):
        assert (await chain.search("three", 5)).provider == "brave"
    assert (fakes.serpapi.requests, fakes.brave.requests) == (2, 2)


async def test_the_quota_counter_expires_at_the_end_of_its_utc_period(
    limited_chain: LimitedChain, redis: Redis, keyspace: Keyspace, clock: Clock
) -> None:
    clock.now = LATE_EVENING
    await limited_chain("serpapi", limits=TWO_A_DAY).search("one", 5)
    counter = keyspace.api_limits("serpapi", "d20261124")[1]
    assert await redis.get(counter) == b"1"
    assert 3_590_000 < await redis.pttl(counter) <= 3_600_000


def test_a_monthly_quota_renews_on_the_first_of_the_next_month() -> None:
    last_day_noon = datetime(2026, 2, 28, 12, 0, tzinfo=UTC).timestamp()
    assert Quota(5000, "month").window(last_day_noon) == ("m202602", 12 * 3600)
    assert parse_quota(" 5000/Month ") == Quota(5000, "month")


async def test_a_quota_error_marks_the_provider_spent_for_every_process(
    fakes: Fakes, limited_chain: LimitedChain, redis: Redis, keyspace: Keyspace
) -> None:
    fakes.serpapi.script(Behaviour.QUOTA_SPENT)
    assert (await limited_chain("serpapi", "brave").search("one", 5)).provider == "brave"
    another_process = limited_chain("serpapi", "brave")
    assert (await another_process.search("two", 5)).provider == "brave"
    assert fakes.serpapi.requests == 1
    spent = keyspace.api_limits("serpapi", "none")[2]
    assert await redis.get(spent) == b"HTTP 429: Your account has run out of searches."
    assert 3_590_000 < await redis.pttl(spent) <= 3_600_000  # no Retry-After: quota_rest


async def test_a_quota_error_rests_the_provider_until_its_configured_period_ends(
    fakes: Fakes, limited_chain: LimitedChain, redis: Redis, keyspace: Keyspace, clock: Clock
) -> None:
    clock.now = LATE_EVENING + 1800
    fakes.serpapi.script(Behaviour.QUOTA_SPENT)
    limits = {"serpapi": LimitSettings(quota=Quota(1000, "day"))}
    await limited_chain("serpapi", "brave", limits=limits).search("one", 5)
    assert 1_790_000 < await redis.pttl(keyspace.api_limits("serpapi", "none")[2]) <= 1_800_000


async def test_every_provider_out_makes_the_search_wait_for_the_first_one_back(
    fakes: Fakes, limited_chain: LimitedChain, redis: Redis, keyspace: Keyspace, clock: Clock
) -> None:
    clock.now = LATE_EVENING
    fakes.brave.behaviour = Behaviour.QUOTA_SPENT  # Brave: spent for its month (1419704 s)
    limits = {"serpapi": LimitSettings(quota=Quota(1, "day"))}
    chain = limited_chain("serpapi", "brave", limits=limits)
    toolkit = Toolkit(SearchCache(redis, keyspace, chain), llm=None, give_up_after=120)
    assert (await toolkit.search("one")).provider == "serpapi"
    with pytest.raises(RetryLater) as caught:
        await toolkit.search("two")
    waiting = caught.value
    assert waiting.delay == 3600  # serpapi's day ends before brave's month
    assert waiting.give_up_after == 120
    assert waiting.reason.startswith(
        "every search provider is out (all search providers unavailable ("
    )
    assert "serpapi: quota spent, not asked (allowance spent, renews in 3600s)" in waiting.reason
    assert isinstance(caught.value.__cause__, AllProvidersFailed)
    assert isinstance(caught.value.__cause__.failures["brave"], QuotaSpent)


async def test_a_provider_failing_outright_is_an_ordinary_failure_not_a_wait(
    fakes: Fakes, limited_chain: LimitedChain, redis: Redis, keyspace: Keyspace
) -> None:
    fakes.serpapi.behaviour = Behaviour.QUOTA_SPENT
    fakes.brave.behaviour = Behaviour.UNAUTHORIZED
    chain = limited_chain("serpapi", "brave")
    toolkit = Toolkit(SearchCache(redis, keyspace, chain), llm=None)
    with pytest.raises(AllProvidersFailed):
        await toolkit.search("q")


def test_quotas_rates_and_the_breaker_come_from_the_environment() -> None:
    settings = SearchSettings.from_env(
        {
            "STREAMPROC_SERPAPI_QUOTA": "250/month",
            "STREAMPROC_SERPAPI_RATE": "120/min",
            "STREAMPROC_BRAVE_RATE": "1",
            "STREAMPROC_BRAVE_BURST": "3",
            "STREAMPROC_BRAVE_BREAKER": "off",
            "STREAMPROC_SEARCH_GIVE_UP": "600",
        }
    )
    serpapi, brave = settings.limits["serpapi"], settings.limits["brave"]
    assert (serpapi.quota, serpapi.rate, serpapi.breaker.enabled) == (Quota(250, "month"), 2, True)
    assert (brave.quota, brave.rate, brave.burst, brave.breaker.enabled) == (None, 1, 3, False)
    assert "tavily" not in settings.limits
    assert settings.give_up_after == 600


async def test_a_task_whose_providers_stay_out_fails_with_a_clear_reason(
    fakes: Fakes,
    client: Client,
    redis_url: str,
    keyspace: Keyspace,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Through the engine: the execution agent's wait outlasts its give-up time at once."""
    for name, variable in KEY_VARIABLES.items():
        monkeypatch.delenv(variable, raising=False)
        monkeypatch.delenv(f"STREAMPROC_{name.upper()}_QUOTA", raising=False)
    for variable, value in fakes.search_env().items():
        if "SERPAPI" in variable:
            monkeypatch.setenv(variable, value)
    monkeypatch.setenv("STREAMPROC_SEARCH_GIVE_UP", "60")
    fakes.serpapi.behaviour = Behaviour.QUOTA_SPENT
    engine = Engine(redis_url, keyspace)
    engine.start_resolver()
    engine.start_worker(("execution",))
    try:
        spec = WorkflowSpec((TaskSpec("search", "execution", {"description": "q"}),))
        state = await client.wait(await client.submit(spec), timeout=30)
    finally:
        await engine.stop()
    assert state.status == "failed"
    assert state.reason is not None
    assert "task search dead-lettered: gave up after waiting 0s: every search provider is out" in (
        state.reason
    )
    assert "serpapi: quota spent, HTTP 429: Your account has run out of searches." in state.reason
    assert fakes.serpapi.requests == 1
