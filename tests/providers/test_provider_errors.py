"""Each provider, against its fake, turns every kind of reply into a result or the right error;
and the rate-limit headers are read as the providers document them."""

from __future__ import annotations

from datetime import UTC, datetime
from email.utils import format_datetime

import orjson
import pytest

from streamproc.errors import (
    KeyRejected,
    MalformedReply,
    ProviderError,
    QuotaSpent,
    RateLimited,
    Unavailable,
)
from streamproc.outbound.http import Answer
from streamproc.outbound.providers.base import SearchProvider
from streamproc.outbound.providers.brave import Brave
from streamproc.outbound.providers.chain import FACTORIES
from streamproc.outbound.providers.limits import retry_after
from streamproc.outbound.providers.tavily import Tavily
from streamproc.outbound.secret import Secret
from streamproc.testing.fakes import Behaviour, Fakes

PROVIDERS = FACTORIES
FAILURES = [
    (Behaviour.RATE_LIMITED, RateLimited),
    (Behaviour.QUOTA_SPENT, QuotaSpent),
    (Behaviour.UNAUTHORIZED, KeyRejected),
    (Behaviour.SERVER_ERROR, Unavailable),
    (Behaviour.UNAVAILABLE, Unavailable),
    (Behaviour.SLOW, Unavailable),
    (Behaviour.MALFORMED, MalformedReply),
    (Behaviour.WRONG_SHAPE, MalformedReply),
]


def provider(fakes: Fakes, name: str, timeout: float = 0.3) -> SearchProvider:
    fake = fakes.search[name]
    return PROVIDERS[name](Secret(fake.key), fake.base_url, timeout)


@pytest.mark.parametrize("name", PROVIDERS)
async def test_a_normal_reply_becomes_results(fakes: Fakes, name: str) -> None:
    reply = await provider(fakes, name).search("Postgres vacuum tuning", 2)
    assert reply.provider == name
    assert reply.query == "Postgres vacuum tuning"
    assert [r.url for r in reply.results] == [
        "https://example.org/postgres-vacuum-tuning/1",
        "https://example.org/postgres-vacuum-tuning/2",
    ]
    assert all("Postgres vacuum tuning" in r.title and r.snippet for r in reply.results)


@pytest.mark.parametrize("name", PROVIDERS)
async def test_an_empty_reply_is_an_empty_result_list(fakes: Fakes, name: str) -> None:
    fakes.search[name].script(Behaviour.EMPTY)
    reply = await provider(fakes, name).search("zxqv", 5)
    assert reply.results == ()


@pytest.mark.parametrize("name", PROVIDERS)
@pytest.mark.parametrize(("behaviour", "error"), FAILURES, ids=[b for b, _ in FAILURES])
async def test_each_failure_becomes_its_error(
    fakes: Fakes, name: str, behaviour: Behaviour, error: type[ProviderError]
) -> None:
    fakes.search[name].script(behaviour)
    with pytest.raises(error) as caught:
        await provider(fakes, name).search("q", 5)
    assert caught.value.provider == name
    assert fakes.search[name].requests == 1


@pytest.mark.parametrize("name", PROVIDERS)
async def test_a_rate_limit_carries_the_providers_wait(fakes: Fakes, name: str) -> None:
    fakes.search[name].retry_after = 7
    fakes.search[name].script(Behaviour.RATE_LIMITED)
    with pytest.raises(RateLimited) as caught:
        await provider(fakes, name).search("q", 5)
    assert caught.value.retry_after == 7


async def test_serpapi_tells_its_hourly_limit_from_an_account_out_of_searches(
    fakes: Fakes,
) -> None:
    fakes.serpapi.script(Behaviour.RATE_LIMITED, Behaviour.QUOTA_SPENT)
    serpapi = provider(fakes, "serpapi")
    with pytest.raises(RateLimited, match="hourly throughput limit"):
        await serpapi.search("q", 5)
    with pytest.raises(QuotaSpent, match="run out of searches"):
        await serpapi.search("q", 5)


async def test_brave_with_no_monthly_quota_left_is_spent_until_the_month_resets(
    fakes: Fakes,
) -> None:
    fakes.brave.script(Behaviour.QUOTA_SPENT)
    with pytest.raises(QuotaSpent) as caught:
        await provider(fakes, "brave").search("q", 5)
    assert caught.value.retry_after == 1419704


async def test_brave_refuses_an_unknown_token_with_422(fakes: Fakes) -> None:
    brave = Brave(Secret("not-the-key"), fakes.brave.base_url)
    with pytest.raises(KeyRejected, match="HTTP 422: The provided subscription token is invalid"):
        await brave.search("q", 5)


@pytest.mark.parametrize("status", [432, 433])
def test_tavily_plan_and_pay_as_you_go_limits_are_spent_quota(status: int) -> None:
    body = orjson.dumps({"detail": {"error": "This request exceeds the pay-as-you-go limit."}})
    error = Tavily(Secret("k"), "http://127.0.0.1:1").error_for(Answer(status, {}, body))
    assert isinstance(error, QuotaSpent)
    assert error.reason == f"HTTP {status}: This request exceeds the pay-as-you-go limit."


async def test_a_refused_connection_is_unavailable(fakes: Fakes) -> None:
    url = fakes.tavily.base_url
    await fakes.tavily.close()
    with pytest.raises(Unavailable, match=r"connection failed \(ClientConnectorError\)"):
        await Tavily(Secret(fakes.tavily.key), url).search("q", 5)


NOW = 1_800_000_000.0


@pytest.mark.parametrize(
    ("headers", "wait"),
    [
        ({"retry-after": "120"}, 120.0),
        ({"retry-after": "0"}, 0.0),
        ({"retry-after": format_datetime(datetime.fromtimestamp(NOW + 90, UTC), usegmt=True)}, 90),
        ({"retry-after": "next tuesday"}, None),
        ({"x-ratelimit-reset": "30"}, 30.0),
        ({"x-ratelimit-reset": str(int(NOW) + 45)}, 45.0),
        ({"x-ratelimit-remaining": "0, 1500", "x-ratelimit-reset": "1, 1419704"}, 1.0),
        ({"x-ratelimit-remaining": "0, 0", "x-ratelimit-reset": "1, 1419704"}, 1419704.0),
        ({"x-ratelimit-reset": "5, 60"}, 5.0),
        ({}, None),
    ],
)
def test_the_wait_is_read_from_retry_after_or_the_reset_headers(
    headers: dict[str, str], wait: float | None
) -> None:
    assert retry_after(headers, now=NOW) == wait
