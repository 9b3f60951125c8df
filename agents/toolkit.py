"""The external services the prototype's agents share in one worker: the cached search chain
and, when configured, a language model.  Built on the first task that needs them from the
runtime the task carries (Redis, keyspace) and the environment (API keys, URLs), closed when
the worker stops.

When every search provider is out (quota spent, circuit open, rate-limited) and each has
said when it comes back, a search raises :class:`RetryLater` for the soonest return: the task
waits without using up its retries, and is dead-lettered after ``give_up_after`` seconds
(``STREAMPROC_SEARCH_GIVE_UP``).

Pages at URLs from outside (search results) are read only through :meth:`Toolkit.fetch`, which
keeps to the outbound rules (streamproc/outbound/guarded.py): no private, local or metadata
addresses, every redirect checked, the body and the time bounded."""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from streamproc import ConfigError, Task
from streamproc.errors import AllProvidersFailed, PermanentError, RetryLater
from streamproc.outbound.cache import SearchCache
from streamproc.outbound.guarded import OutboundSettings, Page, read_page
from streamproc.outbound.llm import LLMClient, LLMSettings
from streamproc.outbound.providers import SearchReply, SearchSettings, close_session
from streamproc.runtime import Runtime

MIN_DELAY = 0.05  # a provider back "now" is asked again after the engine's shortest wait


@dataclass
class Toolkit:
    search_cache: SearchCache | None
    llm: LLMClient | None
    give_up_after: float = 3600.0
    outbound: OutboundSettings = field(default_factory=OutboundSettings)

    async def fetch(self, url: str) -> Page:
        """The page at ``url``; :class:`~streamproc.errors.FetchRefused` for an address agents
        may not reach, :class:`~streamproc.errors.FetchError` for one that does not answer."""
        return await read_page(url, self.outbound)

    async def search(self, query: str) -> SearchReply:
        if self.search_cache is None:
            raise PermanentError(
                "no search provider configured: set SERPAPI_KEY, BRAVE_API_KEY, TAVILY_API_KEY"
                " or BING_API_KEY (streamproc demo starts local stand-ins when none is set)"
            )
        try:
            return await self.search_cache.search(query)
        except AllProvidersFailed as exc:
            if exc.retry_after is None:  # some provider failed outright: an ordinary retry
                raise
            delay = max(MIN_DELAY, exc.retry_after)
            reason = f"every search provider is out ({exc.reason})"
            raise RetryLater(delay, reason, self.give_up_after) from exc


def toolkit(task: Task) -> Toolkit:
    """The toolkit of the worker running ``task``, built by the first task that asks."""
    if task.runtime is None:
        raise ConfigError("no worker is running this task: its agent has no toolkit")
    return task.runtime.service(build)


def build(runtime: Runtime) -> Toolkit:
    """A worker's toolkit; what it opens closes with the worker.  Looked up by name on every
    call, so a benchmark can put its own in place (scripts/bench_balance_worker.py)."""
    settings = SearchSettings.from_env(os.environ)
    cache = None
    if settings.configured():
        redis = runtime.redis.connect()
        cache = SearchCache.from_settings(redis, runtime.keyspace, settings)
        runtime.on_close(redis.aclose)
    llm_settings = LLMSettings.from_env(os.environ)
    runtime.on_close(close_session)
    llm = LLMClient(llm_settings) if llm_settings else None
    return Toolkit(cache, llm, settings.give_up_after, OutboundSettings.from_env(os.environ))
