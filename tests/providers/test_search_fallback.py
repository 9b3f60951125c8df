"""The chain: providers in order, retries, fallback, benching, and the all-failed error."""

from __future__ import annotations

import logging
from collections.abc import Callable

import pytest

from streamproc.errors import (
    AllProvidersFailed,
    ConfigError,
    KeyRejected,
    MalformedReply,
    QuotaSpent,
)
from streamproc.outbound.providers import SearchChain, SearchSettings
from streamproc.testing.fakes import Behaviour, Fakes

THREE = ("serpapi", "brave", "tavily")
SettingsFor = Callable[..., SearchSettings]


async def test_the_first_provider_in_order_answers(fakes: Fakes, settings_for: SettingsFor) -> None:
    chain = SearchChain.from_settings(settings_for(*THREE))
    reply = await chain.search("redis streams consumer groups", 5)
    assert reply.provider == "serpapi"
    assert len(reply.results) == 3
    assert all("redis streams" in r.snippet.lower() for r in reply.results)
    assert (fakes.brave.requests, fakes.tavily.requests) == (0, 0)


def test_default_order_is_serpapi_brave_tavily_and_bing_only_with_its_key() -> None:
    keys = {"SERPAPI_KEY": "a", "BRAVE_API_KEY": "b", "TAVILY_API_KEY": "c"}
    assert SearchSettings.from_env(keys).configured() == THREE
    with_bing = SearchSettings.from_env({**keys, "BING_API_KEY": "d"})
    assert with_bing.configured() == (*THREE, "bing")


def test_providers_without_a_key_take_no_part() -> None:
    settings = SearchSettings.from_env({"BRAVE_API_KEY": "b", "TAVILY_API_KEY": " "})
    assert SearchChain.from_settings(settings).names == ("brave",)


def test_no_configured_provider_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="SERPAPI_KEY"):
        SearchChain.from_settings(SearchSettings.from_env({}))


def test_an_unknown_provider_in_the_order_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="'google'"):
        SearchSettings.from_env({"STREAMPROC_SEARCH_ORDER": "serpapi,google"})


async def test_the_order_comes_from_the_environment(
    fakes: Fakes, settings_for: SettingsFor
) -> None:
    reply = await SearchChain.from_settings(settings_for("tavily", "serpapi")).search("q", 5)
    assert reply.provider == "tavily"
    assert fakes.serpapi.requests == 0


async def test_empty_results_are_an_answer_not_a_failure(
    fakes: Fakes, settings_for: SettingsFor
) -> None:
    fakes.serpapi.script(Behaviour.EMPTY)
    reply = await SearchChain.from_settings(settings_for(*THREE)).search("nothing here", 5)
    assert (reply.provider, reply.results) == ("serpapi", ())
    assert fakes.brave.requests == 0


async def test_a_spent_quota_switches_provider_and_benches_it(
    fakes: Fakes, settings_for: SettingsFor
) -> None:
    fakes.serpapi.script(Behaviour.QUOTA_SPENT)
    chain = SearchChain.from_settings(settings_for(*THREE))
    assert (await chain.search("first", 5)).provider == "brave"
    assert (await chain.search("second", 5)).provider == "brave"
    assert fakes.serpapi.requests == 1


async def test_a_rejected_key_disables_the_provider_with_one_log_line(
    fakes: Fakes, settings_for: SettingsFor, caplog: pytest.LogCaptureFixture
) -> None:
    fakes.serpapi.behaviour = Behaviour.UNAUTHORIZED
    chain = SearchChain.from_settings(settings_for(*THREE))
    with caplog.at_level(logging.ERROR):
        for query in ("one", "two", "three"):
            assert (await chain.search(query, 5)).provider == "brave"
    assert fakes.serpapi.requests == 1
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1
    assert "serpapi disabled for this process" in errors[0]


async def test_5xx_is_retried_on_the_same_provider(fakes: Fakes, settings_for: SettingsFor) -> None:
    fakes.serpapi.script(Behaviour.UNAVAILABLE, Behaviour.SERVER_ERROR)
    reply = await SearchChain.from_settings(settings_for(*THREE)).search("q", 5)
    assert reply.provider == "serpapi"
    assert fakes.serpapi.requests == 3


async def test_a_provider_still_failing_after_its_retries_gives_way(
    fakes: Fakes, settings_for: SettingsFor
) -> None:
    fakes.serpapi.behaviour = Behaviour.UNAVAILABLE
    reply = await SearchChain.from_settings(settings_for(*THREE)).search("q", 5)
    assert reply.provider == "brave"
    assert fakes.serpapi.requests == 3


