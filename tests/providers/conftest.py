"""Fixtures for the external-API layer: the fake servers, and settings pointing at them with
retry waits short enough for tests."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import replace

import pytest
from redis.asyncio import Redis

from streamproc.outbound.limit_settings import LimitSettings
from streamproc.outbound.limiter import SharedLimiter
from streamproc.outbound.providers import RetryPolicy, SearchChain, SearchSettings, close_session
from streamproc.outbound.providers.settings import KEY_VARIABLES
from streamproc.store.keys import Keyspace
from streamproc.testing.fakes import Fakes

FAST = RetryPolicy(
    attempts=3, backoff_initial=0.001, backoff_max=0.005, jitter=0.001, rate_limit_wait=0.5
)
SettingsFor = Callable[..., SearchSettings]
LimitedChain = Callable[..., SearchChain]


@pytest.fixture(scope="session", autouse=True)
async def shared_http_session() -> AsyncIterator[None]:
    yield
    await close_session()


@pytest.fixture
async def fakes() -> AsyncIterator[Fakes]:
    """Every fake API, answering normally; a rate limit asks for no wait unless a test says."""
    async with Fakes(retry_after=0, stall=10.0) as running:
        yield running


@pytest.fixture
def fast_retry() -> RetryPolicy:
    return FAST


@pytest.fixture
def settings_for(fakes: Fakes) -> SettingsFor:
    """``settings_for("serpapi", "brave")``: only those providers have keys, in that order."""

    def build(*names: str, timeout: float = 1.0) -> SearchSettings:
        env = fakes.env()
        for name, variable in KEY_VARIABLES.items():
            if name not in names:
                del env[variable]
        env["STREAMPROC_SEARCH_ORDER"] = ",".join(names)
        return replace(SearchSettings.from_env(env), timeout=timeout, retry=FAST)

    return build


class Clock:
    """A clock tests move by hand: epoch seconds, starting at a fixed UTC time."""

    def __init__(self, now: float = 1_795_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def limited_chain(
    redis: Redis, keyspace: Keyspace, settings_for: SettingsFor, clock: Clock
) -> LimitedChain:
    """``limited_chain("serpapi", "brave", limits={"serpapi": LimitSettings(...)})``: a chain
    with shared limits in the test's Redis namespace, on the test's clock.  Each call stands
    for another process: it shares only what Redis holds."""

    def build(*names: str, limits: dict[str, LimitSettings] | None = None) -> SearchChain:
        limiter = SharedLimiter(redis, keyspace, limits, clock)
        return SearchChain.from_settings(settings_for(*names), limiter)

    return build
