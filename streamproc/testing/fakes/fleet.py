"""Every fake API at once, for tests and for an offline demo.

async with Fakes() as fakes:
    settings = SearchSettings.from_env(fakes.env())
    llm = LLMSettings.from_env(fakes.env())
"""

from __future__ import annotations

from collections.abc import Mapping
from types import TracebackType

from streamproc.outbound.providers.settings import KEY_VARIABLES
from streamproc.testing.fakes.llm import MODEL, FakeLLM
from streamproc.testing.fakes.search import FakeBing, FakeBrave, FakeSerpApi, FakeTavily
from streamproc.testing.fakes.server import FakeServer


class Fakes:
    """One fake server per search provider plus the chat endpoint, each on a free port."""

    def __init__(
        self,
        keys: Mapping[str, str] | None = None,
        retry_after: float = 1.0,
        stall: float = 30.0,
        latency: float = 0.0,
        links: str = "https://example.org",
    ) -> None:
        """``keys`` by fake name (``serpapi``, ..., ``llm``); the others get a made-up key.
        ``links``: where search results point."""
        keys = keys or {}
        timing = {"retry_after": retry_after, "stall": stall, "latency": latency}
        self.serpapi = FakeSerpApi(keys.get("serpapi"), links=links, **timing)
        self.brave = FakeBrave(keys.get("brave"), links=links, **timing)
        self.tavily = FakeTavily(keys.get("tavily"), links=links, **timing)
        self.bing = FakeBing(keys.get("bing"), links=links, **timing)
        self.llm = FakeLLM(keys.get("llm"), links=links, **timing)

    @property
    def search(self) -> dict[str, FakeServer]:
        return {f.name: f for f in (self.serpapi, self.brave, self.tavily, self.bing)}

    async def start(self) -> Fakes:
        try:
            for fake in (*self.search.values(), self.llm):
                await fake.start()
        except BaseException:
            await self.close()
            raise
        return self

    async def close(self) -> None:
        for fake in (*self.search.values(), self.llm):
            await fake.close()

    async def __aenter__(self) -> Fakes:
        return await self.start()

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    def env(self) -> dict[str, str]:
        """Environment variables that point search and LLM settings at the fakes (allowing
        each one's plain http)."""
        return {
            "STREAMPROC_LLM_URL": self.llm.base_url,
            "STREAMPROC_LLM_PLAIN_HTTP": self.llm.address,
            "STREAMPROC_LLM_MODEL": MODEL,
            "STREAMPROC_LLM_API_KEY": self.llm.key,
            **self.search_env(),
        }

    def search_env(self) -> dict[str, str]:
        """The search part of :meth:`env` alone."""
        env = {}
        for name, fake in self.search.items():
            env[KEY_VARIABLES[name]] = fake.key
            env[f"STREAMPROC_{name.upper()}_URL"] = fake.base_url
            env[f"STREAMPROC_{name.upper()}_PLAIN_HTTP"] = fake.address
        return env