async def test_a_provider_slower_than_the_timeout_gives_way(
    fakes: Fakes, settings_for: SettingsFor
) -> None:
    fakes.serpapi.behaviour = Behaviour.SLOW
    chain = SearchChain.from_settings(settings_for(*THREE, timeout=0.2))
    assert (await chain.search("q", 5)).provider == "brave"
    assert fakes.serpapi.requests == 3


async def test_a_short_rate_limit_is_waited_out_once(
    fakes: Fakes, settings_for: SettingsFor
) -> None:
    fakes.serpapi.script(Behaviour.RATE_LIMITED)
    reply = await SearchChain.from_settings(settings_for(*THREE)).search("q", 5)
    assert reply.provider == "serpapi"
    assert fakes.serpapi.requests == 2


async def test_a_second_rate_limit_gives_way(fakes: Fakes, settings_for: SettingsFor) -> None:
    fakes.serpapi.script(Behaviour.RATE_LIMITED, Behaviour.RATE_LIMITED)
    reply = await SearchChain.from_settings(settings_for(*THREE)).search("q", 5)
    assert reply.provider == "brave"
    assert fakes.serpapi.requests == 2


async def test_a_long_rate_limit_gives_way_at_once_and_benches_the_provider(
    fakes: Fakes, settings_for: SettingsFor
) -> None:
    fakes.serpapi.retry_after = 120
    fakes.serpapi.script(Behaviour.RATE_LIMITED)
    chain = SearchChain.from_settings(settings_for(*THREE))
    assert (await chain.search("first", 5)).provider == "brave"
    assert (await chain.search("second", 5)).provider == "brave"
    assert fakes.serpapi.requests == 1


async def test_malformed_replies_give_way(fakes: Fakes, settings_for: SettingsFor) -> None:
    fakes.serpapi.behaviour = Behaviour.MALFORMED
    fakes.brave.behaviour = Behaviour.WRONG_SHAPE
    reply = await SearchChain.from_settings(settings_for(*THREE)).search("q", 5)
    assert reply.provider == "tavily"
    assert (fakes.serpapi.requests, fakes.brave.requests) == (1, 1)


async def test_when_all_fail_the_error_names_each_providers_reason(
    fakes: Fakes, settings_for: SettingsFor
) -> None:
    fakes.serpapi.behaviour = Behaviour.QUOTA_SPENT
    fakes.brave.behaviour = Behaviour.UNAUTHORIZED
    fakes.tavily.behaviour = Behaviour.MALFORMED
    chain = SearchChain.from_settings(settings_for(*THREE))
    with pytest.raises(AllProvidersFailed) as caught:
        await chain.search("q", 5)
    failures = caught.value.failures
    assert [type(failures[n]) for n in THREE] == [QuotaSpent, KeyRejected, MalformedReply]
    message = str(caught.value)
    assert "serpapi: quota spent, HTTP 429: Your account has run out of searches." in message
    assert "brave: key rejected, HTTP 422" in message
    assert "tavily: malformed reply, HTTP 200 reply is not JSON" in message


async def test_benched_providers_are_listed_as_not_asked(
    fakes: Fakes, settings_for: SettingsFor
) -> None:
    fakes.serpapi.behaviour = Behaviour.QUOTA_SPENT
    fakes.brave.behaviour = Behaviour.UNAVAILABLE
    chain = SearchChain.from_settings(settings_for("serpapi", "brave"))
    with pytest.raises(AllProvidersFailed):
        await chain.search("first", 5)
    with pytest.raises(AllProvidersFailed, match=r"serpapi: quota spent, not asked \(earlier"):
        await chain.search("second", 5)
    assert fakes.serpapi.requests == 1


async def test_when_every_provider_states_a_wait_the_soonest_is_kept(
    fakes: Fakes, settings_for: SettingsFor
) -> None:
    fakes.serpapi.retry_after = 120
    fakes.serpapi.behaviour = Behaviour.RATE_LIMITED
    fakes.brave.behaviour = Behaviour.QUOTA_SPENT
    chain = SearchChain.from_settings(settings_for("serpapi", "brave"))
    with pytest.raises(AllProvidersFailed) as caught:
        await chain.search("q", 5)
    assert caught.value.retry_after == 120
    fakes.brave.behaviour = Behaviour.UNAVAILABLE
    with pytest.raises(AllProvidersFailed) as caught:
        await SearchChain.from_settings(settings_for("serpapi", "brave")).search("q", 5)
    assert caught.value.retry_after is None
