"""Fixtures for the external-API layer: the fake servers, and settings pointing at them with
retry waits short enough for tests."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import replace

import pytest

from streamproc.fakes import Fakes
from streamproc.providers import RetryPolicy, SearchSettings, close_session
from streamproc.providers.settings import KEY_VARIABLES

FAST = RetryPolicy(
    attempts=3, backoff_initial=0.001, backoff_max=0.005, jitter=0.001, rate_limit_wait=0.5
)
SettingsFor = Callable[..., SearchSettings]


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
