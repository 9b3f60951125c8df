"""Search with fallback: providers in order, the first reply wins.

Each provider gets the retry policy (backoff on :class:`Unavailable`, one short wait on
:class:`RateLimited`).  A failure moves on to the next provider and may bench this one:

* :class:`KeyRejected` benches it for the life of the process (one error line says so);
* :class:`QuotaSpent` benches it until its allowance renews (``retry_after``, else the end
  of its configured quota period, else ``quota_rest``), here and, through Redis, everywhere;
* :class:`RateLimited` with a wait benches it for that wait, here and, through the shared
  circuit breaker (``limiter``), everywhere.

Each visit passes the chain's :class:`Guard` (shared rate, quota and breaker with Redis, and
an adaptive concurrency limit); a provider that is out is skipped with the time it is back,
so when all are out :class:`AllProvidersFailed` has the soonest in ``retry_after``.  An empty
result list is an answer, not a failure.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Sequence

from streamproc.errors import (
    AllProvidersFailed,
    ConfigError,
    KeyRejected,
    ProviderError,
    QuotaSpent,
    RateLimited,
)
from streamproc.outbound.http import RetryPolicy, with_retries
from streamproc.outbound.limiter import SharedLimiter
from streamproc.outbound.providers.base import SearchProvider, SearchReply
from streamproc.outbound.providers.bing import Bing
from streamproc.outbound.providers.brave import Brave
from streamproc.outbound.providers.guard import Guard
from streamproc.outbound.providers.serpapi import SerpApi
from streamproc.outbound.providers.settings import KEY_VARIABLES, SearchSettings
from streamproc.outbound.providers.tavily import Tavily
from streamproc.outbound.secret import Secret

log = logging.getLogger(__name__)
FACTORIES: dict[str, Callable[[Secret, str, float], SearchProvider]] = {
    "serpapi": SerpApi,
    "brave": Brave,
    "tavily": Tavily,
    "bing": Bing,
}


class SearchChain:
    """``await chain.search("redis streams", 5)``: the first provider's reply, or
    :class:`AllProvidersFailed` naming each provider's reason."""

    def __init__(
        self,
        providers: Sequence[SearchProvider],
        retry: RetryPolicy | None = None,
        quota_rest: float = 3600.0,
        guard: Guard | None = None,
    ) -> None:
        if not providers:
            variables = ", ".join(KEY_VARIABLES.values())
            raise ConfigError(f"no search provider configured: set one of {variables}")
        self.providers = tuple(providers)
        self.retry = retry or RetryPolicy()
        self.guard = guard or Guard(quota_rest=quota_rest)
        self._benched: dict[str, tuple[float, ProviderError]] = {}

    @classmethod
    def from_settings(
        cls, settings: SearchSettings, limiter: SharedLimiter | None = None
    ) -> SearchChain:
        """The configured providers; shared limits only with a ``limiter`` (Redis)."""
        providers = [
            FACTORIES[name](settings.keys[name], settings.url(name), settings.timeout)
            for name in settings.configured()
        ]
        guard = Guard(limiter, settings.concurrency, settings.quota_rest)
        return cls(providers, settings.retry, settings.quota_rest, guard)

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(p.name for p in self.providers)

    def __repr__(self) -> str:
        return f"SearchChain({', '.join(self.names)})"

    async def search(
        self, query: str, count: int = 5, on_call: Callable[[str], object] | None = None
    ) -> SearchReply:
        """The first reply in provider order.  ``on_call(name)`` is told of each provider
        actually asked (benched ones are skipped), so a caller can count upstream calls."""
        failures: dict[str, ProviderError] = {}
        for provider in self.providers:
            benched = self._bench_reason(provider.name)
            if benched is not None:
                failures[provider.name] = benched
                continue
            try:
                return await self._visit(provider, query, count, on_call)
            except ProviderError as exc:
                failures[provider.name] = exc
        raise AllProvidersFailed(failures)

    async def _visit(
        self,
        provider: SearchProvider,
        query: str,
        count: int,
        on_call: Callable[[str], object] | None,
    ) -> SearchReply:
        """One provider's reply, or the error that moves on to the next (a skip included)."""
        admission = await self.guard.admit(provider.name)
        if on_call is not None:
            on_call(provider.name)
        try:
            reply = await with_retries(self.retry, self.guard.call, provider, query, count)
        except ProviderError as exc:
            if isinstance(exc, QuotaSpent) and exc.retry_after is None:
                exc.retry_after = self.guard.spent_for(exc.provider)
            self._bench(exc)
            await self.guard.settle(admission, exc)
            raise
        await self.guard.settle(admission, None)
        return reply

    def _bench_reason(self, name: str) -> ProviderError | None:
        """The error that benched ``name``, restated as a skip, while it is still benched."""
        until, error = self._benched.get(name, (0.0, None))
        now = time.monotonic()
        if error is None or now >= until:
            return None
        left = None if until == math.inf else until - now
        return type(error)(name, f"not asked (earlier: {error.reason})", left)

    def _bench(self, exc: ProviderError) -> None:
        if isinstance(exc, KeyRejected):
            log.error(
                "search provider %s disabled for this process: key rejected (%s)",
                exc.provider,
                exc.reason,
            )
            self._benched[exc.provider] = (math.inf, exc)
            return
        log.warning("search provider %s failed (%s)", exc.provider, exc.reason)
        if exc.retry_after and isinstance(exc, QuotaSpent | RateLimited):
            self._benched[exc.provider] = (time.monotonic() + exc.retry_after, exc)
