"""The OpenAI-compatible chat client against a fake endpoint: answers, retries and errors."""

from __future__ import annotations

import logging
from dataclasses import replace

import pytest

from streamproc.errors import (
    ConfigError,
    KeyRejected,
    MalformedReply,
    QuotaSpent,
    RateLimited,
    Unavailable,
)
from streamproc.outbound.llm import LLMClient, LLMSettings
from streamproc.outbound.providers import RetryPolicy
from streamproc.testing.fakes import Behaviour, Fakes


@pytest.fixture
def llm(fakes: Fakes, fast_retry: RetryPolicy) -> LLMClient:
    settings = LLMSettings.from_env(fakes.env())
    assert settings is not None
    return LLMClient(replace(settings, retry=fast_retry, timeout=0.3))


def test_the_llm_is_optional() -> None:
    assert LLMSettings.from_env({}) is None


def test_half_a_configuration_is_refused() -> None:
    with pytest.raises(ConfigError, match="STREAMPROC_LLM_MODEL"):
        LLMSettings.from_env({"STREAMPROC_LLM_URL": "http://127.0.0.1:9/v1"})


def test_a_local_model_needs_no_key() -> None:
    env = {
        "STREAMPROC_LLM_URL": "http://127.0.0.1:9/v1/",
        "STREAMPROC_LLM_MODEL": "llama",
        "STREAMPROC_LLM_PLAIN_HTTP": "127.0.0.1:9",
    }
    assert LLMSettings.from_env(env) == LLMSettings(url="http://127.0.0.1:9/v1", model="llama")


def test_a_model_over_plain_http_must_be_allowed_by_host_and_port() -> None:
    env = {"STREAMPROC_LLM_URL": "http://127.0.0.1:9/v1", "STREAMPROC_LLM_MODEL": "llama"}
    with pytest.raises(ConfigError, match=r"set STREAMPROC_LLM_PLAIN_HTTP=127\.0\.0\.1:9$"):
        LLMSettings.from_env(env)
    with pytest.raises(ConfigError, match="STREAMPROC_LLM_URL must be an https:// URL"):
        LLMSettings.from_env({**env, "STREAMPROC_LLM_PLAIN_HTTP": "127.0.0.1:10"})


async def test_the_answer_is_the_first_choices_text(llm: LLMClient, fakes: Fakes) -> None:
    answer = await llm.ask("what are redis streams", system="Answer briefly.")
    assert "what are redis streams" in answer
    assert fakes.llm.requests == 1


async def test_an_empty_answer_is_an_answer(llm: LLMClient, fakes: Fakes) -> None:
    fakes.llm.script(Behaviour.EMPTY)
    assert await llm.ask("q") == ""


async def test_a_short_rate_limit_is_waited_out(llm: LLMClient, fakes: Fakes) -> None:
    fakes.llm.script(Behaviour.RATE_LIMITED)
    assert await llm.ask("q")
    assert fakes.llm.requests == 2


async def test_a_long_rate_limit_is_raised_with_its_wait(llm: LLMClient, fakes: Fakes) -> None:
    fakes.llm.retry_after = 120
    fakes.llm.script(Behaviour.RATE_LIMITED)
    with pytest.raises(RateLimited) as caught:
        await llm.ask("q")
    assert caught.value.retry_after == 120
    assert fakes.llm.requests == 1


async def test_insufficient_quota_is_spent_quota_not_a_rate_limit(
    llm: LLMClient, fakes: Fakes
) -> None:
    fakes.llm.script(Behaviour.QUOTA_SPENT)
    with pytest.raises(QuotaSpent, match="exceeded your current quota"):
        await llm.ask("q")
    assert fakes.llm.requests == 1


async def test_5xx_is_retried_with_backoff(llm: LLMClient, fakes: Fakes) -> None:
    fakes.llm.script(Behaviour.SERVER_ERROR, Behaviour.UNAVAILABLE)
    assert await llm.ask("q")
    assert fakes.llm.requests == 3


@pytest.mark.parametrize("behaviour", [Behaviour.UNAVAILABLE, Behaviour.SLOW])
async def test_an_endpoint_down_or_too_slow_is_unavailable_after_the_retries(
    llm: LLMClient, fakes: Fakes, behaviour: Behaviour
) -> None:
    fakes.llm.behaviour = behaviour
    with pytest.raises(Unavailable):
        await llm.ask("q")
    assert fakes.llm.requests == 3


@pytest.mark.parametrize("behaviour", [Behaviour.MALFORMED, Behaviour.WRONG_SHAPE])
async def test_a_malformed_reply_is_not_retried(
    llm: LLMClient, fakes: Fakes, behaviour: Behaviour
) -> None:
    fakes.llm.script(behaviour)
    with pytest.raises(MalformedReply):
        await llm.ask("q")
    assert fakes.llm.requests == 1


async def test_a_rejected_key_disables_the_client_with_one_log_line(
    llm: LLMClient, fakes: Fakes, caplog: pytest.LogCaptureFixture
) -> None:
    fakes.llm.behaviour = Behaviour.UNAUTHORIZED
    with caplog.at_level(logging.ERROR):
        for _ in range(3):
            with pytest.raises(KeyRejected):
                await llm.ask("q")
    assert fakes.llm.requests == 1
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR] == [
        "llm disabled for this process: key rejected (HTTP 401: Incorrect API key provided: ***.)"
    ]
