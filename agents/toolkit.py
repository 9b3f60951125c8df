"""The external services the prototype's agents share in one worker process: the cached search
chain and, when configured, a language model.  Built on first use from the worker's runtime
(Redis, keyspace) and the environment (API keys, URLs), closed when the worker stops."""

from __future__ import annotations

import os
from dataclasses import dataclass

from streamproc import runtime
from streamproc.cache import SearchCache
from streamproc.errors import PermanentError
from streamproc.llm import LLMClient, LLMSettings
from streamproc.providers import SearchReply, SearchSettings, close_session


@dataclass
class Toolkit:
    search_cache: SearchCache | None
    llm: LLMClient | None

    async def search(self, query: str) -> SearchReply:
        if self.search_cache is None:
            raise PermanentError(
                "no search provider configured: set SERPAPI_KEY, BRAVE_API_KEY, TAVILY_API_KEY"
                " or BING_API_KEY (streamproc demo starts local stand-ins when none is set)"
            )
        return await self.search_cache.search(query)


_toolkit: Toolkit | None = None


def toolkit() -> Toolkit:
    global _toolkit
    if _toolkit is None:
        _toolkit = _build()
    return _toolkit


def _build() -> Toolkit:
    worker = runtime.current()
    settings = SearchSettings.from_env(os.environ)
    cache = None
    if settings.configured():
        redis = worker.redis.connect()
        cache = SearchCache.from_settings(redis, worker.keyspace, settings)
        worker.on_close(redis.aclose)
    llm_settings = LLMSettings.from_env(os.environ)
    worker.on_close(_forget)
    worker.on_close(close_session)
    return Toolkit(cache, LLMClient(llm_settings) if llm_settings else None)


async def _forget() -> None:
    global _toolkit
    _toolkit = None
