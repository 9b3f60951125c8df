"""A Redis cache in front of the search chain: frequent queries stay longer, and a query is
searched upstream once however many callers ask for it at the same moment.

Each entry is the hash ``<ns>:cache:<provider>:<sha256 hex of the normalised query>`` with
``result`` (the reply as JSON), ``created`` (ms), ``hits`` and ``empty``, written and touched
by ``store/cache.py``.  A query is normalised by casefolding it, collapsing runs of whitespace
and stripping the ends.  Lookups try the chain's providers in order, so the preferred
provider's entry wins.

Expiry follows frequency.  An entry is written with hits = 0 and, on every hit, gets::

    ttl = clamp(base_ttl * (1 + log2(1 + hits)), min_ttl, max_ttl)

so it lives base_ttl after it is written, 2 x base_ttl after its first hit, 3 x base_ttl after
its third, and never longer than max_ttl.  A reply with no results is kept ``empty_ttl`` and
hits do not stretch it; an error is never cached.  The hit and the stretch are one Redis
Function (``lua/cache.lua``) so only an entry that still exists is touched.

Single flight (``flight.py``): concurrent misses on one query make one upstream search, in a
process and across processes, through the lock ``<ns>:cache-lock:<digest>``.

Counters per provider, in the hash ``<ns>:cache:stats``: ``hit`` (answered from an entry that
provider filled), ``miss`` (searched upstream and answered by that provider; provider ``none``
when every provider failed) and ``upstream`` (searches sent to that provider, failures
included, retries not).
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import replace
from functools import partial
from typing import cast

import orjson
from redis.asyncio import Redis

from streamproc.errors import AllProvidersFailed
from streamproc.outbound.flight import SingleFlight
from streamproc.outbound.limiter import SharedLimiter
from streamproc.outbound.providers.base import SearchReply, SearchResult
from streamproc.outbound.providers.chain import SearchChain
from streamproc.outbound.providers.settings import CacheSettings, SearchSettings
from streamproc.store import cache as entries
from streamproc.store.keys import Keyspace

COUNTERS = ("hit", "miss", "upstream")


def normalise(query: str) -> str:
    return " ".join(query.casefold().split())


def digest(query: str) -> str:
    """The sha256 hex of the normalised query: the last part of its cache keys."""
    return hashlib.sha256(normalise(query).encode()).hexdigest()


class SearchCache:
    """``await SearchCache(redis, keyspace, chain).search("redis streams")``."""

    def __init__(
        self,
        redis: Redis,
        keyspace: Keyspace,
        chain: SearchChain,
        settings: CacheSettings | None = None,
        count: int = 5,
    ) -> None:
        self.redis = redis
        self.keyspace = keyspace
        self.chain = chain
        self.settings = settings or CacheSettings()
        self.count = count
        self._flight = SingleFlight[SearchReply](
            redis, self.settings.lock_ttl, self.settings.wait_timeout, self.settings.poll_interval
        )

    @classmethod
    def from_settings(
        cls, redis: Redis, keyspace: Keyspace, settings: SearchSettings
    ) -> SearchCache:
        limiter = SharedLimiter(redis, keyspace, settings.limits)
        chain = SearchChain.from_settings(settings, limiter)
        return cls(redis, keyspace, chain, settings.cache, settings.count)

    async def search(self, query: str) -> SearchReply:
        """The cached reply for ``query``, or a fresh one from the chain (then cached)."""
        text = normalise(query)
        key_digest = digest(text)
        reply = await self._lookup(key_digest)
        if reply is None:
            reply = await self._join_flight(text, key_digest)
        return replace(reply, query=query)

    async def _join_flight(self, text: str, key_digest: str) -> SearchReply:
        reply, shared = await self._flight.run(
            self.keyspace.cache_lock(key_digest),
            partial(self._lookup, key_digest),
            partial(self._fetch, text, key_digest),
        )
        if shared:  # another caller's search answered this one: a hit like any other
            await self._hit(reply.provider, key_digest)
            reply = replace(reply, cached=True)
        return reply

    async def _lookup(self, key_digest: str) -> SearchReply | None:
        for provider in self.chain.names:
            reply = await self._hit(provider, key_digest)
            if reply is not None:
                return reply
        return None

    async def _hit(self, provider: str, key_digest: str) -> SearchReply | None:
        raw = await self._touch(self.keyspace.cache(provider, key_digest))
        if raw is None:
            return None
        await self.redis.hincrby(self.keyspace.cache_stats(), f"{provider}:hit", 1)
        return decode(raw)

    async def _touch(self, key: str) -> bytes | None:
        s = self.settings
        ttl = entries.Ttl(int(s.base_ttl * 1000), int(s.min_ttl * 1000), int(s.max_ttl * 1000))
        return await entries.touch(self.redis, key, ttl)

    async def _fetch(self, text: str, key_digest: str) -> SearchReply:
        asked: list[str] = []
        try:
            reply = await self.chain.search(text, self.count, on_call=asked.append)
        except AllProvidersFailed:
            await self._count(asked, "none")
            raise
        await self._store(key_digest, reply)
        await self._count(asked, reply.provider)
        return reply

    async def _store(self, key_digest: str, reply: SearchReply) -> None:
        s = self.settings
        empty = not reply.results
        ttl = s.empty_ttl if empty else min(max(s.base_ttl, s.min_ttl), s.max_ttl)
        key = self.keyspace.cache(reply.provider, key_digest)
        created = int(time.time() * 1000)
        await entries.put(self.redis, key, orjson.dumps(reply), created, empty, int(ttl * 1000))

    async def _count(self, asked: list[str], answered_by: str) -> None:
        pipe = self.redis.pipeline(transaction=False)
        pipe.hincrby(self.keyspace.cache_stats(), f"{answered_by}:miss", 1)
        for provider in asked:
            pipe.hincrby(self.keyspace.cache_stats(), f"{provider}:upstream", 1)
        await pipe.execute()


def decode(raw: bytes) -> SearchReply:
    data = orjson.loads(raw)
    results = tuple(SearchResult(**item) for item in data["results"])
    return SearchReply(data["provider"], data["query"], results, data["elapsed"], cached=True)


async def cache_stats(redis: Redis, keyspace: Keyspace) -> dict[str, dict[str, int]]:
    """``{provider: {"hit": n, "miss": n, "upstream": n}}`` for a status command."""
    raw = cast(dict[bytes, bytes], await redis.hgetall(keyspace.cache_stats()))
    stats: dict[str, dict[str, int]] = {}
    for field, value in raw.items():
        provider, _, counter = field.decode().rpartition(":")
        stats.setdefault(provider, dict.fromkeys(COUNTERS, 0))[counter] = int(value)
    return dict(sorted(stats.items()))
