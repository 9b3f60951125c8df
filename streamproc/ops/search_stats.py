"""What Redis holds about each search provider, for ``GET /search`` and the dashboard: the
cache's counters (``outbound/cache.py``) and the shared limits' state (``outbound/limiter.py``).

Everything is read from Redis, so any process can answer, whichever processes searched.  The
limiter's decisions themselves (go, rate, spent, open) are counted only in the searching
processes' Prometheus metrics (``streamproc_limiter_decisions_total``); Redis holds what they
leave behind: the breaker, the spent mark, when the next call is due at the rate and the calls
counted against a quota.  Times are ms since the epoch, on the Redis server's clock.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, cast

from redis.asyncio import Redis

from streamproc.outbound.cache import cache_stats
from streamproc.outbound.limit_settings import Quota
from streamproc.outbound.providers.settings import DEFAULT_URLS
from streamproc.store.keys import Keyspace
from streamproc.store.state import Breaker

US_PER_MS = 1000
NO_PROVIDER = "none"  # the cache's name for a miss no provider answered


@dataclass(frozen=True)
class ProviderFigures:
    """One provider's figures; ``breaker_until`` is when an open breaker lets a probe go (or,
    half-open, when the probe in flight expires), ``None`` when closed."""

    provider: str
    hits: int
    misses: int
    upstream: int
    hit_ratio: float | None
    breaker: Breaker
    breaker_until: int | None
    failure_streak: int
    spent: str | None
    spent_until: int | None
    next_slot: int | None
    quota_calls: dict[str, int]


async def search_figures(redis: Redis, keyspace: Keyspace) -> dict[str, Any]:
    """``{"providers": [...], "unanswered": n}``: every known provider (and any other the cache
    counted), and the misses no provider answered."""
    stats = await cache_stats(redis, keyspace)
    seconds, micros = await redis.time()
    now_us = seconds * 1_000_000 + micros
    names = [*DEFAULT_URLS, *sorted(stats.keys() - DEFAULT_URLS.keys() - {NO_PROVIDER})]
    providers = []
    for name in names:
        counts = stats.get(name, {})
        limits = await limit_state(redis, keyspace, name, now_us)
        hits, misses = counts.get("hit", 0), counts.get("miss", 0)
        ratio = round(hits / (hits + misses), 4) if hits + misses else None
        figures = ProviderFigures(name, hits, misses, counts.get("upstream", 0), ratio, **limits)
        providers.append(asdict(figures))
    return {"providers": providers, "unanswered": stats.get(NO_PROVIDER, {}).get("miss", 0)}


async def limit_state(redis: Redis, keyspace: Keyspace, provider: str, now_us: int) -> Any:
    """The shared limits' keys of one provider (``Keyspace.api_limits``), read in one round
    trip and told as :class:`ProviderFigures` fields."""
    periods = [Quota(1, "day").window(now_us / 1e6)[0], Quota(1, "month").window(now_us / 1e6)[0]]
    rate, _, spent, breaker, probe = keyspace.api_limits(provider, "none")
    quotas = [keyspace.api_limits(provider, period)[1] for period in periods]
    pipe = redis.pipeline(transaction=False)
    pipe.hgetall(breaker)
    pipe.pttl(probe)
    pipe.get(spent)
    pipe.pttl(spent)
    pipe.get(rate)
    for key in quotas:
        pipe.get(key)
    state, probe_ms, spent_reason, spent_ms, tat, *used = await pipe.execute()
    state = cast(dict[bytes, bytes], state)
    open_until = int(state[b"open_until"]) if b"open_until" in state else None
    status, until = breaker_state(open_until, probe_ms, now_us)
    now_ms = now_us // US_PER_MS
    return {
        "breaker": status,
        "breaker_until": until,
        "failure_streak": int(state.get(b"streak", 0)),
        "spent": spent_reason.decode() if spent_reason is not None else None,
        "spent_until": now_ms + spent_ms if spent_reason is not None and spent_ms > 0 else None,
        "next_slot": int(tat) // US_PER_MS if tat is not None else None,
        "quota_calls": {p: int(n) for p, n in zip(periods, used, strict=True) if n is not None},
    }


def breaker_state(open_until: int | None, probe_ms: int, now_us: int) -> tuple[Breaker, int | None]:
    """As ``sp_limits_admit`` sees it (``lua/limits.lua``): closed without ``open_until``,
    open before it, half-open after it (a probe may be in flight, ``probe_ms`` left)."""
    if open_until is None:
        return "closed", None
    if now_us < open_until:
        return "open", open_until // US_PER_MS
    return "half-open", (now_us // US_PER_MS + probe_ms if probe_ms > 0 else None)
