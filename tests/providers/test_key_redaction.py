"""API keys never show: not in reprs, exception messages, tracebacks, results or logs."""

from __future__ import annotations

import logging
import traceback
from collections.abc import AsyncIterator
from dataclasses import replace

import pytest

from streamproc.errors import AllProvidersFailed, ProviderError
from streamproc.outbound.llm import LLMClient, LLMSettings
from streamproc.outbound.providers import RetryPolicy, SearchChain, SearchSettings
from streamproc.outbound.secret import Secret
from streamproc.testing.fakes import Behaviour, Fakes

CANARY = "canary-7f3c9d2e41b0-do-not-print"
NAMES = ("serpapi", "brave", "tavily", "bing", "llm")
STREAM_FAILING = [Behaviour.BROKEN_STREAM, Behaviour.CUT_STREAM]  # only a streamed answer fails
ANSWERING = (Behaviour.NORMAL, Behaviour.EMPTY, Behaviour.SLOW, Behaviour.OFF_FORMAT)
FAILING = [b for b in Behaviour if b not in (*ANSWERING, *STREAM_FAILING)]


async def ignore(text: str) -> None:
    """An emit callback that drops what it is given."""


@pytest.fixture
async def canary_fakes() -> AsyncIterator[Fakes]:
    async with Fakes(keys=dict.fromkeys(NAMES, CANARY), retry_after=0) as running:
        yield running


def shown(exc: BaseException) -> str:
    parts = [str(exc), repr(exc), "".join(traceback.format_exception(exc))]
    if isinstance(exc, AllProvidersFailed):
        parts += [shown(e) for e in exc.failures.values()]
    return "\n".join(parts)


def settings(fakes: Fakes, fast_retry: RetryPolicy) -> tuple[SearchSettings, LLMSettings]:
    search = replace(SearchSettings.from_env(fakes.env()), retry=fast_retry)
    llm = LLMSettings.from_env(fakes.env())
    assert llm is not None
    return search, replace(llm, retry=fast_retry)


def test_a_secret_never_shows_itself() -> None:
    secret = Secret(CANARY)
    assert CANARY not in f"{secret} {secret!r} {[secret]} {dict(k=secret)}"
    assert secret.reveal() == CANARY
    assert secret.scrub(f"bad key {CANARY}!") == "bad key ***!"


async def test_settings_and_clients_never_show_their_keys(
    canary_fakes: Fakes, fast_retry: RetryPolicy
) -> None:
    search, llm = settings(canary_fakes, fast_retry)
    chain = SearchChain.from_settings(search)
    texts = [repr(search), str(search), repr(llm), repr(LLMClient(llm)), repr(chain)]
    texts += [repr(p) for p in chain.providers]
    assert not [t for t in texts if CANARY in t]


@pytest.mark.parametrize("behaviour", FAILING)
async def test_failures_never_carry_the_key(
    canary_fakes: Fakes,
    fast_retry: RetryPolicy,
    caplog: pytest.LogCaptureFixture,
    behaviour: Behaviour,
) -> None:
    caplog.set_level(logging.DEBUG)
    for fake in (*canary_fakes.search.values(), canary_fakes.llm):
        fake.behaviour = behaviour
    search, llm = settings(canary_fakes, fast_retry)
    with pytest.raises(AllProvidersFailed) as searched:
        await SearchChain.from_settings(search).search("q", 5)
    with pytest.raises(ProviderError) as asked:
        await LLMClient(llm).ask("q")
    with pytest.raises(ProviderError) as streamed:
        await LLMClient(llm).ask("q", emit=ignore)
    assert CANARY not in shown(searched.value)
    assert CANARY not in shown(asked.value) + shown(streamed.value)
    assert CANARY not in caplog.text


@pytest.mark.parametrize("behaviour", STREAM_FAILING)
async def test_stream_failures_never_carry_the_key(
    canary_fakes: Fakes,
    fast_retry: RetryPolicy,
    caplog: pytest.LogCaptureFixture,
    behaviour: Behaviour,
) -> None:
    caplog.set_level(logging.DEBUG)
    canary_fakes.llm.behaviour = behaviour
    _, llm = settings(canary_fakes, fast_retry)
    with pytest.raises(ProviderError) as streamed:
        await LLMClient(llm).ask("q", emit=ignore)
    assert CANARY not in shown(streamed.value)
    assert CANARY not in caplog.text


async def test_a_key_echoed_back_by_the_api_is_scrubbed(
    canary_fakes: Fakes, fast_retry: RetryPolicy, caplog: pytest.LogCaptureFixture
) -> None:
    canary_fakes.llm.behaviour = Behaviour.UNAUTHORIZED
    _, llm = settings(canary_fakes, fast_retry)
    with caplog.at_level(logging.DEBUG), pytest.raises(ProviderError) as caught:
        await LLMClient(llm).ask("q")
    assert "Incorrect API key provided: ***." in caught.value.reason
    assert CANARY not in caplog.text


async def test_replies_never_carry_the_key(canary_fakes: Fakes, fast_retry: RetryPolicy) -> None:
    search, llm = settings(canary_fakes, fast_retry)
    for name in search.configured():
        only = replace(search, order=(name,))
        reply = await SearchChain.from_settings(only).search("q", 5)
        assert reply.provider == name
        assert CANARY not in repr(reply)
    assert CANARY not in await LLMClient(llm).ask("q")
